"""When the CLV chain is refitted: the one rule (decide_refit) and the keys that pin what each step was fitted on.

Daily runs score every customer with the pinned model; the model chain (ml/btyd_models -> ml/clv_model_evaluation
-> ml/clv_model) is refitted only when one of these holds, checked in this order by decide_refit:
1. forced: SEGMINT_FORCE_REFIT=1, or `force_refit: true` in the launchpad config of a model asset;
2. nothing is pinned yet (first run, or a table written before fits were keyed);
3. the as-of date is before the pinned fit's: that fit has seen labels after today's cut-off (a backfill), so it
   cannot score this day without leaking the future;
4. a setting changed: the CLV horizon, the feature columns (name and type of every column of the scoring feature
   table), the definition of the back-test marts (their dbt models and macros), a model step's code version, the
   LightGBM/SciPy versions (SETTINGS_THAT_REFIT);
5. the pinned fit is SEGMINT_MODEL_REFIT_DAYS days old or older (default 7, weekly; 0 refits on every run);
6. the training data moved materially: one of the training-window measures (customers, orders, gross revenue,
   repeat buyers, and for the labelled windows future buyers and future revenue, at each of the three cut-offs)
   moved by more than MATERIAL_CHANGE (5 %) relative to the pinned fit's.
The as-of date itself is deliberately not a trigger: it moves every day, so a date-based fingerprint would refit
daily, which is what this module exists to avoid. A day of new orders moves the measures by about 1/horizon of the
label window, late data by less; both stay well inside 5 %, and the weekly refit catches the slow drift.

Revenue measures are in the reporting currency (the feature marts convert every order to it), never summed across
currencies.

ml/model_refit_decision applies this rule once per run, before the back-test marts, which dbt builds only on a
refit (orchestration/lib/cadence.py); ml/btyd_models follows that decision, and the steps after it follow the
mechanical Dagster rule "refit when an input's version or my own settings changed" (derived_key): each stores
the key of what it was fitted on beside its output, and returns it as its Dagster data version, so an unchanged
key means an unchanged output and the UI shows downstream steps up to date.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date

DEFAULT_REFIT_DAYS = 7
# Largest relative move of a training-window measure that still counts as "the same training data".
MATERIAL_CHANGE = 0.05
FORCED = "forced (SEGMINT_FORCE_REFIT or force_refit in the run config)"
SETTINGS_THAT_REFIT = ("horizon_days", "feature_columns", "backtest_definition", "code_versions", "library_versions")


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TrainingSnapshot:
    """What a fit was made on: the as-of date, the training-window measures and the settings that shape the fit."""

    as_of: date | None
    measures: dict[str, float] = field(default_factory=dict)  # "<cut-off>.<measure>" -> value
    settings: dict[str, str] = field(default_factory=dict)  # SETTINGS_THAT_REFIT -> value (text)

    @property
    def fingerprint(self) -> str:
        """The training data + settings, without the as-of date (see the module docstring)."""
        return _digest({"measures": self.measures, "settings": self.settings})

    @property
    def key(self) -> str:
        """The fit's identity: fingerprint + as-of date (features such as recency follow the as-of date)."""
        return _digest({"fingerprint": self.fingerprint, "as_of": self.as_of})

    def to_json(self) -> str:
        as_of = self.as_of.isoformat() if self.as_of else None
        return json.dumps({"as_of": as_of, "measures": self.measures, "settings": self.settings}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingSnapshot:
        data = json.loads(text)
        as_of = date.fromisoformat(data["as_of"]) if data.get("as_of") else None
        return cls(as_of, {k: float(v) for k, v in data["measures"].items()}, dict(data["settings"]))


@dataclass(frozen=True)
class RefitDecision:
    refit: bool
    reason: str  # why it refits, or the largest move of the training data when it keeps the pinned fit
    age_days: int | None = None  # days since the pinned fit (None when nothing is pinned or no as-of is known)


def relative_change(old: float, new: float) -> float:
    """|new - old| / |old|; from zero, any change counts as 100 %."""
    if old == new:
        return 0.0
    return abs(new - old) / abs(old) if old else 1.0


def largest_move(pinned: dict[str, float], current: dict[str, float]) -> tuple[str, float]:
    """The measure that moved most (relative), and by how much; a measure present on one side only moves 100 %."""
    moves = {name: relative_change(pinned.get(name, 0.0), current.get(name, 0.0)) for name in {*pinned, *current}}
    if not moves:
        return "none", 0.0
    name = max(sorted(moves), key=lambda n: moves[n])
    return name, moves[name]


def decide_refit(
    pinned: TrainingSnapshot | None,
    current: TrainingSnapshot,
    refit_days: int = DEFAULT_REFIT_DAYS,
    force: bool = False,
    material_change: float = MATERIAL_CHANGE,
) -> RefitDecision:
    """Refit or keep the pinned fit: the rule of the module docstring, first matching reason wins."""
    age = (current.as_of - pinned.as_of).days if pinned and pinned.as_of and current.as_of else None
    if force:
        return RefitDecision(True, FORCED, age)
    if pinned is None:
        return RefitDecision(True, "no pinned fit yet", None)
    if age is None:
        return RefitDecision(True, "no as-of date to age the pinned fit by (raw.run_context missing)", None)
    if age < 0:
        return RefitDecision(
            True, f"as-of {current.as_of} is before the pinned fit's {pinned.as_of} (it has seen later labels)", age
        )
    changed = [name for name in SETTINGS_THAT_REFIT if pinned.settings.get(name) != current.settings.get(name)]
    if changed:
        details = "; ".join(f"{name} {pinned.settings.get(name)} -> {current.settings.get(name)}" for name in changed)
        return RefitDecision(True, f"settings changed: {details}", age)
    if age >= refit_days:
        return RefitDecision(
            True, f"scheduled: pinned fit is {age} days old (SEGMINT_MODEL_REFIT_DAYS={refit_days})", age
        )
    name, move = largest_move(pinned.measures, current.measures)
    old, new = pinned.measures.get(name, 0.0), current.measures.get(name, 0.0)
    moved = f"{name} {old:,.6g} -> {new:,.6g} ({move:.1%})"
    if move > material_change:
        return RefitDecision(True, f"training data moved more than {material_change:.0%}: {moved}", age)
    if move == 0:
        return RefitDecision(False, "no training-window measure moved", age)
    return RefitDecision(False, f"largest move {moved}, within {material_change:.0%}", age)


def kept_message(artefact: str, fitted_as_of: date | None, age_days: int | None, fingerprint: str, why: str) -> str:
    """The metadata line of a step that kept its pinned output."""
    age = f", {age_days} days ago" if age_days is not None else ""
    return f"kept {artefact} (fitted {fitted_as_of}{age}; training data unchanged: {fingerprint}; {why})"


def derived_key(upstream_key: str, **settings) -> str:
    """Key of a step fitted on an upstream fit with these settings: changes exactly when either does."""
    return _digest({"upstream": upstream_key, **settings})
