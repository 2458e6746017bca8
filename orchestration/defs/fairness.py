"""Bias audit (config/fairness.yaml): every audience and model, per group of each audited attribute.

ml/fairness_audit reads the audience tables and the scored customers and writes ml.fairness_audit; the check
`check_four_fifths_rule` fails when a judged group falls below the four-fifths ratio. It warns by default; with
`blocking: true` in the file it is an error, and since every audience export and sync waits for this asset,
that stops them (audiences are still built, so the audit itself can be read).
"""

import dagster as dg
import duckdb
import pandas as pd

from ml.fairness import audit, flagged_summary, load_fairness_config
from orchestration.defs.audiences import AUDIENCES
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib import groups, keys
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import CUSTOMER_FEATURES, CUSTOMER_SCORES, FAIRNESS_AUDIT
from orchestration.lib.metadata import markdown_table
from orchestration.lib.settings import CONFIG_DIR
from orchestration.lib.warehouse_io import present_columns, read_table, write_table

FAIRNESS_FILE = CONFIG_DIR / "fairness.yaml"
# subject name in the audit -> score column of marts.customer_scores
AUDITED_MODELS = {"clv": "predicted_clv", "propensity": "purchase_propensity"}
FAIRNESS_TABLE = "ml.fairness_audit"


def _customers(conn: duckdb.DuckDBPyConnection, attribute_columns: list[str]) -> pd.DataFrame:
    """One row per scored customer: model scores, and the audited attributes that customer_features has."""
    attributes = present_columns(conn, "marts.customer_features", attribute_columns)
    selected = "".join(f", features.{column}" for column in attributes)
    return conn.execute(
        f"select scores.customer_id, {', '.join(f'scores.{c}' for c in AUDITED_MODELS.values())}{selected} "
        "from marts.customer_scores as scores left join marts.customer_features as features using (customer_id) "
        "order by scores.customer_id"
    ).df()


@dg.asset(
    key=FAIRNESS_AUDIT,
    deps=[CUSTOMER_SCORES, CUSTOMER_FEATURES, *(keys.audience(a.name) for a in AUDIENCES)],
    group_name=groups.AUDIENCES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["fairness_audit"],
)
def fairness_audit(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per audience or model, audited attribute and group: selection rate, mean score, 4/5 ratios, flag."""
    config = load_fairness_config(FAIRNESS_FILE)
    with warehouse.connect() as conn:
        customers = _customers(conn, [a.column for a in config.attributes])
        members = {a.name: read_table(conn, f"audiences.{a.name}", ["customer_id"])["customer_id"] for a in AUDIENCES}
        table, missing = audit(customers, members, AUDITED_MODELS, config)
        write_table(conn, FAIRNESS_TABLE, table)
    flagged = flagged_summary(table)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "fairness_config_version": dg.MetadataValue.text(config.version),
            "attributes_audited": dg.MetadataValue.json([a.name for a in config.attributes if a.name not in missing]),
            "attributes_not_available": dg.MetadataValue.json(missing),
            "flagged_groups": dg.MetadataValue.int(len(flagged)),
            "flagged": dg.MetadataValue.json(flagged),
            "min_ratio": dg.MetadataValue.float(config.min_ratio),
            "audit": markdown_table(table, max_rows=60),
        }
    )


@dg.asset_check(
    asset=FAIRNESS_AUDIT,
    description="No audience or model selects (or scores) a judged group below four-fifths of the highest group's "
    "rate; warns by default, blocks exports and syncs when config/fairness.yaml says `blocking: true`.",
    blocking=True,
    op_tags=DUCKDB_TAG,
)
def check_four_fifths_rule(warehouse: Warehouse) -> dg.AssetCheckResult:
    config = load_fairness_config(FAIRNESS_FILE)
    with warehouse.connect() as conn:
        table = read_table(conn, FAIRNESS_TABLE)
    flagged = flagged_summary(table)
    return dg.AssetCheckResult(
        passed=not flagged,
        # WARN never blocks in Dagster, so the file's `blocking` decides through the severity.
        severity=dg.AssetCheckSeverity.ERROR if config.blocking else dg.AssetCheckSeverity.WARN,
        description="; ".join(flagged) or "every judged group at or above the four-fifths ratio",
        metadata={
            "flagged_groups": dg.MetadataValue.int(len(flagged)),
            "blocking": dg.MetadataValue.bool(config.blocking),
            "min_ratio": dg.MetadataValue.float(config.min_ratio),
        },
    )
