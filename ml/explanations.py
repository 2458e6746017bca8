"""Why each customer is in each of their segments: the texts behind marts.customer_explanations.

The view marts.customer_explanations has three rows per customer of marts.customer_features (`segment_kind`):
- `rfm`: the rule of ml.rfm.SEGMENT_RULES that matched (the first one, as assign_segments applies them, on the
  named recency score: the quintile, raised by a young shop's repurchase-cycle floor, and the sentence says so when it
  was), its score ranges and meaning, and the customer's three scores with the values they come from;
- `behavioral`: the customer's cluster and its most distinguishing attributes against the whole base (ml.cluster_profiles:
  standardized mean difference, largest |z| first, at least MIN_ABS_Z), each with the customer's own value;
- `predicted_value`: predicted CLV and purchase propensity, the champion model, and the top drivers of this
  customer's prediction (ml.clv_predictions.top_drivers: TreeSHAP contributions in the model's raw units, signed;
  for the hurdle, a log-scale attribution of P(buy) x E[spend | buy]: ml.clv.hurdle_log_contributions);
  a population model (BTYD, past-spend rate) has no per-customer drivers, and the sentence says what it uses.
`explanation` is plain text; `evidence` is the same as JSON text (`json_extract` in DuckDB).

**Explained on read (issue 18).** Nothing downstream in the graph reads the explanations; analysts read them in SQL
and a profile API serves one customer's rows. Writing 3 rows of text per customer on every run cost 72 s (full run)
and 70 s (daily refresh) at 1 M customers, plus 11.9 s for the dbt model that copied them, for rows that are
mostly never read. So the dbt model is a **view** that assembles each customer's sentences and evidence in SQL when
it is read (dbt_project/models/marts/scores/customer_explanations.sql, macros/explanations.sql), from the tables it
already depends on and three SMALL tables this module builds once per run (O(rules + clusters + models) rows):
- `rfm_rule_texts()` -> ml.explanation_rfm_rules: per score combination (5 x 5 x 5), the rule it matches and the
  rule's text and JSON head (the matching stays here, in Python, next to SEGMENT_RULES: one owner);
- `cluster_texts(profiles)` -> ml.explanation_clusters: per cluster, the text that follows the segment name and, for
  each of its MAX_CLUSTER_ATTRIBUTES slots, the attribute's feature, text and JSON head (the customer's own value is
  looked up by the view); a row with a NULL cluster_id is the text of a cluster without a profile;
- `model_texts()` -> ml.explanation_models: what a population model's prediction rests on (a NULL clv_model row is
  the text of any other model).
(On Spark the model is a table computed once per run: the Derby metastore keeps at most 32,700 characters of a
view's SQL.) Reading one customer's rows is a filtered query; reading all of them is one parallel query. Measured on
copies of the kept bench warehouses (`python -m bench.explanation_reads <copy.duckdb>` for the view, the old asset
body of commit 441e2ab for before; 2 cores shared, load in brackets): a run's cost went from 31.1 s (asset) + 5.1 s
(dbt copy) to 0.38 s + 0.03 s at 100 k customers (load ~10), and from 135.7 s + 24.3 s to 0.25 s + 0.01 s at 1 M
(load ~7-9; BENCHMARKS.md had 72 s + 11.9 s at load ~2.5). Reading one customer's rows takes 0.20 s (100 k) / 0.34 s
(1 M); reading every row 6.9 s (300 k rows) / 51 s (3 M rows; the predicted_value rows are most of it: their drivers
are exploded, joined to the features for the customer's values and re-joined in order). The meaning of every
sentence is the per-customer Python loop's (kept as tests/unit/explanations_reference.py; the tests compare the view
with it field by field of the JSON on varied input); bytes can differ where SQL formats differently (README
"Explanations": JSON strings keep non-ASCII characters unescaped, a rounded number can differ in its last digit,
Spark writes large doubles as 1.0E7).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from ml.clustering import NO_WEB_ACTIVITY_CLUSTER
from ml.rfm import SCORE_LEVELS, SEGMENT_RULES, SegmentRule

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


def rfm_rule_texts() -> pd.DataFrame:
    """ml.explanation_rfm_rules: per combination of the three scores, the rule it matches and that rule's texts.

    rule_text: what follows "It matched rule " in the sentence; rule_evidence: the evidence JSON up to its "scores"
    (`{"rule_priority": 1, "rule": {...}` without the closing brace). The view joins on the three scores.
    """
    rows = []
    levels = range(1, SCORE_LEVELS + 1)
    for recency, frequency, monetary in itertools.product(levels, levels, levels):
        priority, rule = matched_rfm_rule(recency, frequency, monetary)
        rule_json = {"recency_score": _range(rule.recency), "frequency_score": _range(rule.frequency),
                     "monetary_score": _range(rule.monetary), "meaning": rule.meaning}  # fmt: skip
        rows.append({
            "recency_score": recency, "frequency_score": frequency, "monetary_score": monetary,
            "rule_priority": priority,
            "rule_text": f"{priority} of {len(SEGMENT_RULES)} (recency {_range(rule.recency)}, frequency "
            f"{_range(rule.frequency)}, monetary {_range(rule.monetary)}; the first matching rule wins): {rule.meaning}.",
            "rule_evidence": json.dumps({"rule_priority": priority, "rule": rule_json})[:-1],
        })  # fmt: skip
    return pd.DataFrame(rows).astype({"rule_text": "string", "rule_evidence": "string"})


NO_WEB_ACTIVITY_TEXT = ": no web events at or before the as-of date, so no behaviour to cluster."
NO_PROFILE_TEXT = (
    ": assigned without a distinguishing cluster profile (no attribute differs from the base by a small effect or "
    "more, or the customer was not clustered)."
)


def cluster_texts(profiles: pd.DataFrame) -> pd.DataFrame:
    """ml.explanation_clusters: one row per cluster with distinguishing attributes, the no-web-activity cluster and
    a NULL cluster_id row (any other cluster, or a customer not clustered).

    The behavioural sentence is `segment || lead || (attribute_i_text || "; this customer <value>" || ")")` joined
    by "; " over the filled slots, then `tail`; the evidence is `{"cluster_id": <id>, "attributes": [` then
    `attribute_i_evidence || <customer's value as JSON> || "}"` joined by ", ", then `]}`. The customer's own value
    of attribute_i_feature is the view's lookup into marts.customer_features.
    """
    slots = range(1, MAX_CLUSTER_ATTRIBUTES + 1)
    rows: list[dict[str, Any]] = [
        {"cluster_id": NO_WEB_ACTIVITY_CLUSTER, "lead": NO_WEB_ACTIVITY_TEXT, "tail": ""},
        {"cluster_id": None, "lead": NO_PROFILE_TEXT, "tail": ""},
    ]
    for cluster_id, attributes in cluster_highlights(profiles).items():
        if cluster_id == NO_WEB_ACTIVITY_CLUSTER or not attributes:
            continue
        row: dict[str, Any] = {
            "cluster_id": cluster_id, "lead": f" (cluster {cluster_id}): its customers stand out by ", "tail": ".",
        }  # fmt: skip
        for slot, attribute in zip(slots, attributes):
            direction = "higher" if attribute["z_score"] > 0 else "lower"
            row[f"attribute_{slot}_feature"] = attribute["feature"]
            row[f"attribute_{slot}_text"] = (
                f"{_label(attribute['feature'])} {_number(attribute['cluster_mean'])} vs "
                f"{_number(attribute['base_mean'])} in the base ({direction}, z {attribute['z_score']:+.1f}"
            )
            row[f"attribute_{slot}_evidence"] = json.dumps(attribute)[:-1] + ', "customer_value": '
        rows.append(row)
    columns = ["cluster_id", "lead", "tail"] + [
        f"attribute_{slot}_{part}" for slot in slots for part in ("feature", "text", "evidence")
    ]
    table = pd.DataFrame(rows).reindex(columns=columns)
    return table.astype({"cluster_id": "Int64", **{column: "string" for column in columns[1:]}})


# What any other model's prediction rests on, when it has no per-customer drivers.
OTHER_MODEL_INPUTS = "the model's population-level inputs"


def model_texts() -> pd.DataFrame:
    """ml.explanation_models: per population model, what its prediction rests on; a NULL clv_model row for others."""
    models = [*POPULATION_MODEL_INPUTS, None]
    bases = [*POPULATION_MODEL_INPUTS.values(), OTHER_MODEL_INPUTS]
    return pd.DataFrame({"clv_model": models, "rests_on": bases}).astype("string")
