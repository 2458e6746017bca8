"""Small helpers that turn tables, figures and check summaries into Dagster metadata values."""

from __future__ import annotations

import base64

import dagster as dg
import pandas as pd

from expectations.validate import ValidationSummary


def markdown_table(df: pd.DataFrame, max_rows: int = 20, float_digits: int = 3) -> dg.MetadataValue:
    """A DataFrame as a markdown table (first `max_rows` rows)."""
    shown = df.head(max_rows).copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].round(float_digits)
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = [
        "| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "\\|") for v in row) + " |"
        for row in shown.itertuples(index=False)
    ]
    more = [f"\n_{len(df) - max_rows} more rows not shown_"] if len(df) > max_rows else []
    return dg.MetadataValue.md("\n".join([header, rule, *rows, *more]))


def png_image(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI (markdown with a data URI)."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def validation_metadata(summary: ValidationSummary) -> dict[str, dg.MetadataValue]:
    """What an on-call engineer needs from a GX result: which expectation failed, how often, on which rows."""
    failed = pd.DataFrame(
        [
            {
                "severity": f.severity,
                "expectation": f.expectation,
                "column": f.column,
                "unexpected_rows": f.unexpected_count,
                "unexpected_percent": f.unexpected_percent,
            }
            for f in summary.failed
        ]
    )
    samples = {f"{f.expectation} on {f.column}": f.sample_rows for f in summary.failed if f.sample_rows}
    return {
        "suite": dg.MetadataValue.text(summary.suite),
        "rows_validated": dg.MetadataValue.int(summary.row_count),
        "expectations_evaluated": dg.MetadataValue.int(summary.evaluated),
        "errors": dg.MetadataValue.int(len(summary.errors)),
        "warnings": dg.MetadataValue.int(len(summary.warnings)),
        "failed_expectations": markdown_table(failed) if len(failed) else dg.MetadataValue.text("none"),
        "sample_offending_rows": dg.MetadataValue.json(samples),
    }
