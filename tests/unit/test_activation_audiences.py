"""Audience file validation, member selection in DuckDB and the deterministic control group."""

from pathlib import Path

import pytest

from activation.audiences import (Audience, AudienceConfigError, AudienceRuleError, is_control, is_value_based,
                                  load_audiences, parse_audiences, select_members, with_contacts)
from tests.servers.harness import new_warehouse, test_audience

REPO_AUDIENCES = Path(__file__).resolve().parents[2] / "config" / "audiences.yaml"


def minimal(**overrides):
    entry = {"name": "champions", "rule": "recency_score >= 4", "destinations": [{"type": "meta"}]}
    entry.update(overrides)
    return {"audiences": [entry]}


def test_the_shipped_audiences_file_is_valid_and_has_the_three_required_audiences():
    audiences = {a.name: a for a in load_audiences(REPO_AUDIENCES)}
    assert {"champions", "high_value_at_risk", "lookalike_seed"} <= set(audiences)
    assert audiences["lookalike_seed"].value_column == "predicted_clv"
    assert audiences["champions"].control_share == pytest.approx(0.10)
    assert audiences["champions"].max_change_share == pytest.approx(0.5)


@pytest.mark.parametrize("document, fragment", [
    ({"audiences": []}, "non-empty list"),
    (minimal(name="Champions!"), "snake_case"),
    ({"audiences": [minimal()["audiences"][0], minimal()["audiences"][0]]}, "duplicate audience name"),
    (minimal(rule=""), "non-empty SQL expression"),
    (minimal(rule="true; drop table raw.customers"), "no ';'"),
    (minimal(destinations=[{"type": "myspace"}]), "'type' must be one of"),
    (minimal(destinations=[{"type": "meta", "settings": {"access_token": "abc"}}]), "looks like a secret"),
    (minimal(control_share=1.5), "control_share must be in"),
    (minimal(max_change_share=0), "max_change_share must be in"),
    (minimal(colour="blue"), "unknown field"),
])
def test_invalid_audience_files_fail_with_a_message_naming_the_problem(document, fragment):
    with pytest.raises(AudienceConfigError, match="audiences.yaml") as error:
        parse_audiences(document)
    assert fragment in str(error.value)


def test_a_file_that_is_not_yaml_is_reported_with_its_path(tmp_path):
    path = tmp_path / "audiences.yaml"
    path.write_text("audiences: [unclosed", encoding="utf-8")
    with pytest.raises(AudienceConfigError, match="not valid YAML"):
        load_audiences(path)


def test_members_are_selected_by_the_rule_with_pii_from_raw_customers():
    conn = new_warehouse(20)
    members = select_members(conn, test_audience(rule="rfm_segment = 'champions'"))
    assert list(members["customer_id"]) == [f"c{i:04d}" for i in range(0, 20, 3)]
    # raw.customers wins over the (deliberately wrong) marketing_consent column of customer_scores
    assert not members.set_index("customer_id").loc["c0009", "marketing_consent"]
    assert {"email", "phone", "first_name", "last_name", "postal_code", "country"} <= set(members.columns)


def test_a_broken_rule_fails_with_the_audience_name_and_duckdbs_message():
    conn = new_warehouse(5)
    with pytest.raises(AudienceRuleError, match="audience 'everyone'.*no_such_column"):
        select_members(conn, test_audience(rule="no_such_column > 1"))


def test_value_column_becomes_the_member_value():
    conn = new_warehouse(5)
    members = select_members(conn, test_audience(value_column="predicted_clv"))
    assert list(members["value"]) == list(members["predicted_clv"])


def test_control_group_is_deterministic_independent_per_audience_and_near_its_share():
    ids = [f"c{i:05d}" for i in range(20000)]
    first = [is_control(cid, "champions", 0.10) for cid in ids]
    assert first == [is_control(cid, "champions", 0.10) for cid in ids]
    assert 0.09 < sum(first) / len(ids) < 0.11
    other = [is_control(cid, "lookalike_seed", 0.10) for cid in ids]
    assert first != other
    assert not any(is_control(cid, "champions", 0.0) for cid in ids[:100])


def test_value_based_audiences_are_those_that_carry_or_select_by_a_model_output():
    def audience(rule: str, value_column: str | None = None) -> Audience:
        return Audience(name="a_b", description="d", rule=rule, destinations=(), value_column=value_column)

    assert is_value_based(audience("order_count >= 1", value_column="predicted_clv"))
    assert is_value_based(audience("predicted_clv >= (select quantile_cont(predicted_clv, 0.8) from marts.customer_scores)"))
    assert is_value_based(audience("purchase_propensity > 0.5"))
    assert not is_value_based(audience("recency_score >= 4 and frequency_score >= 4"))
    assert not is_value_based(audience("total_revenue > 100", value_column="total_revenue"))
    assert not is_value_based(audience("my_predicted_clv_note = 'x'"))  # a word boundary, not a substring


def test_contacts_are_joined_at_the_sync_edge_from_raw_customers_not_stored_with_members():
    conn = new_warehouse(6)
    stored = select_members(conn, test_audience(rule="true"))[["customer_id", "is_control", "marketing_consent"]]
    members = with_contacts(conn, stored)
    assert list(members["customer_id"]) == list(stored["customer_id"])
    assert {"email", "phone", "first_name", "last_name", "postal_code"} <= set(members.columns)
    assert members["email"].notna().any()
