"""Identifier normalization and hashing, checked on the platforms' documented examples."""

import hashlib

from activation import identifiers as ids


def test_google_quickstart_email_hash_matches_the_documented_hex_digest():
    # Data Manager quickstart: "dana@example.com" hashes to this hex value.
    normalized = ids.normalize_email_google("dana@example.com")
    assert ids.sha256_hex(normalized) == "07e2f1394b0ea80e2adca010ea8318df697001a005ba7452720edda4b0ce57b3"


def test_google_quickstart_email_is_trimmed_and_lowercased_before_hashing():
    # Quickstart row 3: "baklavainthebalkans@gmail.com  " and row 1 "DanaM@example.com" -> lowercase, no spaces.
    assert ids.normalize_email_google("DanaM@example.com") == "danam@example.com"
    assert ids.normalize_email_google("cloudySanFrancisco@GMAIL.com") == "cloudysanfrancisco@gmail.com"
    assert ids.normalize_email_google("baklavainthebalkans@gmail.com  ") == "baklavainthebalkans@gmail.com"


def test_gmail_dots_and_plus_tag_are_removed_only_for_google_mail_domains():
    assert ids.normalize_email_google("cloudy.sanfrancisco+shopping@gmail.com") == "cloudysanfrancisco@gmail.com"
    assert ids.normalize_email_google("a.b+c@googlemail.com") == "ab@googlemail.com"
    assert ids.normalize_email_google("user.name+NYC@Example.com") == "user.name+nyc@example.com"


def test_meta_email_keeps_gmail_dots_because_meta_documents_only_trim_and_lowercase():
    assert ids.normalize_email(" Cloudy.SanFrancisco+shopping@gmail.com ") == "cloudy.sanfrancisco+shopping@gmail.com"


def test_addresses_without_exactly_one_at_sign_are_rejected():
    for bad in ("", "   ", "no-at-sign", "two@@example.com", "@example.com", "local@", None, float("nan")):
        assert ids.normalize_email(bad) is None


def test_us_phone_from_google_docs_becomes_e164_and_meta_digits():
    # Google: (800)555-0100 in the US -> +18005550100. Meta: digits with country code, no "+".
    assert ids.normalize_phone_e164("(800)555-0100", "US") == "+18005550100"
    assert ids.normalize_phone_meta("(800)555-0100", "us") == "18005550100"


def test_meta_documented_phone_examples_normalize_to_country_code_plus_digits():
    assert ids.normalize_phone_meta("+44 844 412 4653") == "448444124653"
    assert ids.normalize_phone_meta("1-234-567-8910", "US") == "12345678910"


def test_national_numbers_drop_the_trunk_zero_and_unknown_countries_give_no_phone():
    assert ids.normalize_phone_e164("030 1234567", "DE") == "+49301234567"
    assert ids.normalize_phone_e164("0044 20 7946 0958") == "+442079460958"
    assert ids.normalize_phone_e164("030 1234567", None) is None
    assert ids.normalize_phone_e164("12", "US") is None


def test_names_are_lowercased_without_punctuation_and_keep_accented_letters():
    assert ids.normalize_name("  O'Brien-Smith ") == "obriensmith"
    assert ids.normalize_name("Zoë") == "zoë"
    assert ids.normalize_name("Mrs.") == "mrs"
    assert ids.normalize_name("...") is None


def test_meta_zip_is_five_digits_in_the_us_and_compact_elsewhere():
    assert ids.normalize_zip_meta("94016-1234", "US") == "94016"
    assert ids.normalize_zip_meta("WC2H 8LG", "GB") == "wc2h8lg"


def test_country_is_iso_alpha2_and_common_alias_uk_maps_to_gb():
    assert ids.normalize_country(" us ") == "US"
    assert ids.normalize_country("UK") == "GB"
    assert ids.normalize_country("USA") is None


def test_hashes_are_sha256_of_utf8_as_64_lowercase_hex():
    digest = ids.sha256_hex("zoë")
    assert digest == hashlib.sha256("zoë".encode()).hexdigest()
    assert ids.is_sha256_hex(digest)
    assert not ids.is_sha256_hex(digest.upper())
    assert ids.hashed_or_empty(None) == ""
