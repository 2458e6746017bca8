"""Bias audit: selection rates and mean scores per group of a protected or proxy attribute, with the 4/5 ratio.

Pure pandas. `audit` takes one row per scored customer (their attributes and model scores) and the member ids of
each audience; it returns one row per (subject, attribute, group). The four-fifths ratio of a group is its rate
divided by the highest rate among the attribute's groups that are large enough to judge (US EEOC Uniform
Guidelines 29 CFR 1607.4(D)); a judged group below `min_ratio` is flagged. Groups under `min_group_size` are
reported with a note and neither flagged nor used as the reference: a rate over 5 people is noise. Large groups
can still differ by chance when few are selected (4 of 1,421 against 1 of 79), so, as 1607.4(D) itself allows
("differences ... based on small numbers and ... not statistically significant"), a group is flagged only when its
ratio is low AND the difference from the reference group is significant: Fisher's exact test on selections,
Welch's t-test on scores, two-sided, p below `max_p_value` (0.05 by default). Both p-values are in the table.
For a model the "selection" is its top `model_top_share` of customers by score (ties by customer_id), the way an
audience would take them; its mean score per group is audited with the same ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

UNKNOWN_GROUP = "unknown"
ATTRIBUTE_KINDS = ("protected", "proxy")
AUDIT_COLUMNS = [
    "subject_kind", "subject", "attribute", "attribute_kind", "group_value", "customers", "selected",
    "selection_rate", "impact_ratio", "p_value", "mean_score", "score_ratio", "score_p_value", "flagged", "note",
]  # fmt: skip


class FairnessConfigError(ValueError):
    """config/fairness.yaml is malformed; one line naming the file and field."""


@dataclass(frozen=True)
class AuditedAttribute:
    """One attribute to audit: its name in the report, the customer_features column, protected or proxy."""

    name: str
    column: str
    kind: str


@dataclass(frozen=True)
class FairnessConfig:
    """The parsed config/fairness.yaml."""

    version: str
    attributes: tuple[AuditedAttribute, ...]
    min_ratio: float = 0.8
    min_group_size: int = 30
    model_top_share: float = 0.2
    blocking: bool = False
    max_p_value: float = 0.05


def parse_fairness_config(document: Any, source: str = "fairness.yaml") -> FairnessConfig:
    """A FairnessConfig from the parsed YAML; FairnessConfigError (one line) names the bad field."""

    def require(condition: bool, message: str) -> None:
        if not condition:
            raise FairnessConfigError(f"{source}: {message}")

    require(isinstance(document, dict), "top level must be a mapping")
    require("version" in document, "missing `version`")
    unknown = set(document) - {
        "version", "min_ratio", "min_group_size", "model_top_share", "blocking", "attributes", "max_p_value",
    }  # fmt: skip
    require(not unknown, f"unknown field(s) {sorted(unknown)}")
    min_ratio = document.get("min_ratio", 0.8)
    require(isinstance(min_ratio, (int, float)) and 0 < min_ratio <= 1, "`min_ratio` must be in (0, 1]")
    min_group = document.get("min_group_size", 30)
    require(isinstance(min_group, int) and min_group >= 1, "`min_group_size` must be a whole number >= 1")
    top_share = document.get("model_top_share", 0.2)
    require(isinstance(top_share, (int, float)) and 0 < top_share < 1, "`model_top_share` must be in (0, 1)")
    max_p = document.get("max_p_value", 0.05)
    require(isinstance(max_p, (int, float)) and 0 < max_p <= 1, "`max_p_value` must be in (0, 1]")
    blocking = document.get("blocking", False)
    require(isinstance(blocking, bool), "`blocking` must be true or false")
    entries = document.get("attributes")
    require(isinstance(entries, list) and entries, "`attributes` must be a non-empty list")
    attributes = []
    for index, entry in enumerate(entries):
        where = f"attributes[{index}]"
        require(isinstance(entry, dict), f"{where} must be a mapping with name, column, kind")
        name, column, kind = entry.get("name"), entry.get("column", entry.get("name")), entry.get("kind")
        require(isinstance(name, str) and name.isidentifier(), f"{where}.name must be a column-like name")
        require(isinstance(column, str) and column.isidentifier(), f"{where}.column must be a column name")
        require(kind in ATTRIBUTE_KINDS, f"{where}.kind must be one of {', '.join(ATTRIBUTE_KINDS)}")
        attributes.append(AuditedAttribute(name, column, kind))
    return FairnessConfig(
        version=str(document["version"]),
        attributes=tuple(attributes),
        min_ratio=float(min_ratio),
        min_group_size=min_group,
        model_top_share=float(top_share),
        blocking=blocking,
        max_p_value=float(max_p),
    )


def load_fairness_config(path: str | Path) -> FairnessConfig:
    """The fairness config from its YAML file (one-line FairnessConfigError when missing or malformed)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FairnessConfigError(f"{path}: fairness config not found") from None
    except yaml.YAMLError as error:
        raise FairnessConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_fairness_config(document, source=path.name)


