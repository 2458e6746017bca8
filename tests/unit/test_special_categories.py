"""GDPR art. 9 special categories: the denylist, the landing screen, and the config files that may not name them.

Each test plants one special-category column or reference (labelled in a comment) and asserts what a user or a
data-protection officer would see: the column in no table, the drop in the report, or the one-line error.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from activation.audiences import AudienceConfigError, load_audiences, parse_audiences
from landing import ingest_landing
from landing.ingest import NO_DIGESTS
from landing.special_categories import (
    DEFAULT_DENYLIST_PATH,
    SpecialCategoryError,
    load_denylist,
    normalize_name,
    parse_denylist,
    special_category_columns,
)
from ml import feature_columns
from reporting.cards import load_playbook, playbook_problems

REPO = Path(__file__).resolve().parents[2]
ORDERS = "order_id,customer_id,ordered_at,order_total\no1,c1,2025-01-01,10\no2,c2,2025-01-02,20\no3,c2,2025-01-03,x\n"
ALL_CATEGORIES = (
    "health", "religion_or_beliefs", "racial_or_ethnic_origin", "sexual_orientation_or_life", "political_opinions",
    "trade_union_membership", "genetic", "biometric",
)  # fmt: skip


@pytest.fixture(scope="module")
def denylist():
    return load_denylist()


def ingest(landing: Path) -> tuple[duckdb.DuckDBPyConnection, object]:
    conn = duckdb.connect()
    return conn, ingest_landing(conn, landing, as_of=None, horizon_days=365, is_demo=False)


def every_text_in_the_warehouse(conn: duckdb.DuckDBPyConnection) -> str:
    """Every table's column names and values as one text, to assert something is nowhere."""
    texts = []
    for schema, table in conn.execute("select table_schema, table_name from information_schema.tables").fetchall():
        frame = conn.execute(f'select * from "{schema}"."{table}"').df()
        texts.append(" ".join(map(str, frame.columns)) + " " + frame.astype(str).to_csv())
    return "\n".join(texts).lower()


def test_the_shipped_denylist_is_versioned_and_covers_every_article_9_category(denylist):
    assert denylist.version == "1"
    assert {category.name for category in denylist.categories} == set(ALL_CATEGORIES)
    assert all(category.column_names and category.values for category in denylist.categories)


@pytest.mark.parametrize(
    "column, category",
    [
        ("religion", "religion_or_beliefs"),
        ("health_condition", "health"),
        ("Health Condition", "health"),
        ("ethnicity", "racial_or_ethnic_origin"),
        ("sexual_orientation", "sexual_orientation_or_life"),
        ("political_party_affiliation", "political_opinions"),
        ("trade_union_member", "trade_union_membership"),
        ("dna_test_result", "genetic"),
        ("fingerprint_hash", "biometric"),
    ],
)
def test_special_category_column_names_are_recognised(denylist, column, category):
    assert denylist.category_of_name(column) == category


@pytest.mark.parametrize(
    "column",
    [
        "customer_id",
        "email",
        "first_name",
        "country",
        "trace_id",
        "order_total",
        "discount_code",
        "brand_share",
        "predicted_clv",
        "recency_score",
        "acquisition_channel",
        "marketing_consent",
        "favourite_colour",
        "union_station",
    ],
)
def test_ordinary_column_names_are_not_special_categories(denylist, column):
    # Regression guard: a false positive here would drop a contract column or refuse an ordinary rule.
    assert denylist.category_of_name(column) is None


def test_no_model_feature_or_documented_mart_column_names_a_special_category(denylist):
    features = [
        *feature_columns.BEHAVIOUR_SHARES,
        *feature_columns.GENERIC_BEHAVIOUR,
        feature_columns.MAPPED_EVENT_SHARE,
    ]
    documented = []
    for path in (REPO / "dbt_project" / "models").rglob("*.yml"):
        document = yaml.safe_load(path.read_text()) or {}
        for model in document.get("models") or []:
            documented += [column["name"] for column in model.get("columns") or []]
    assert special_category_columns(features + documented, denylist) == []


