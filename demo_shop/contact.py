"""Synthetic but plausible contact columns (names, emails, phones, postal codes) with the mess real exports have.

Emails use reserved example domains and come in mixed case, sometimes padded with spaces; phones use the fictional
555 exchange in seven formats; US ZIP codes keep their leading zeros. Normalisation downstream has work to do.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demo_shop import config as c
from demo_shop.text import fixed_width_strings, from_vocabulary, zero_padded

_CANADIAN_POSTAL_LETTERS = np.frombuffer(b"ABCEGHJKLMNPRSTVXY", dtype=np.uint8)


def _ascii_local_part(names: pa.Array) -> pa.Array:
    """Lower-case name as it would appear in an email address (no apostrophes, umlauts spelled out)."""
    lowered = pc.utf8_lower(names)
    return pc.replace_substring(pc.replace_substring(lowered, "'", ""), "ü", "ue")


def _emails(first: pa.Array, last: pa.Array, customer_number: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """first.last4711@example.com in five local-part styles, some Title/UPPER case or space-padded, ~2 % missing."""
    n = len(customer_number)
    first_local, last_local = _ascii_local_part(first), _ascii_local_part(last)
    initial = pc.utf8_slice_codeunits(first_local, 0, 1)
    style = rng.integers(0, 5, n)
    # Styles: first.last, firstlast, f.last, first_last, last.first; the number keeps addresses apart.
    left = pc.if_else(pa.array(style == 2), initial, pc.if_else(pa.array(style == 4), last_local, first_local))
    right = pc.if_else(pa.array(style == 4), first_local, last_local)
    separator = from_vocabulary((".", "", ".", "_", "."), style)
    number = pa.array(customer_number).cast(pa.string())
    domain_weights = c.EMAIL_DOMAIN_WEIGHTS / c.EMAIL_DOMAIN_WEIGHTS.sum()
    domain = from_vocabulary(c.EMAIL_DOMAINS, rng.choice(len(c.EMAIL_DOMAINS), size=n, p=domain_weights))
    email = pc.binary_join_element_wise(left, separator, right, number, "@", domain, "")

    case = rng.random(n)
    email = pc.if_else(pa.array(case < c.EMAIL_TITLE_CASE_PROB), pc.utf8_title(email), email)
    email = pc.if_else(pa.array(case > 1 - c.EMAIL_UPPER_CASE_PROB), pc.utf8_upper(email), email)
    padded = pa.array(rng.random(n) < c.EMAIL_PADDED_PROB)
    email = pc.if_else(padded, pc.binary_join_element_wise(" ", email, "  ", ""), email)
    missing = pa.array(rng.random(n) < c.EMAIL_MISSING_PROB)
    return pc.if_else(missing, pa.nulls(n, pa.string()), email)


def _phones(n: int, rng: np.random.Generator) -> pa.Array:
    """US phone numbers on the fictional 555 exchange in mixed formats ("+1 (212) 555-0147", "212.555.0147"...)."""
    area = zero_padded(rng.integers(201, 990, n), 3)
    line = zero_padded(rng.integers(0, 10_000, n), 4)
    weights = c.PHONE_FORMAT_WEIGHTS / c.PHONE_FORMAT_WEIGHTS.sum()
    style = rng.choice(len(c.PHONE_FORMATS), size=n, p=weights)
    prefix, after_area, after_exchange = (from_vocabulary([f[i] for f in c.PHONE_FORMATS], style) for i in range(3))
    phone = pc.binary_join_element_wise(prefix, area, after_area, "555", after_exchange, line, "")
    missing = pa.array(rng.random(n) < c.PHONE_MISSING_PROB)
    return pc.if_else(missing, pa.nulls(n, pa.string()), phone)


def _canadian_postal_codes(n: int, rng: np.random.Generator) -> pa.Array:
    """Canadian postal codes shaped "K1A 0B1"."""
    letters = _CANADIAN_POSTAL_LETTERS[rng.integers(0, len(_CANADIAN_POSTAL_LETTERS), (n, 3))]
    digits = (rng.integers(0, 10, (n, 3)) + ord("0")).astype(np.uint8)
    space = np.full((n, 1), ord(" "), dtype=np.uint8)
    chars = np.hstack(
        [letters[:, :1], digits[:, :1], letters[:, 1:2], space, digits[:, 1:2], letters[:, 2:], digits[:, 2:]]
    )
    return fixed_width_strings(chars)


def contact_columns(customer_number: np.ndarray, rng: np.random.Generator) -> dict[str, pa.Array]:
    """email, phone, first_name, last_name, postal_code, country for customers with these id numbers."""
    n = len(customer_number)
    first = from_vocabulary(c.FIRST_NAMES, rng.integers(0, len(c.FIRST_NAMES), n))
    last = from_vocabulary(c.LAST_NAMES, rng.integers(0, len(c.LAST_NAMES), n))
    countries = [country for country, _ in c.COUNTRY_SHARES]
    country_shares = np.array([share for _, share in c.COUNTRY_SHARES])
    country = rng.choice(len(countries), size=n, p=country_shares / country_shares.sum())
    is_canadian = country == countries.index("CA")
    us_zip = zero_padded(rng.integers(501, 99_951, n), 5)
    postal_code = pc.if_else(pa.array(is_canadian), _canadian_postal_codes(n, rng), us_zip)
    return {
        "email": _emails(first, last, customer_number, rng),
        "phone": _phones(n, rng),
        "first_name": first,
        "last_name": last,
        "postal_code": postal_code,
        "country": from_vocabulary(countries, country),
    }
