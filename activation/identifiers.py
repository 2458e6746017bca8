"""Normalization and SHA-256 hashing of customer identifiers, per platform, exactly as each documents it.

Meta (Marketing API, "Custom Audiences from customer data" / custom-audience users reference, Graph v25.0,
developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences, read 2026-11):
  EMAIL trim + lowercase; PHONE digits only with the country code, no symbols, letters or leading zeros;
  FN/LN lowercase, punctuation removed, UTF-8 letters kept; ZIP lowercase without spaces or dashes (US: first
  5 digits); COUNTRY lowercase ISO 3166-1 alpha-2. Every key is SHA-256, hex.
Google (Data Manager API "Format user data", developers.google.com/data-manager/api/devguides/concepts/formatting,
and google.ads.datamanager.v1 AddressInfo, read 2026-11):
  email_address lowercase, all whitespace removed; gmail.com/googlemail.com: dots before "@" removed and a
  "+suffix" removed (cloudy.sanfrancisco+shopping@gmail.com -> cloudysanfrancisco@gmail.com), other domains keep
  dots and plus; phone_number E.164 with "+" and country code; given_name/family_name lowercase, no punctuation,
  trimmed; all three SHA-256, hex (request `encoding: HEX`). region_code (ISO-3166-1 alpha-2) and postal_code are
  sent unhashed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Country calling codes for turning national numbers into E.164 when the customer's country is known.
# Numbers already given with "+" or "00" never need this table; unknown countries yield no phone (never a guess).
COUNTRY_CALLING_CODES: dict[str, str] = {
    "US": "1",
    "CA": "1",
    "GB": "44",
    "IE": "353",
    "DE": "49",
    "AT": "43",
    "CH": "41",
    "FR": "33",
    "BE": "32",
    "NL": "31",
    "LU": "352",
    "ES": "34",
    "PT": "351",
    "IT": "39",
    "DK": "45",
    "SE": "46",
    "NO": "47",
    "FI": "358",
    "PL": "48",
    "CZ": "420",
    "AU": "61",
    "NZ": "64",
    "JP": "81",
    "SG": "65",
    "IN": "91",
    "BR": "55",
    "MX": "52",
}
GOOGLE_MAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
E164_MAX_DIGITS = 15
_WHITESPACE = re.compile(r"\s+")
_NON_DIGIT = re.compile(r"\D")


def sha256_hex(normalized: str) -> str:
    """SHA-256 of the UTF-8 bytes of an already-normalized value, as 64 lowercase hex characters."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def _clean(value: object) -> str | None:
    """The value as a stripped string, or None when missing/blank (NaN and pandas NA included)."""
    if value is None or value != value:  # NaN is the only value not equal to itself
        return None
    try:
        text = str(value).strip()
    except (TypeError, ValueError):
        return None
    return text or None


def normalize_email(value: object) -> str | None:
    """Email for Meta and as the common base: all whitespace removed, lowercased; None unless it has one '@'."""
    text = _clean(value)
    if text is None:
        return None
    text = _WHITESPACE.sub("", text).lower()
    local, sep, domain = text.partition("@")
    if not sep or not local or not domain or "@" in domain:
        return None
    return text


def normalize_email_google(value: object) -> str | None:
    """Email as Google documents it: the common form, plus gmail/googlemail dots and '+suffix' removed."""
    text = normalize_email(value)
    if text is None:
        return None
    local, _, domain = text.partition("@")
    if domain in GOOGLE_MAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def normalize_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2 country code, upper case (e.g. 'US'); None unless exactly two letters."""
    text = _clean(value)
    if text is None:
        return None
    text = text.upper()
    if text == "UK":  # a common non-ISO alias; ISO 3166-1 says GB
        text = "GB"
    return text if len(text) == 2 and text.isalpha() and text.isascii() else None


def normalize_phone_e164(value: object, country: object = None) -> str | None:
    """Phone in E.164 ('+' then 8-15 digits); a national number needs a known country (trunk '0' dropped)."""
    text = _clean(value)
    if text is None:
        return None
    international = text.startswith("+") or text.startswith("00")
    digits = _NON_DIGIT.sub("", text)
    if text.startswith("00"):
        digits = digits[2:]
    if not international:
        calling_code = COUNTRY_CALLING_CODES.get(normalize_country(country) or "")
        if calling_code is None:
            return None
        national = digits.lstrip("0")
        # A NANP number may already carry its leading 1 (e.g. "1-800-555-0100" for a US customer).
        if calling_code == "1" and len(national) == 11 and national.startswith("1"):
            national = national[1:]
        digits = calling_code + national
    if not digits or digits[0] == "0" or not 8 <= len(digits) <= E164_MAX_DIGITS:
        return None
    return "+" + digits


def normalize_phone_meta(value: object, country: object = None) -> str | None:
    """Phone as Meta documents it: digits only with the country code, no '+' and no leading zeros."""
    e164 = normalize_phone_e164(value, country)
    return e164[1:] if e164 else None


def normalize_name(value: object) -> str | None:
    """First or last name: lowercase, punctuation and whitespace-only characters removed, letters (UTF-8) kept."""
    text = _clean(value)
    if text is None:
        return None
    text = unicodedata.normalize("NFC", text).lower()
    kept = "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "S")))
    kept = _WHITESPACE.sub(" ", kept).strip()
    return kept or None


def normalize_postal_code(value: object, country: object = None) -> str | None:
    """Postal code for Google (unhashed): trimmed, inner whitespace kept single, upper case as printed."""
    text = _clean(value)
    if text is None:
        return None
    return _WHITESPACE.sub(" ", text).upper()


def normalize_zip_meta(value: object, country: object = None) -> str | None:
    """Zip as Meta documents it: lowercase, no spaces or dashes; US codes cut to their first 5 digits."""
    text = _clean(value)
    if text is None:
        return None
    text = re.sub(r"[\s\-]", "", text).lower()
    if normalize_country(country) == "US":
        text = text[:5]
    return text or None


def hashed_or_empty(normalized: str | None) -> str:
    """SHA-256 hex of a normalized value, or '' where Meta's multi-key rows want a blank for an unknown key."""
    return sha256_hex(normalized) if normalized else ""


def is_sha256_hex(value: object) -> bool:
    """True for a 64-character lowercase hex string (what every hashed identifier must look like)."""
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None
