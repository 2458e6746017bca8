"""ml/fairness_audit and check_four_fifths_rule against a tmp DuckDB with a planted biased audience."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from orchestration.defs import fairness
from orchestration.defs.audiences import AUDIENCES
from orchestration.defs.resources import Warehouse
from tests.unit.test_fairness import customers

BIASED = "champions"  # planted: takes half of the US customers and a tenth of the CA customers


def _warehouse(tmp_path) -> str:
    base = customers()
    path = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(path) as conn:
        conn.execute("create schema marts; create schema audiences")
        conn.register("base", base)
        conn.execute(
            "create table marts.customer_scores as select customer_id, predicted_clv, purchase_propensity from base"
        )
        conn.execute("create table marts.customer_features as select customer_id, country from base")
        for audience in AUDIENCES:
            rule = (
                "(country = 'US' and customer_id[-1:] in ('0', '2', '4', '6', '8')) "
                "or (country = 'CA' and customer_id[-1:] = '0')"
                if audience.name == BIASED
                else "customer_id[-1:] in ('1', '3', '5', '7', '9')"
            )
            conn.execute(f"create table audiences.{audience.name} as select customer_id from base where {rule}")
    return path


@pytest.mark.parametrize("blocking", [False, True])
def test_the_planted_biased_audience_fails_the_check_as_a_warning_or_an_error(tmp_path, monkeypatch, blocking):
    config = tmp_path / "fairness.yaml"
    config.write_text(
        f"version: 1\nblocking: {str(blocking).lower()}\nattributes:\n  - {{name: country, kind: proxy}}\n"
        "  - {name: gender, kind: protected}\n"
    )
    monkeypatch.setattr(fairness, "FAIRNESS_FILE", config)
    result = dg.materialize(
        [fairness.fairness_audit, fairness.check_four_fifths_rule],
        resources={"warehouse": Warehouse(path=_warehouse(tmp_path))},
        raise_on_error=False,
    )
    metadata = result.asset_materializations_for_node("ml__fairness_audit")[0].metadata
    assert metadata["attributes_not_available"].value == ["gender"]
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == (dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN)
    assert f"audience {BIASED}: country=CA at selection 0.20 (p " in evaluation.description
    # Only the planted audience is flagged (the others take every odd id in both countries).
    assert all(line.startswith(f"audience {BIASED}") or line.startswith("model") for line in metadata["flagged"].value)
