"""Audience file validation, member selection in DuckDB and the deterministic control group."""

import math
from pathlib import Path

import pandas as pd
import pytest

from activation.audiences import (
    Audience,
    AudienceConfigError,
    AudienceRuleError,
    current_realtime_members,
    is_control,
    is_value_based,
    load_audiences,
    parse_audiences,
    select_members,
    with_contacts,
)
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


@pytest.mark.parametrize(
    "document, fragment",
    [
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
    ],
)
def test_invalid_audience_files_fail_with_a_message_naming_the_problem(document, fragment):
    with pytest.raises(AudienceConfigError, match="audiences.yaml") as error:
        parse_audiences(document)
    assert fragment in str(error.value)


def test_a_file_that_is_not_yaml_is_reported_with_its_path(tmp_path):
    path = tmp_path / "audiences.yaml"
    path.write_text("audiences: [unclosed", encoding="utf-8")
    with pytest.raises(AudienceConfigError, match="not valid YAML"):
        load_audiences(path)


def test_members_are_selected_by_the_rule_with_contacts_from_the_sync_edge():
    conn = new_warehouse(20)
    members = select_members(conn, test_audience(rule="rfm_segment = 'champions'"))
    assert list(members["customer_id"]) == [f"c{i:04d}" for i in range(0, 20, 3)]
    # edge.customer_contacts wins over the (deliberately wrong) marketing_consent column of customer_scores
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
    assert is_value_based(
        audience("predicted_clv >= (select quantile_cont(predicted_clv, 0.8) from marts.customer_scores)")
    )
    assert is_value_based(audience("purchase_propensity > 0.5"))
    assert not is_value_based(audience("recency_score >= 4 and frequency_score >= 4"))
    assert not is_value_based(audience("total_revenue > 100", value_column="total_revenue"))
    assert not is_value_based(audience("my_predicted_clv_note = 'x'"))  # a word boundary, not a substring


# ---- audiences on real-time segments ---------------------------------------------------------------------------


def test_a_realtime_audience_needs_no_rule_and_its_size_guard_is_off_unless_set():
    [audience] = parse_audiences(
        {"audiences": [{"name": "cart_abandoners", "realtime_segment": "cart_abandoner", "destinations": []}]}
    )
    assert (audience.rule, audience.realtime_segment, math.isinf(audience.max_change_share)) == (
        "true",
        "cart_abandoner",
        True,
    )
    [guarded] = parse_audiences(
        {
            "audiences": [
                {"name": "shoes", "realtime_segment": "high_intent:*", "max_change_share": 3, "destinations": []}
            ]
        }
    )
    assert guarded.max_change_share == 3.0
    with pytest.raises(AudienceConfigError, match="'realtime_segment' must be a real-time segment name"):
        parse_audiences({"audiences": [{"name": "bad", "realtime_segment": "Cart Abandoner", "destinations": []}]})
    shipped = {a.name: a for a in load_audiences(REPO_AUDIENCES)}
    assert shipped["cart_abandoners"].realtime_segment == "cart_abandoner"
    assert shipped["cart_abandoners"].destinations[0].type == "klaviyo"


def test_realtime_members_are_known_customers_whose_last_change_is_entered_and_the_rule_narrows_them():
    transitions = pd.DataFrame(
        [
            ("c0001", True, "high_intent:shoes", "entered"),
            ("c0002", True, "high_intent:bags", "entered"),
            ("c0002", True, "high_intent:bags", "exited"),  # left again
            ("c0003", True, "high_intent:bags", "entered"),
            ("anon-1", False, "high_intent:shoes", "entered"),  # no contact: never synced
            ("c0004", True, "premium_interest", "entered"),  # another segment
        ],
        columns=["id", "known_customer", "segment", "change"],
    )
    audience = Audience("intent", "", "true", (), realtime_segment="high_intent:*")
    assert current_realtime_members(transitions, audience) == ["c0001", "c0003"]
    conn = new_warehouse(10)
    members = select_members(conn, audience, current_realtime_members(transitions, audience))
    assert list(members["customer_id"]) == ["c0001", "c0003"]
    narrowed = Audience("intent", "", "recency_score >= 5", (), realtime_segment="high_intent:*")
    assert list(select_members(conn, narrowed, ["c0001", "c0003"])["customer_id"]) == []  # scores 4 and 2
    assert select_members(conn, audience, None).empty  # no log yet: nobody


def test_contacts_are_joined_at_the_sync_edge_from_the_contacts_view_not_stored_with_members():
    conn = new_warehouse(6)
    stored = select_members(conn, test_audience(rule="true"))[["customer_id", "is_control", "marketing_consent"]]
    members = with_contacts(conn, stored)
    assert list(members["customer_id"]) == list(stored["customer_id"])
    assert {"email", "phone", "first_name", "last_name", "postal_code"} <= set(members.columns)
    assert members["email"].notna().any()
