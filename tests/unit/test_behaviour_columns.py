"""A behaviour column is written in dbt (macros/behaviour_features.sql) and listed once in Python
(ml/feature_columns.py, which the GX suite, clustering, CLV and lookalike models read). These tests keep the two in
step, and rehearse adding one: a share added to the macros but not to the Python list is named, and so is the
reverse. (docs/ARCHITECTURE.md "Adding a behaviour column" lists the files to touch.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ml import feature_columns

ROOT = Path(__file__).resolve().parents[2]
MACROS = ROOT / "dbt_project" / "macros" / "behaviour_features.sql"
MART_DOCS = ROOT / "dbt_project" / "models" / "marts" / "customer_features.yml"


def macro_body(sql: str, name: str) -> str:
    match = re.search(r"{%-?\s*macro\s+" + name + r"\(.*?%}(.*?){%-?\s*endmacro\s*-?%}", sql, re.S)
    assert match, f"macro {name} not found"
    return match.group(1)


def disagreements(sql: str, shares: tuple[str, ...]) -> list[str]:
    """Every way the macros and the Python list of behaviour shares differ, one line each."""
    listed = re.findall(r"\b([a-z_]+)\b", macro_body(sql, "behaviour_shares"))
    computed = set(re.findall(r"\bas\s+([a-z_]+)", macro_body(sql, "behaviour_features")))
    surfaced = set(re.findall(r"\bas\s+([a-z_]+)", macro_body(sql, "behaviour_columns")))
    problems = [
        f"{name} is in behaviour_shares() but not in ml/feature_columns.py BEHAVIOUR_SHARES"
        for name in listed
        if name not in shares
    ]
    problems += [
        f"{name} is in BEHAVIOUR_SHARES but not in behaviour_shares()" for name in shares if name not in listed
    ]
    problems += [f"{name} is not computed by behaviour_features()" for name in listed if name not in computed]
    problems += [f"{name} is not in behaviour_columns()" for name in listed if name not in surfaced]
    return problems


def test_the_dbt_macros_and_the_python_list_name_the_same_behaviour_shares():
    assert disagreements(MACROS.read_text(), feature_columns.BEHAVIOUR_SHARES) == []


def test_every_behaviour_share_is_documented_in_the_feature_mart():
    [model] = [m for m in yaml.safe_load(MART_DOCS.read_text())["models"] if m["name"] == "customer_features"]
    assert set(feature_columns.BEHAVIOUR_SHARES) <= {column["name"] for column in model["columns"]}


def test_a_share_added_on_one_side_only_is_named():
    sql = MACROS.read_text()
    # The dbt half of adding `wishlist_share`: a share in behaviour_features, its 0 default, the shared list.
    added = (
        sql.replace(
            "as urgency_share,\n        coalesce(sum(cart_add",
            "as urgency_share,\n        sum(wishlist_event_count) / sum(event_count) as wishlist_share,\n"
            "        coalesce(sum(cart_add",
        )
        .replace(
            "as urgency_share,\n    coalesce({{ alias }}.cart_add",
            "as urgency_share,\n    coalesce({{ alias }}.wishlist_share, 0) as wishlist_share,\n"
            "    coalesce({{ alias }}.cart_add",
        )
        .replace(
            "        urgency_share\n{%- endmacro %}", "        urgency_share,\n        wishlist_share\n{%- endmacro %}"
        )
    )
    assert added.count("wishlist_share") == 4
    assert disagreements(added, feature_columns.BEHAVIOUR_SHARES) == [
        "wishlist_share is in behaviour_shares() but not in ml/feature_columns.py BEHAVIOUR_SHARES"
    ]
    assert disagreements(added, (*feature_columns.BEHAVIOUR_SHARES, "wishlist_share")) == []
    assert disagreements(sql, (*feature_columns.BEHAVIOUR_SHARES, "wishlist_share")) == [
        "wishlist_share is in BEHAVIOUR_SHARES but not in behaviour_shares()"
    ]