def test_a_customers_file_with_religion_and_health_columns_keeps_them_out_of_every_table(tmp_path):
    (tmp_path / "orders.csv").write_text(ORDERS)
    # Planted: two special-category columns by name, and a free-text column holding a diagnosis (by value).
    (tmp_path / "customers.csv").write_text(
        "customer_id,email,religion,health_condition,notes,favourite_colour\n"
        "c1,a@example.com,Catholic,Asthma,likes shoes,black\n"
        'c2,b@example.com,Muslim,,"diabetic, sugar-free only",blue\n'
        "c2,b@example.com,Muslim,,dup row,blue\n"  # a quarantined row must not carry them either
    )
    conn, report = ingest(tmp_path)
    text = every_text_in_the_warehouse(conn)
    for planted in ("religion", "catholic", "muslim", "health_condition", "asthma", "diabetic"):
        assert planted not in text, planted
    assert "favourite_colour" in text  # an ordinary extra column is kept in the quarantine's raw record
    customers = next(f for f in report.files if f.table_name == "customers")
    dropped = {(d.column, d.category, d.matched_by) for d in customers.dropped_columns}
    assert dropped == {
        ("religion", "religion_or_beliefs", "column name"),
        ("health_condition", "health", "column name"),
        ("notes", "health", "values"),
    }
    assert any("'religion' dropped at ingest" in note for note in customers.notes)
    assert customers.rows_in == customers.rows_accepted + customers.rows_quarantined == 3


def test_an_ingest_that_dropped_special_category_columns_stores_no_state_to_append_from(tmp_path):
    # The append ingest's state would name the dropped columns; it is not kept, so the next ingest reads every file.
    (tmp_path / "orders.csv").write_text(ORDERS)
    (tmp_path / "customers.csv").write_text("customer_id,religion\nc1,Catholic\n")
    conn = duckdb.connect()
    digests = {"landing": {"customers.csv": "a", "orders.csv": "b"}, "code": "test"}
    first = ingest_landing(conn, tmp_path, date(2025, 1, 2), 365, False, append_inputs=digests)
    assert first.files[1].dropped_columns and "religion" not in every_text_in_the_warehouse(conn)
    second = ingest_landing(conn, tmp_path, date(2025, 1, 3), 365, False, append_inputs=digests)
    assert (second.ingest_mode, second.ingest_mode_reason) == ("full", NO_DIGESTS)


def test_a_contract_column_is_judged_by_its_name_not_its_values(tmp_path):
    (tmp_path / "orders.csv").write_text(ORDERS)
    # "Christian" is a first name here, not a belief: the value patterns apply to unknown columns only.
    (tmp_path / "customers.csv").write_text("customer_id,first_name\nc1,Christian\n")
    conn, report = ingest(tmp_path)
    assert conn.execute("select first_name from raw.customers").fetchall() == [("Christian",)]
    assert all(not f.dropped_columns for f in report.files)


def test_a_parquet_file_is_screened_like_a_csv(tmp_path):
    (tmp_path / "orders.csv").write_text(ORDERS)
    duckdb.sql(
        "copy (select 'c1' as customer_id, 'x@example.com' as email, 'Jewish' as faith) "
        f"to '{tmp_path / 'customers.parquet'}' (format parquet)"
    )
    conn, report = ingest(tmp_path)
    assert "jewish" not in every_text_in_the_warehouse(conn)
    assert [d.column for f in report.files for d in f.dropped_columns] == ["faith"]


def test_custom_entries_extend_the_shipped_denylist():
    document = yaml.safe_load(DEFAULT_DENYLIST_PATH.read_text())
    document["custom"] = {"health": {"column_names": ["(^|_)sick_notes(_|$)"]}, "tattoos": {"values": ["tattoo"]}}
    denylist = parse_denylist(document)
    assert denylist.category_of_name("sick_notes") == "health"
    assert denylist.category_of_name("religion") == "religion_or_beliefs"
    assert "tattoos" in {category.name for category in denylist.categories}