def top_share_selection(customer_ids: pd.Series, scores: pd.Series, share: float) -> pd.Series:
    """Boolean: the customer is in the top `share` by score (highest first, ties by customer_id; NaN last)."""
    ids = customer_ids.astype(str)
    values = scores.to_numpy(dtype=float)
    if ids.is_monotonic_increasing:
        # Rows already in customer_id order (the audit reads them so): a stable sort on the score alone breaks ties
        # by customer_id, at a fraction of pandas' two-key sort of 1 M strings (issue 18). lexsort's last key is the
        # primary one: NaN last, then the highest score first; -0.0 and 0.0 tie, as in sort_values.
        missing = np.isnan(values)
        order = np.lexsort((np.where(missing, 0.0, -values), missing))
    else:
        frame = pd.DataFrame({"customer_id": ids.to_numpy(), "score": values})
        order = frame.sort_values(["score", "customer_id"], ascending=[False, True], na_position="last").index
    selected = np.zeros(len(values), dtype=bool)
    selected[order[: int(round(share * len(values)))]] = True
    return pd.Series(selected, index=scores.index)


def _reference(values: pd.Series, judged: pd.Series) -> int | None:
    """Index of the judged group with the highest value (ties: the first), None when there is none."""
    candidates = values[judged].dropna()
    if candidates.empty or not candidates.max():
        return None
    return int(candidates.idxmax())


def _ratio(values: pd.Series, reference: int | None) -> pd.Series:
    if reference is None:
        return pd.Series(np.nan, index=values.index)
    return values / values.loc[reference]


def _selection_p_values(table: pd.DataFrame, reference: int | None) -> pd.Series:
    """Two-sided Fisher exact p-value of each group's selections against the reference group's."""
    if reference is None:
        return pd.Series(np.nan, index=table.index)
    ref_selected, ref_customers = int(table.loc[reference, "selected"]), int(table.loc[reference, "customers"])
    p_values = []
    for selected, customers in zip(table["selected"], table["customers"], strict=True):
        contingency = [[int(selected), int(customers - selected)], [ref_selected, ref_customers - ref_selected]]
        p_values.append(float(stats.fisher_exact(contingency).pvalue))
    return pd.Series(p_values, index=table.index)


def _score_p_values(table: pd.DataFrame, frame: pd.DataFrame, reference: int | None) -> pd.Series:
    """Two-sided Welch t-test p-value of each group's scores against the reference group's."""
    if reference is None:
        return pd.Series(np.nan, index=table.index)
    by_group = {value: group["score"].dropna().to_numpy() for value, group in frame.groupby("group_value")}
    ref_scores = by_group[table.loc[reference, "group_value"]]
    p_values = []
    for value in table["group_value"]:
        scores = by_group[value]
        if len(scores) < 2 or len(ref_scores) < 2:
            p_values.append(np.nan)
            continue
        result = stats.ttest_ind(scores, ref_scores, equal_var=False)
        p_values.append(1.0 if np.isnan(result.pvalue) else float(result.pvalue))  # identical groups: no difference
    return pd.Series(p_values, index=table.index)


