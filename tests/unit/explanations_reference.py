"""Frozen reference: ml/explanations.py as it was before the vectorized rewrite (commit 93fc8bc), per-customer loop.

tests/unit/test_explanations_equivalence.py checks the vectorized explain_customers against this byte for byte.
Do not edit except to follow a deliberate change of the explanation contract (then change both, with the reason).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from ml.clustering import NO_WEB_ACTIVITY_CLUSTER
from ml.rfm import SEGMENT_RULES, SegmentRule

EXPLANATION_COLUMNS = ["customer_id", "segment_kind", "segment", "explanation", "evidence"]
MAX_CLUSTER_ATTRIBUTES = 3
# A "small" standardized difference (Cohen): smaller ones do not distinguish a cluster from the base.
MIN_ABS_Z = 0.2
# What a population model's prediction rests on, when it has no per-customer drivers.
POPULATION_MODEL_INPUTS = {
    "bgnbd": "repeat orders, recency and tenure (BG/NBD) with average order value (Gamma-Gamma)",
    "pareto_nbd": "repeat orders, recency and tenure (Pareto/NBD) with average order value (Gamma-Gamma)",
    "past_spend_rate": "revenue to date divided by tenure (at least one horizon)",
}


def _label(feature: str) -> str:
    return feature.replace("_", " ")


def _number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)  # a categorical feature (acquisition_channel) or a flag
    number = float(value)
    return f"{number:,.0f}" if number.is_integer() and abs(number) >= 1 else f"{number:,.{digits}f}"


def _range(bounds: tuple[int, int]) -> str:
    low, high = bounds
    return str(low) if low == high else f"{low}-{high}"


def matched_rfm_rule(recency: int, frequency: int, monetary: int) -> tuple[int, SegmentRule]:
    """(1-based priority, rule): the first rule of SEGMENT_RULES the three scores match, as assign_segments does."""
    scores = (np.array([recency]), np.array([frequency]), np.array([monetary]))
    for position, rule in enumerate(SEGMENT_RULES, start=1):
        if bool(rule.matches(*scores)[0]):
            return position, rule
    raise ValueError(f"no RFM rule matches scores {recency}/{frequency}/{monetary}")  # the catch-all prevents it


def rule_priorities(recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """1-based priority of the first SEGMENT_RULES rule each customer matches (vectorized matched_rfm_rule)."""
    priority = np.zeros(len(recency), dtype="int64")
    for position, rule in enumerate(SEGMENT_RULES, start=1):
        priority[(priority == 0) & rule.matches(recency, frequency, monetary)] = position
    return priority


def _named_clause(row: Any) -> str:
    """Why the name reads a higher recency score than the quintile (ml/rfm.py's repurchase-cycle floors), or ''."""
    if row.named_recency_score <= row.recency_score:
        return ""
    return (
        f", named as recency score {row.named_recency_score} (the last order is too recent to name lapsing in a shop "
        f"younger than its CLV horizon of {_number(row.repurchase_cycle_days)} days)"
    )


def _rfm_row(row: Any, priority: int) -> dict[str, Any]:
    rule = SEGMENT_RULES[priority - 1]
    sentence = (
        f"{row.rfm_segment}: recency score {row.recency_score} (last order {_number(row.recency_days)} days before "
        f"the as-of date), frequency score {row.frequency_score} ({_number(row.order_count)} order{'' if row.order_count == 1 else 's'}), monetary "
        f"score {row.monetary_score} ({_number(row.total_revenue)} net revenue){_named_clause(row)}. It matched rule {priority} of "
        f"{len(SEGMENT_RULES)} (recency {_range(rule.recency)}, frequency {_range(rule.frequency)}, monetary "
        f"{_range(rule.monetary)}; the first matching rule wins): {rule.meaning}."
    )
    evidence = {
        "rule_priority": priority,
        "rule": {"recency_score": _range(rule.recency), "frequency_score": _range(rule.frequency),
                 "monetary_score": _range(rule.monetary), "meaning": rule.meaning},
        "scores": {"recency_score": int(row.recency_score), "frequency_score": int(row.frequency_score),
                   "monetary_score": int(row.monetary_score), "named_recency_score": int(row.named_recency_score)},
        "values": {"recency_days": _json_number(row.recency_days), "order_count": _json_number(row.order_count),
                   "total_revenue": _json_number(row.total_revenue),
                   "repurchase_cycle_days": _json_number(row.repurchase_cycle_days)},
    }  # fmt: skip
    return {"segment_kind": "rfm", "segment": row.rfm_segment, "explanation": sentence, "evidence": evidence}


def _json_number(value: Any) -> float | str | bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if not isinstance(value, (int, float, np.number)):
        return str(value)
    return round(float(value), 4)


def cluster_highlights(profiles: pd.DataFrame) -> dict[int, list[dict[str, Any]]]:
    """Per cluster_id, its MAX_CLUSTER_ATTRIBUTES most distinguishing features (|z| >= MIN_ABS_Z, largest first)."""
    if profiles.empty:
        return {}
    strong = profiles[profiles["z_score"].abs() >= MIN_ABS_Z].copy()
    strong["abs_z"] = strong["z_score"].abs()
    strong = strong.sort_values(["cluster_id", "abs_z", "feature"], ascending=[True, False, True])
    highlights: dict[int, list[dict[str, Any]]] = {}
    for cluster_id, group in strong.groupby("cluster_id", sort=True):
        highlights[int(cluster_id)] = [
            {"feature": r.feature, "cluster_mean": round(float(r.mean), 4), "base_mean": round(float(r.base_mean), 4),
             "z_score": round(float(r.z_score), 2)}
            for r in group.head(MAX_CLUSTER_ATTRIBUTES).itertuples(index=False)
        ]  # fmt: skip
    return highlights


def _behavioral_row(row: Any, highlights: dict[int, list[dict[str, Any]]], features: dict[str, Any]) -> dict[str, Any]:
    cluster_id = None if pd.isna(row.cluster_id) else int(row.cluster_id)
    attributes = highlights.get(cluster_id, []) if cluster_id is not None else []
    evidence: dict[str, Any] = {"cluster_id": cluster_id, "attributes": []}
    if cluster_id == NO_WEB_ACTIVITY_CLUSTER:
        sentence = f"{row.behavioral_segment}: no web events at or before the as-of date, so no behaviour to cluster."
        return {
            "segment_kind": "behavioral",
            "segment": row.behavioral_segment,
            "explanation": sentence,
            "evidence": evidence,
        }
    if not attributes:
        sentence = (
            f"{row.behavioral_segment}: assigned without a distinguishing cluster profile "
            "(no attribute differs from the base by a small effect or more, or the customer was not clustered)."
        )
        return {
            "segment_kind": "behavioral",
            "segment": row.behavioral_segment,
            "explanation": sentence,
            "evidence": evidence,
        }
    parts = []
    for attribute in attributes:
        own = features.get(attribute["feature"])
        direction = "higher" if attribute["z_score"] > 0 else "lower"
        own_text = f"; this customer {_number(own)}" if own is not None else ""
        parts.append(
            f"{_label(attribute['feature'])} {_number(attribute['cluster_mean'])} vs {_number(attribute['base_mean'])} "
            f"in the base ({direction}, z {attribute['z_score']:+.1f}{own_text})"
        )
        evidence["attributes"].append(attribute | {"customer_value": _json_number(own)})
    sentence = f"{row.behavioral_segment} (cluster {cluster_id}): its customers stand out by " + "; ".join(parts) + "."
    return {
        "segment_kind": "behavioral",
        "segment": row.behavioral_segment,
        "explanation": sentence,
        "evidence": evidence,
    }


def _drivers(text: Any) -> list[dict[str, Any]]:
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return []
    parsed = json.loads(text) if isinstance(text, str) else text
    return [d for d in parsed if isinstance(d, dict) and "feature" in d]


def _value_row(row: Any, features: dict[str, Any], horizon_days: int | None) -> dict[str, Any]:
    drivers = _drivers(row.top_drivers)
    horizon = f" over the next {horizon_days} days" if horizon_days else ""
    head = (
        f"Predicted CLV {_number(row.predicted_clv)}{horizon} (purchase propensity "
        f"{_number(row.purchase_propensity)}), model {row.clv_model}"
    )
    evidence: dict[str, Any] = {
        "model": row.clv_model, "predicted_clv": _json_number(row.predicted_clv),
        "purchase_propensity": _json_number(row.purchase_propensity), "drivers": [],
    }  # fmt: skip
    if drivers:
        parts = []
        for driver in drivers:
            contribution = float(driver.get("contribution", 0.0))
            own = features.get(driver["feature"])
            own_text = f" = {_number(own)}" if own is not None else ""
            parts.append(
                f"{_label(driver['feature'])}{own_text} {'raised' if contribution > 0 else 'lowered'} it "
                f"({contribution:+.2f})"
            )
            evidence["drivers"].append(
                {
                    "feature": driver["feature"],
                    "contribution": round(contribution, 4),
                    "customer_value": _json_number(own),
                }
            )
        sentence = f"{head}; top drivers: " + "; ".join(parts) + "."
    else:
        basis = POPULATION_MODEL_INPUTS.get(str(row.clv_model), "the model's population-level inputs")
        sentence = f"{head}; a population model without per-customer drivers: it rests on {basis}."
    return {
        "segment_kind": "predicted_value",
        "segment": str(row.clv_model),
        "explanation": sentence,
        "evidence": evidence,
    }


def explain_customers(
    scores: pd.DataFrame,
    behavioral: pd.DataFrame,
    profiles: pd.DataFrame,
    features: pd.DataFrame,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """EXPLANATION_COLUMNS, three rows per customer of `scores` (rfm, behavioral, predicted_value), by customer_id.

    `scores`: one row per customer with customer_id, RFM scores and segment, behavioral_segment, recency_days,
    order_count, total_revenue, predicted_clv, purchase_propensity, clv_model, top_drivers (the columns of
    marts.customer_scores; the asset reads them from the tables customer_scores joins, to run before it). `behavioral`:
    ml.behavioral_segments (customer_id, cluster_id). `profiles`: ml.cluster_profiles. `features`:
    marts.customer_features (the customer's own value of each attribute named in a reason).
    """
    if scores.empty:
        return pd.DataFrame({column: pd.Series(dtype="object") for column in EXPLANATION_COLUMNS})
    base = scores.drop(columns=["cluster_id"], errors="ignore").merge(
        behavioral[["customer_id", "cluster_id"]], on="customer_id", how="left", validate="one_to_one"
    )
    base = base.sort_values("customer_id", kind="stable")
    if "named_recency_score" not in base.columns:  # scores named from the quintiles alone (no repurchase cycle)
        base = base.assign(named_recency_score=base["recency_score"], repurchase_cycle_days=np.nan)
    highlights = cluster_highlights(profiles)
    named = {a["feature"] for attributes in highlights.values() for a in attributes}
    named |= {d["feature"] for text in base["top_drivers"] for d in _drivers(text)}
    feature_columns = [column for column in sorted(named) if column in features.columns]
    own_values = features.set_index("customer_id")[feature_columns].to_dict("index") if feature_columns else {}
    priorities = rule_priorities(
        *(
            base[column].to_numpy(dtype="int64")
            for column in ("named_recency_score", "frequency_score", "monetary_score")
        )
    )
    rows = []
    for row, priority in zip(base.itertuples(index=False), priorities, strict=True):
        own = {k: v for k, v in own_values.get(row.customer_id, {}).items() if not pd.isna(v)}
        for made in (
            _rfm_row(row, int(priority)),
            _behavioral_row(row, highlights, own),
            _value_row(row, own, horizon_days),
        ):
            rows.append({"customer_id": row.customer_id, **made, "evidence": json.dumps(made["evidence"])})
    return pd.DataFrame(rows, columns=EXPLANATION_COLUMNS)
