"""PNG charts of the CLV back-test for asset metadata: decile calibration and global feature importance."""

from __future__ import annotations

import io

import pandas as pd

MAX_FEATURES_SHOWN = 20


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (chosen here, not at import: no side effects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def decile_chart_png(decile_tables: dict[str, pd.DataFrame]) -> bytes:
    """One panel per model: mean actual (bars) and mean predicted (line) value per customer, by prediction decile."""
    plt = _pyplot()
    names = list(decile_tables) or ["(no model)"]
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), sharey=True, squeeze=False)
    try:
        for axis, name in zip(axes[0], names):
            table = decile_tables.get(name, pd.DataFrame())
            if not table.empty:
                axis.bar(table["decile"], table["mean_actual"], color="#9ecae1", label="actual")
                axis.plot(table["decile"], table["mean_predicted"], color="#d62728", marker="o", label="predicted")
            axis.set_title(name)
            axis.set_xlabel("prediction decile (10 = highest)")
            axis.set_xticks(range(1, 11))
        axes[0][0].set_ylabel("mean value per customer")
        if any(not table.empty for table in decile_tables.values()):
            axes[0][0].legend(loc="upper left")
        figure.suptitle("Predicted vs actual value by decile (back-test hold-out)")
        return _png(figure)
    finally:
        plt.close(figure)


def feature_importance_png(importance: pd.Series) -> bytes:
    """Horizontal bars of the top features by importance (e.g. share of total gain), largest on top."""
    plt = _pyplot()
    top = importance.sort_values(ascending=False).head(MAX_FEATURES_SHOWN).iloc[::-1]
    figure, axis = plt.subplots(figsize=(6.5, 0.3 * max(len(top), 3) + 1))
    try:
        axis.barh(top.index.astype(str), top.to_numpy(), color="#3182bd")
        axis.set_xlabel(importance.name or "importance")
        axis.set_title("Global feature importance (gain)")
        return _png(figure)
    finally:
        plt.close(figure)
