"""The model cadence's call shapes, one owner each: a pinned fit, the decision of a step that applies the cadence rule
(decide_on_cadence), the follow-up of a step keyed on an upstream fit (follow_upstream), the `cadence` metadata
line and keys every such step shows (cadence_line, cadence_metadata), and the model chain's stored decision.

ml/model_refit_decision applies ml.cadence.decide_refit once per run for the CLV chain and stores the outcome in
ml.model_refit_decision (one row). dbt_backtest_models builds the back-test marts only when it says "refit", and
ml/btyd_models follows it, so the marts, the BTYD fits and the steps keyed on them always belong to the same fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg
import duckdb
import pandas as pd

from ml.cadence import FORCED, RefitDecision, TrainingSnapshot, decide_refit, kept_message
from orchestration.lib.settings import Settings
from orchestration.lib.warehouse_io import table_exists

REFIT_DECISION_TABLE = "ml.model_refit_decision"


@dataclass(frozen=True)
class PinnedFit:
    """What a model step stored beside its output: the key it was fitted for, when, and why."""

    key: str
    fitted_as_of: date | None
    reason: str
    snapshot: TrainingSnapshot | None = None

    @property
    def fingerprint(self) -> str:
        """The training data it was fitted on (its key when no snapshot was stored)."""
        return self.snapshot.fingerprint if self.snapshot else self.key


def decide_on_cadence(
    pinned: TrainingSnapshot | None, current: TrainingSnapshot, settings: Settings, force: bool = False
) -> RefitDecision:
    """ml.cadence.decide_refit with the run's settings: SEGMINT_MODEL_REFIT_DAYS, and SEGMINT_FORCE_REFIT or the
    step's own `force_refit` launchpad switch."""
    return decide_refit(pinned, current, refit_days=settings.model_refit_days, force=settings.force_refit or force)


def follow_upstream(
    stored: PinnedFit | None, key: str, upstream: PinnedFit, as_of: date | None, settings: Settings, force: bool
) -> RefitDecision:
    """A step keyed on an upstream fit (ml/clv_model_evaluation, ml/clv_model): refit exactly when its key (upstream
    fit + own settings) moved, or forced. The cadence rule itself is applied once, by ml/model_refit_decision; this
    is the mechanical follow-up, the same one Dagster applies to data versions."""
    age = (as_of - stored.fitted_as_of).days if stored and as_of and stored.fitted_as_of else None
    if settings.force_refit or force:
        return RefitDecision(True, FORCED, age)
    if stored is None:
        return RefitDecision(True, "no pinned fit yet", None)
    if stored.key != key:
        return RefitDecision(True, f"ml/btyd_models refitted ({upstream.reason}); key {stored.key} -> {key}", age)
    return RefitDecision(False, f"BTYD fit {upstream.key} unchanged", age)


@dataclass(frozen=True)
class ChainDecision:
    """One run's decision for the model chain: refit on `snapshot`, or keep the pinned fit `fit_key`."""

    refit: bool
    reason: str  # why it refits, or the largest move of the training data when it keeps
    fit_key: str  # the key the chain holds after this run: the new snapshot's on a refit, the pinned fit's otherwise
    snapshot: TrainingSnapshot  # this run's training data (what a refit is fitted on)
    age_days: int | None = None
    pinned_as_of: date | None = None  # the pinned fit's as-of date (None when nothing was pinned)
    pinned_fingerprint: str | None = None

    @property
    def as_of(self) -> date | None:
        return self.snapshot.as_of

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "as_of": pd.Series([self.as_of], dtype="object"),
                "refit": [self.refit],
                "reason": [self.reason],
                "fit_key": [self.fit_key],
                "snapshot": [self.snapshot.to_json()],
                "age_days": pd.Series([self.age_days], dtype="Int64"),
                "pinned_as_of": pd.Series([self.pinned_as_of], dtype="object"),
                "pinned_fingerprint": pd.Series([self.pinned_fingerprint], dtype="object"),
            }
        )


def read_refit_decision(conn: duckdb.DuckDBPyConnection) -> ChainDecision | None:
    """The decision ml/model_refit_decision stored (None before its first run)."""
    if not table_exists(conn, REFIT_DECISION_TABLE):
        return None
    row = conn.execute(
        "select refit, reason, fit_key, snapshot, age_days, pinned_as_of, pinned_fingerprint"
        f" from {REFIT_DECISION_TABLE} limit 1"
    ).fetchone()
    if row is None:
        return None
    refit, reason, key, snapshot, age, pinned_as_of, fingerprint = row
    return ChainDecision(
        bool(refit), reason, key, TrainingSnapshot.from_json(snapshot),
        None if age is None else int(age), pinned_as_of, fingerprint,
    )  # fmt: skip


def cadence_line(decision: RefitDecision, artefact: str, fitted_as_of: date | None, fingerprint: str | None) -> str:
    """The `cadence` metadata line of a step on the model cadence: `refit: <reason>`, or what it kept and why."""
    if decision.refit:
        return f"refit: {decision.reason}"
    return kept_message(artefact, fitted_as_of, decision.age_days, fingerprint or "", decision.reason)


def cadence_metadata(
    decision: RefitDecision, artefact: str, key: str, fitted_as_of: date | None, fingerprint: str | None
) -> dict[str, dg.MetadataValue]:
    """What every step on the model cadence shows in the UI: the cadence line, the key it holds, and since when."""
    return {
        "cadence": dg.MetadataValue.text(cadence_line(decision, artefact, fitted_as_of, fingerprint)),
        "fit_key": dg.MetadataValue.text(key),
        "fitted_as_of": dg.MetadataValue.text(str(fitted_as_of)),
    }
