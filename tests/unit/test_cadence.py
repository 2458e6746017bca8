"""The refit rule of ml/cadence.py: keep the pinned fit on an ordinary day, refit for each documented reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from ml.cadence import (
    MATERIAL_CHANGE,
    TrainingSnapshot,
    decide_refit,
    derived_key,
    kept_message,
    largest_move,
)

FITTED = date(2026, 11, 20)
SETTINGS = {
    "horizon_days": "365",
    "feature_columns": "abc123",
    "code_versions": "btyd_models=v2,clv_model=v3",
    "library_versions": "lightgbm=4.7",
}
MEASURES = {
    "train.customers": 100_000.0,
    "train.orders": 250_000.0,
    "train.gross_revenue": 1.2e7,
    "train.future_buyers": 20_000.0,
    "scoring.customers": 110_000.0,
}


def snapshot(as_of: date = FITTED, **measures: float) -> TrainingSnapshot:
    return TrainingSnapshot(as_of, MEASURES | {k.replace("__", "."): v for k, v in measures.items()}, dict(SETTINGS))


def test_the_same_day_again_keeps_the_pinned_fit():
    decision = decide_refit(snapshot(), snapshot())
    assert not decision.refit and decision.age_days == 0
    assert decision.reason == "no training-window measure moved"


def test_next_days_with_small_moves_keep_it_although_the_as_of_date_moved():
    # A day of new orders moves the labelled window by about 1/horizon: well inside the threshold.
    for days in range(1, 7):
        current = snapshot(FITTED + timedelta(days=days), train__orders=250_000.0 * (1 + 0.003 * days))
        decision = decide_refit(snapshot(), current)
        assert not decision.refit, decision.reason
        assert decision.age_days == days and "train.orders" in decision.reason
    # The fingerprint ignores the as-of date, the fit key does not.
    assert snapshot(FITTED + timedelta(days=1)).fingerprint == snapshot().fingerprint
    assert snapshot(FITTED + timedelta(days=1)).key != snapshot().key


def test_a_week_old_fit_is_refitted_on_schedule_and_the_period_is_a_setting():
    week_later = snapshot(FITTED + timedelta(days=7))
    decision = decide_refit(snapshot(), week_later)
    assert decision.refit and decision.reason.startswith("scheduled: pinned fit is 7 days old")
    assert not decide_refit(snapshot(), week_later, refit_days=30).refit
    assert decide_refit(snapshot(), snapshot(), refit_days=0).refit  # 0: every run


def test_a_changed_training_window_refits_and_names_the_measure():
    moved = snapshot(FITTED + timedelta(days=1), train__customers=100_000.0 * (1 + MATERIAL_CHANGE + 0.01))
    decision = decide_refit(snapshot(), moved)
    assert decision.refit
    assert "train.customers" in decision.reason and "6.0%" in decision.reason
    # A new measure (e.g. a labelled window appearing) is a 100 % move.
    assert decide_refit(snapshot(), snapshot(selection__customers=5.0)).refit


@pytest.mark.parametrize("setting", ["horizon_days", "feature_columns", "code_versions", "library_versions"])
def test_a_changed_setting_refits(setting):
    current = replace(snapshot(), settings=SETTINGS | {setting: "changed"})
    decision = decide_refit(snapshot(), current)
    assert decision.refit and setting in decision.reason and "-> changed" in decision.reason


def test_force_first_run_missing_as_of_and_backfills_refit():
    assert decide_refit(snapshot(), snapshot(), force=True).reason.startswith("forced")
    assert decide_refit(None, snapshot()).reason == "no pinned fit yet"
    assert decide_refit(snapshot(), snapshot(as_of=None)).refit
    backfill = decide_refit(snapshot(), snapshot(FITTED - timedelta(days=1)))
    assert backfill.refit and "before the pinned fit" in backfill.reason


def test_snapshots_round_trip_and_keys_follow_their_inputs():
    original = snapshot()
    assert TrainingSnapshot.from_json(original.to_json()) == original
    assert derived_key("k1", seed=0) == derived_key("k1", seed=0)
    assert derived_key("k1", seed=0) != derived_key("k2", seed=0) != derived_key("k1", seed=1)
    assert largest_move({"a": 0.0}, {"a": 0.0}) == ("a", 0.0)
    message = kept_message("model abc", FITTED, 3, original.fingerprint, "largest move x")
    assert message.startswith("kept model abc (fitted 2026-11-20, 3 days ago; training data unchanged: ")


def test_the_cadence_settings_are_read_from_the_environment_with_one_line_errors():
    from orchestration.lib.settings import SettingsError, load_settings

    defaults = load_settings({})
    assert defaults.model_refit_days == 7 and defaults.force_refit is False
    chosen = load_settings({"SEGMINT_MODEL_REFIT_DAYS": "0", "SEGMINT_FORCE_REFIT": "yes"})
    assert chosen.model_refit_days == 0 and chosen.force_refit is True
    with pytest.raises(SettingsError, match="SEGMINT_MODEL_REFIT_DAYS=-1 must be at least 0"):
        load_settings({"SEGMINT_MODEL_REFIT_DAYS": "-1"})
    with pytest.raises(SettingsError, match="SEGMINT_FORCE_REFIT='maybe' must be"):
        load_settings({"SEGMINT_FORCE_REFIT": "maybe"})