def _audit_one(
    groups: pd.Series, selected: pd.Series, scores: pd.Series | None, config: FairnessConfig
) -> pd.DataFrame:
    frame = pd.DataFrame({"group_value": groups, "selected": selected.astype(bool)})
    if scores is not None:
        frame["score"] = scores.astype(float)
    aggregations: dict[str, tuple[str, str]] = {"customers": ("selected", "size"), "selected": ("selected", "sum")}
    if scores is not None:
        aggregations["mean_score"] = ("score", "mean")
    table = frame.groupby("group_value", sort=True).agg(**aggregations).reset_index()
    if scores is None:
        table["mean_score"] = np.nan
    table["selection_rate"] = table["selected"] / table["customers"]
    judged = table["customers"] >= config.min_group_size
    rate_reference = _reference(table["selection_rate"], judged)
    table["impact_ratio"] = _ratio(table["selection_rate"], rate_reference)
    table["p_value"] = _selection_p_values(table, rate_reference)
    if scores is not None:
        score_reference = _reference(table["mean_score"], judged)
        table["score_ratio"] = _ratio(table["mean_score"], score_reference)
        table["score_p_value"] = _score_p_values(table, frame, score_reference)
    else:
        table["score_ratio"] = table["score_p_value"] = np.nan
    significant = table["p_value"] < config.max_p_value
    low_rate = judged & (table["impact_ratio"] < config.min_ratio) & significant
    low_score = judged & (table["score_ratio"] < config.min_ratio) & (table["score_p_value"] < config.max_p_value)

    table["flagged"] = low_rate | low_score
    below = judged & ((table["impact_ratio"] < config.min_ratio) | (table["score_ratio"] < config.min_ratio))
    notes = []
    for is_judged, rate_low, score_low, is_below in zip(judged, low_rate, low_score, below, strict=True):
        if not is_judged:
            notes.append(f"under {config.min_group_size} customers: reported, not judged")
        elif rate_low or score_low:
            parts = (["selection rate"] if rate_low else []) + (["mean score"] if score_low else [])
            notes.append(f"{' and '.join(parts)} below {config.min_ratio:.0%} of the highest group's (significant)")
        elif is_below:
            notes.append(f"below {config.min_ratio:.0%} but not significant (p >= {config.max_p_value})")
        else:
            notes.append("")
    table["note"] = notes
    return table


def audit(
    customers: pd.DataFrame, audiences: dict[str, pd.Series], models: dict[str, str], config: FairnessConfig
) -> tuple[pd.DataFrame, list[str]]:
    """The audit table (AUDIT_COLUMNS) and the names of configured attributes the customers do not have.

    `customers`: one row per scored customer with `customer_id`, the attribute columns and the model columns.
    `audiences`: audience name -> its member customer_ids. `models`: subject name -> score column of `customers`.
    """
    available = [a for a in config.attributes if a.column in customers.columns]
    missing = [a.name for a in config.attributes if a.column not in customers.columns]
    ids = customers["customer_id"].astype(str)
    # Membership on object arrays (a hash table): pandas' Arrow-string isin builds one Python scalar per member,
    # seconds per audience at 1 M customers (issue 18). Same strings, same answer.
    object_ids = ids.astype(object)
    subjects: list[tuple[str, str, pd.Series, pd.Series | None]] = []
    for name, members in sorted(audiences.items()):
        subjects.append(("audience", name, object_ids.isin(members.astype(str).astype(object)), None))
    for name, column in models.items():
        scores = customers[column].astype(float)
        subjects.append(("model", name, top_share_selection(ids, scores, config.model_top_share), scores))
    tables = []
    for attribute in available:
        groups = customers[attribute.column].astype("string").fillna(UNKNOWN_GROUP).replace("", UNKNOWN_GROUP)
        for kind, name, selected, scores in subjects:
            table = _audit_one(groups, selected, scores, config)
            table.insert(0, "attribute_kind", attribute.kind)
            table.insert(0, "attribute", attribute.name)
            table.insert(0, "subject", name)
            table.insert(0, "subject_kind", kind)
            tables.append(table)
    if not tables:
        return pd.DataFrame({column: pd.Series(dtype="object") for column in AUDIT_COLUMNS}), missing
    result = pd.concat(tables, ignore_index=True)[AUDIT_COLUMNS]
    result["group_value"] = result["group_value"].astype(str)
    return result, missing


def flagged_summary(table: pd.DataFrame) -> list[str]:
    """One short line per flagged group: `audience champions: country=CA selection rate 0.45 of the highest`."""
    lines = []
    for row in table[table["flagged"]].itertuples(index=False):
        ratios = [f"selection {row.impact_ratio:.2f} (p {row.p_value:.2g})"]
        if row.subject_kind == "model" and not pd.isna(row.score_ratio):
            ratios.append(f"mean score {row.score_ratio:.2f} (p {row.score_p_value:.2g})")
        lines.append(
            f"{row.subject_kind} {row.subject}: {row.attribute}={row.group_value} at {', '.join(ratios)} "
            "of the highest group's"
        )
    return lines
