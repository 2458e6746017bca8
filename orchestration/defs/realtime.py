"""The serving bundle of the real-time segment service (`make serve`, package realtime/).

`realtime/serving_bundle` packs what the service needs from this materialization into
`<data>/realtime/bundles/<version>/` and then points `realtime/bundles/CURRENT` at it; a running service
hot-reloads it. Contents and format: realtime/bundle.py (Parquet + the lookalike's coefficients as JSON + the
rules file; never e-mail, phone or names).

The lookalike is the one `ml/prospect_scores` fitted and scored the prospects with, read from its declared second
output `ml.lookalike_model` (pickled, checked against its model_version): the model the service scores with is
exactly the one that scored `ml.prospect_scores`, fitted once per run (it used to be refitted here from the same
inputs, reading the pre-purchase behaviour and RFM tables a second time: ~2-3 s of a 1 M daily run).
"""

import time

import dagster as dg

from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.defs.segments import read_lookalike_model
from orchestration.lib import groups
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import CUSTOMER_SCORES, LOOKALIKE_MODEL, SERVING_BUNDLE
from orchestration.lib.settings import CONFIG_DIR
from orchestration.lib.warehouse_io import read_table
from realtime.bundle import CUSTOMER_COLUMNS, bundles_dir, load_bundle, lookalike_json, serving_customers, write_bundle
from realtime.rules import load_rules, rules_path
from reporting.cards import load_playbook

PLAYBOOK = CONFIG_DIR / "playbook.yaml"
SCORE_COLUMNS = [
    "customer_id",
    "as_of_date",
    "rfm_segment",
    "behavioral_segment",
    "predicted_clv",
    "purchase_propensity",
]


@dg.asset(
    key=SERVING_BUNDLE,
    deps=[CUSTOMER_SCORES, LOOKALIKE_MODEL],
    group_name=groups.REALTIME,
    kinds={"python", "parquet"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["serving_bundle"],
)
def serving_bundle(warehouse: Warehouse, settings: SegmintSettings) -> dg.MaterializeResult:
    """A versioned serving bundle: known customers' scores and batch segments, the prospect lookalike, the rules."""
    s = settings.load()
    rules_file = rules_path()
    rules = load_rules(rules_file)  # a rules file the service cannot read fails here, not in the service
    with warehouse.connect() as conn:
        scores = read_table(conn, "marts.customer_scores", SCORE_COLUMNS, order_by="customer_id")
        model, lookalike_version = read_lookalike_model(conn)
    as_of = str(scores["as_of_date"].max())[:10] if len(scores) else None
    manifest = write_bundle(
        bundles_dir(s.data_dir),
        serving_customers(scores, load_playbook(PLAYBOOK)),
        lookalike_json(model),
        rules.text,
        as_of_date=as_of,
    )
    started = time.perf_counter()
    loaded = load_bundle(bundles_dir(s.data_dir), manifest["version"])  # proves it loads, and how fast
    load_seconds = time.perf_counter() - started
    return dg.MaterializeResult(
        data_version=dg.DataVersion(manifest["version"]),
        metadata={
            "version": dg.MetadataValue.text(manifest["version"]),
            "path": dg.MetadataValue.path(str(loaded.path)),
            "dagster/row_count": dg.MetadataValue.int(manifest["known_customers"]),
            "bundle_bytes": dg.MetadataValue.int(manifest["bytes"]),
            "file_bytes": dg.MetadataValue.json({name: f["bytes"] for name, f in manifest["files"].items()}),
            "customer_columns": dg.MetadataValue.text(", ".join(CUSTOMER_COLUMNS)),
            "load_seconds": dg.MetadataValue.float(round(load_seconds, 3)),
            "lookalike_method": dg.MetadataValue.text(model.method),
            "lookalike_model_version": dg.MetadataValue.text(lookalike_version),
            "lookalike_holdout_auc": dg.MetadataValue.float(
                float(model.holdout_auc) if model.holdout_auc == model.holdout_auc else float("nan")
            ),
            "rules_file": dg.MetadataValue.path(str(rules_file)),
            "rules_version": dg.MetadataValue.text(rules.version),
            "realtime_segments": dg.MetadataValue.int(len(rules.segment_catalogue())),
            "as_of_date": dg.MetadataValue.text(str(as_of)),
        },
    )
