"""Lookalike scores for prospects (visitors without orders).

Label ("became high value"): the customer is in an RFM segment of HIGH_VALUE_SEGMENTS (Champions, Loyal
Customers) OR has monetary score 5 (top fifth of net revenue). Both read from `ml.rfm_segments`; the rule
lives in `is_high_value`. (The seed list uploaded to ad platforms for their own lookalikes is the `lookalike_seed`
audience of config/audiences.yaml, not code here.)

Features: the early behaviour of customers, from `marts.customer_prepurchase_behaviour` (events strictly
before their first order), so the model sees what a prospect can show us: browsing, not buying.
Only LOOKALIKE_FEATURES that exist in the training frame are used; counts are log1p-transformed.

Model: standardised logistic regression, without class re-weighting, so its output stays a probability on
the training base rate ("calibrated-ish"). The AUC is measured on a stratified HOLDOUT_SHARE holdout, then the
model is re-fitted on all rows. The score means: "if this visitor buys, how likely they become high value";
it ranks prospects, it is not a purchase probability.

Fallback (documented in `notes`, method "base_rate"): fewer than MIN_TRAINING_ROWS labelled customers, fewer
than MIN_CLASS_COUNT in either class, or no usable feature -> every prospect gets the share of high-value
customers in the RFM table (0.0 when that is empty too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ml.feature_columns import BEHAVIOUR_SHARES
from ml.rfm import HIGH_VALUE_SEGMENTS

LOOKALIKE_FEATURES: tuple[str, ...] = (
    *BEHAVIOUR_SHARES,
    "event_count",
    "active_days",
)
# What fit_lookalike and score_prospects read: callers read these columns (those the tables have), not the whole
# tables, whose other columns only cost time at 1 M customers (issue 18).
RFM_INPUT_COLUMNS: tuple[str, ...] = ("customer_id", "rfm_segment", "monetary_score")
BEHAVIOUR_INPUT_COLUMNS: tuple[str, ...] = ("customer_id", *LOOKALIKE_FEATURES)
PROSPECT_INPUT_COLUMNS: tuple[str, ...] = ("prospect_id", *LOOKALIKE_FEATURES)
# Counts are heavy-tailed: log1p so a few very active visitors do not dominate the coefficients.
LOG_SCALED_FEATURES = frozenset({"product_views_per_active_day", "event_count", "active_days"})
HIGH_VALUE_MONETARY_SCORE = 5
MIN_TRAINING_ROWS = 50
MIN_CLASS_COUNT = 10
HOLDOUT_SHARE = 0.25
MODEL_METHOD = "logistic_regression"
BASE_RATE_METHOD = "base_rate"
SCORE_COLUMNS = ["prospect_id", "lookalike_score"]


@dataclass(frozen=True)
class LookalikeModel:
    """A fitted lookalike scorer (or its base-rate fallback) with its holdout AUC and training counts."""

    method: str  # MODEL_METHOD | BASE_RATE_METHOD
    estimator: Pipeline | None
    feature_columns: list[str]
    base_rate: float  # share of high-value customers among the training rows (or the RFM table in fallback)
    holdout_auc: float  # NaN when not measurable
    n_train: int
    n_positive: int
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, float | int | str]:
        """Flat numbers and texts for asset metadata."""
        return {
            "method": self.method,
            "holdout_auc": float(round(self.holdout_auc, 4)) if pd.notna(self.holdout_auc) else float("nan"),
            "base_rate": float(round(self.base_rate, 4)),
            "n_train": self.n_train,
            "n_positive": self.n_positive,
            "feature_columns": ", ".join(self.feature_columns),
            "notes": " ".join(self.notes),
        }


def is_high_value(rfm: pd.DataFrame) -> pd.Series:
    """Per RFM row: True when the customer is in a high-value segment or in the top monetary quintile."""
    return rfm["rfm_segment"].isin(HIGH_VALUE_SEGMENTS) | (rfm["monetary_score"] >= HIGH_VALUE_MONETARY_SCORE)


def fit_lookalike(prepurchase_behaviour: pd.DataFrame, rfm: pd.DataFrame, seed: int = 0) -> LookalikeModel:
    """Fit P(high value | early behaviour) on customers with pre-purchase events; base-rate fallback when it cannot."""
    overall_rate = float(is_high_value(rfm).mean()) if len(rfm) else 0.0
    feature_columns = [column for column in LOOKALIKE_FEATURES if column in prepurchase_behaviour.columns]
    labelled = prepurchase_behaviour.merge(
        rfm.assign(is_high_value=is_high_value(rfm))[["customer_id", "is_high_value"]], on="customer_id", how="inner"
    )
    labels = labelled["is_high_value"].to_numpy(dtype=bool)
    n_positive = int(labels.sum())
    n_negative = len(labels) - n_positive
    problem = _training_problem(len(labels), n_positive, n_negative, feature_columns)
    if problem:
        return LookalikeModel(
            method=BASE_RATE_METHOD,
            estimator=None,
            feature_columns=feature_columns,
            base_rate=overall_rate,
            holdout_auc=float("nan"),
            n_train=len(labels),
            n_positive=n_positive,
            notes=[
                f"Fallback: {problem}; every prospect scores the high-value share of customers ({overall_rate:.3f})"
            ],
        )
    design = design_matrix(labelled, feature_columns)
    holdout_auc = _holdout_auc(design, labels, seed)
    estimator = _new_estimator(seed).fit(design, labels)
    return LookalikeModel(
        method=MODEL_METHOD,
        estimator=estimator,
        feature_columns=feature_columns,
        base_rate=float(labels.mean()),
        holdout_auc=holdout_auc,
        n_train=len(labels),
        n_positive=n_positive,
        notes=[
            f"Logistic regression on {len(labels):,} customers' pre-purchase behaviour "
            f"({n_positive:,} became high value); AUC measured on a {HOLDOUT_SHARE:.0%} holdout."
        ],
    )


def score_prospects(model: LookalikeModel, prospect_features: pd.DataFrame) -> pd.DataFrame:
    """`ml.prospect_scores`: one row per prospect, lookalike_score in [0, 1] (higher = more like high-value buyers)."""
    if prospect_features.empty:
        return pd.DataFrame({"prospect_id": pd.Series(dtype="object"), "lookalike_score": pd.Series(dtype="float64")})
    if model.estimator is None:
        scores = np.full(len(prospect_features), model.base_rate)
    else:
        missing = [column for column in model.feature_columns if column not in prospect_features.columns]
        if missing:
            raise KeyError(f"prospect_features lacks the model's columns: {missing}")
        scores = model.estimator.predict_proba(design_matrix(prospect_features, model.feature_columns))[:, 1]
    return pd.DataFrame({"prospect_id": prospect_features["prospect_id"].to_numpy(), "lookalike_score": scores})


def design_matrix(frame: pd.DataFrame, feature_columns: list[str]) -> np.ndarray:
    """Model inputs: the feature columns as floats, missing -> 0, counts log1p-transformed."""
    columns = []
    for column in feature_columns:
        values = pd.to_numeric(frame[column], errors="coerce").astype(float).fillna(0.0).to_numpy()
        columns.append(np.log1p(np.clip(values, 0, None)) if column in LOG_SCALED_FEATURES else values)
    return np.column_stack(columns) if columns else np.zeros((len(frame), 0))


def _training_problem(n_rows: int, n_positive: int, n_negative: int, feature_columns: list[str]) -> str:
    if not feature_columns:
        return "no behaviour columns in the pre-purchase table"
    if n_rows < MIN_TRAINING_ROWS:
        return f"only {n_rows} customers have pre-purchase events (need {MIN_TRAINING_ROWS})"
    if min(n_positive, n_negative) < MIN_CLASS_COUNT:
        return f"{n_positive} high-value vs {n_negative} other customers (need {MIN_CLASS_COUNT} of each)"
    return ""


def _new_estimator(seed: int) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))


def _holdout_auc(design: np.ndarray, labels: np.ndarray, seed: int) -> float:
    train_x, test_x, train_y, test_y = train_test_split(
        design, labels, test_size=HOLDOUT_SHARE, stratify=labels, random_state=seed
    )
    if len(np.unique(test_y)) < 2 or len(np.unique(train_y)) < 2:
        return float("nan")
    holdout_model = _new_estimator(seed).fit(train_x, train_y)
    return float(roc_auc_score(test_y, holdout_model.predict_proba(test_x)[:, 1]))