@pytest.mark.parametrize(
    "document, fragment",
    [
        ({"version": 1}, "needs a `categories` mapping"),
        ({"categories": {}}, "missing `version`"),
        ({"version": 1, "categories": {"health": {"column_names": ["(unclosed"]}}}, "categories.health.column_names"),
        ({"version": 1, "categories": {"health": {"values": ["(?=lookahead)"]}}}, "not a valid RE2 regex"),
        ({"version": 1, "categories": {"health": {"colour": []}}}, "unknown field"),
    ],
)
def test_a_malformed_denylist_fails_with_one_line_naming_the_field(document, fragment):
    with pytest.raises(SpecialCategoryError) as error:
        parse_denylist(document)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_a_missing_denylist_stops_instead_of_letting_everything_in(tmp_path):
    with pytest.raises(SpecialCategoryError, match="not found"):
        load_denylist(tmp_path / "nope.yaml")


@pytest.mark.parametrize("rule", ["religion = 'catholic'", "health_condition is not null and recency_score >= 4"])
def test_an_audience_rule_naming_a_special_category_fails_with_one_line(tmp_path, rule):
    path = tmp_path / "audiences.yaml"
    path.write_text(
        yaml.safe_dump({"audiences": [{"name": "pious", "rule": rule, "destinations": [{"type": "meta"}]}]})
    )
    with pytest.raises(AudienceConfigError) as error:
        load_audiences(path)
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and "audience 'pious'" in message and "'rule'" in message
    assert "special-category" in message


def test_a_value_column_naming_a_special_category_is_refused():
    entry = {"name": "x_y", "rule": "true", "value_column": "ethnicity", "destinations": []}
    with pytest.raises(AudienceConfigError, match="'value_column' names 'ethnicity'"):
        parse_audiences({"audiences": [entry]})


def test_a_playbook_entry_naming_a_special_category_is_refused(tmp_path):
    playbook = yaml.safe_load((REPO / "config" / "playbook.yaml").read_text())
    playbook["segments"]["Champions"]["strategy"] = "Offer a discount by religion at Easter."  # planted
    problems = playbook_problems(playbook)
    assert problems == [
        "segments.'Champions'.strategy names 'religion', special-category data (religion_or_beliefs, GDPR art. 9) "
        "never targeted on"
    ]
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(playbook))
    with pytest.raises(ValueError, match="playbook.yaml: segments.'Champions'.strategy names 'religion'"):
        load_playbook(path)


def test_the_shipped_playbook_and_audiences_pass_the_screen():
    assert playbook_problems(yaml.safe_load((REPO / "config" / "playbook.yaml").read_text())) == []
    assert load_audiences(REPO / "config" / "audiences.yaml")


def test_names_are_normalized_before_matching():
    assert normalize_name("  Health-Condition (self reported) ") == "health_condition_self_reported"
    assert normalize_name("Religión") == "religion"


def test_a_segment_call_the_translator_rejects_is_quarantined_without_its_special_category_traits(tmp_path):
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        '{"type":"track","event":"Order Completed","userId":"U1","messageId":"m-1",'
        '"timestamp":"2025-12-01T09:05:00.000Z","properties":{"order_id":"O1","total":10.0}}',
        # Planted: an unsupported group call whose traits hold a religion and a diagnosis in free text.
        '{"type":"group","userId":"U1","groupId":"g-1","messageId":"m-2","timestamp":"2025-12-02T10:00:00.000Z",'
        '"traits":{"name":"Acme","religion":"Catholic","notes":"diabetic member"}}',
        "not json, but it says hindu",  # planted: a broken line naming a belief
        "not json at all",
    ]
    (landing / "events.jsonl").write_text("\n".join(calls) + "\n")
    conn, report = ingest(landing)
    records = dict(conn.execute("select source_row, raw_record from raw.quarantine order by source_row").fetchall())
    assert records[2] == (
        '{"type":"group","userId":"U1","groupId":"g-1","messageId":"m-2","timestamp":"2025-12-02T10:00:00.000Z",'
        '"traits":{"name":"Acme"}}'
    )
    assert records[3] == '{"withheld": "special-category data (religion_or_beliefs)"}'
    assert records[4] == "not json at all"  # nothing to withhold
    assert report.special_category_records_scrubbed == 2
