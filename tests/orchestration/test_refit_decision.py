"""The model chain's one refit decision (orchestration/lib/cadence.py, ml/model_refit_decision): the shared call
shape of the cadence steps, the back-test marts' own check, and the fingerprint of their definition."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import dagster as dg
import duckdb

from ml.cadence import FORCED, RefitDecision, TrainingSnapshot
from orchestration.defs.btyd import backtest_definition, stale_backtest_marts
from orchestration.defs.dbt_models import DBT_MANIFEST, carried_check_results
from orchestration.lib.cadence import (
    ChainDecision,
    PinnedFit,
    cadence_line,
    cadence_metadata,
    decide_on_cadence,
    follow_upstream,
    read_refit_decision,
)
from orchestration.lib.settings import load_settings
from orchestration.lib.warehouse_io import write_table

AS_OF = date(2026, 6, 30)
SNAPSHOT = TrainingSnapshot(AS_OF, {"train.customers": 100.0}, {"horizon_days": "365"})


def _pinned(as_of: date = AS_OF) -> PinnedFit:
    return PinnedFit("key1", as_of, "scheduled", SNAPSHOT)


def test_cadence_line_says_refit_or_what_was_kept_and_why():
    assert cadence_line(RefitDecision(True, "scheduled"), "x", AS_OF, "f") == "refit: scheduled"
    kept = cadence_line(RefitDecision(False, "no training-window measure moved", 2), "model v1", AS_OF, "fp")
    assert kept == (
        "kept model v1 (fitted 2026-06-30, 2 days ago; training data unchanged: fp; no training-window measure moved)"
    )
    metadata = cadence_metadata(RefitDecision(False, "why", 0), "fit k", "k", AS_OF, "fp")
    assert set(metadata) == {"cadence", "fit_key", "fitted_as_of"} and metadata["fit_key"].value == "k"


def test_decide_on_cadence_applies_the_run_settings(monkeypatch):
    monkeypatch.setenv("SEGMINT_MODEL_REFIT_DAYS", "7")
    monkeypatch.delenv("SEGMINT_FORCE_REFIT", raising=False)
    later = TrainingSnapshot(AS_OF + timedelta(days=7), SNAPSHOT.measures, SNAPSHOT.settings)
    assert decide_on_cadence(SNAPSHOT, later, load_settings()).reason.startswith("scheduled: pinned fit is 7 days")
    tomorrow = TrainingSnapshot(AS_OF + timedelta(days=1), SNAPSHOT.measures, SNAPSHOT.settings)
    assert not decide_on_cadence(SNAPSHOT, tomorrow, load_settings()).refit
    assert decide_on_cadence(SNAPSHOT, tomorrow, load_settings(), force=True).reason == FORCED
    monkeypatch.setenv("SEGMINT_FORCE_REFIT", "1")
    assert decide_on_cadence(SNAPSHOT, tomorrow, load_settings()).reason == FORCED


def test_follow_upstream_refits_exactly_when_the_key_moved(monkeypatch):
    monkeypatch.delenv("SEGMINT_FORCE_REFIT", raising=False)
    settings, upstream = load_settings(), _pinned()
    stored = PinnedFit("k-eval", AS_OF, "first")
    kept = follow_upstream(stored, "k-eval", upstream, AS_OF + timedelta(days=3), settings, force=False)
    assert not kept.refit and kept.age_days == 3 and kept.reason == "BTYD fit key1 unchanged"
    moved = follow_upstream(stored, "k-new", upstream, AS_OF, settings, force=False)
    assert moved.refit and moved.reason == "ml/btyd_models refitted (scheduled); key k-eval -> k-new"
    assert follow_upstream(None, "k", upstream, AS_OF, settings, force=False).reason == "no pinned fit yet"
    assert follow_upstream(stored, "k-eval", upstream, AS_OF, settings, force=True).reason == FORCED


def _marts(path, train_cutoff: date | None, selection_cutoff: date | None) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    conn.execute("create schema if not exists marts")
    for name, cutoff in (("customer_features_train", train_cutoff), ("customer_features_selection", selection_cutoff)):
        if cutoff is not None:
            conn.execute(
                f"create or replace table marts.{name} as select 'c1' as customer_id, ?::date as cutoff_date", [cutoff]
            )
    return conn


def test_back_test_marts_must_be_the_pinned_fits(tmp_path):
    horizon = timedelta(days=365)
    with _marts(tmp_path / "a.duckdb", AS_OF - horizon, AS_OF - 2 * horizon) as conn:
        assert stale_backtest_marts(conn, _pinned()) is None
        # Built for a later day than the pinned fit (a failed run, a restored table): the chain must refit.
        reason = stale_backtest_marts(conn, _pinned(AS_OF - timedelta(days=1)))
        assert reason == (
            "back-test mart marts.customer_features_train has cut-off 2025-06-30, the pinned fit's is 2025-06-29"
        )
    with _marts(tmp_path / "b.duckdb", AS_OF - horizon, None) as conn:
        assert stale_backtest_marts(conn, _pinned()) == "back-test mart marts.customer_features_selection is missing"
        conn.execute("delete from marts.customer_features_train")
        conn.execute("create table marts.customer_features_selection as select * from marts.customer_features_train")
        assert stale_backtest_marts(conn, _pinned()) is None  # empty marts (a young shop): nothing to disagree with


def test_the_stored_decision_round_trips(tmp_path):
    decision = ChainDecision(False, "largest move x", "key1", SNAPSHOT, 3, AS_OF - timedelta(days=3), "fp")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        assert read_refit_decision(conn) is None
        write_table(conn, "ml.model_refit_decision", decision.to_frame())
        assert read_refit_decision(conn) == decision


def test_the_back_test_definition_follows_the_marts_and_their_macros():
    manifest = json.loads(DBT_MANIFEST.read_text(encoding="utf-8"))
    original = backtest_definition(manifest)
    assert original == backtest_definition(copy.deepcopy(manifest))
    changed = copy.deepcopy(manifest)
    changed["macros"]["macro.segmint.future_labels"]["macro_sql"] += "\n-- a changed label rule"
    assert backtest_definition(changed) != original
    nested = copy.deepcopy(manifest)  # a macro customer_features_at calls, not the mart itself
    nested["macros"]["macro.segmint.first_by"]["macro_sql"] += " "
    assert backtest_definition(nested) != original
    other = copy.deepcopy(manifest)  # a model the back-test marts do not depend on
    other["nodes"]["model.segmint.prospect_features"]["checksum"]["checksum"] = "0" * 64
    assert backtest_definition(other) == original


def test_kept_marts_carry_test_results_only_when_every_one_passed_on_record():
    check = dg.AssetCheckKey(
        dg.AssetKey(["marts", "customer_features_train"]), "unique_customer_features_train_customer_id"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        assert carried_check_results(instance, []) == []
        assert carried_check_results(instance, [check]) is None  # nothing on record: dbt tests them again
