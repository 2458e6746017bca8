"""The texts behind the view marts.customer_explanations: three small tables, written once per run (ml/explanations.py).

The view assembles every customer's sentences and JSON evidence when it is read, from the tables the scores
already build and these: ml.explanation_rfm_rules (per RFM score combination, 125 rows), ml.explanation_clusters
(per behavioural cluster, from ml.cluster_profiles) and ml.explanation_models (per population model). They are
written before the score marts, so the dbt view (tag `scores`, dbt owns the marts schema) is built with them in
one dbt invocation.
"""

import dagster as dg

from ml.explanations import cluster_texts, model_texts, rfm_rule_texts
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib import groups
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import CLUSTER_PROFILES, EXPLANATION_CLUSTERS, EXPLANATION_MODELS, EXPLANATION_RFM_RULES
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import read_table, write_table


def _spec(key: dg.AssetKey, description: str, deps: list[dg.AssetKey] | None = None) -> dg.AssetSpec:
    return dg.AssetSpec(key, deps=deps or [], description=description, group_name=groups.SCORES,
                        kinds={"python", "duckdb"}, code_version=asset_code_versions()["explanation_texts"])  # fmt: skip


@dg.multi_asset(
    specs=[
        _spec(
            EXPLANATION_RFM_RULES, "Per RFM score combination: the rule it matches and the rule's explanation texts."
        ),
        _spec(
            EXPLANATION_CLUSTERS,
            "Per behavioural cluster: the explanation's text and its most distinguishing attributes (feature, text, "
            "JSON); a NULL cluster_id row for a cluster without a profile.",
            [CLUSTER_PROFILES],
        ),
        _spec(EXPLANATION_MODELS, "Per population CLV model: what its prediction rests on (NULL: any other model)."),
    ],
    name="ml__explanation_texts",
    op_tags=DUCKDB_TAG,
)
def explanation_texts(warehouse: Warehouse):
    """The three tables of texts the view marts.customer_explanations reads (O(rules + clusters + models) rows)."""
    with warehouse.connect() as conn:
        profiles = read_table(conn, "ml.cluster_profiles", order_by="cluster_id, feature")
        rules, clusters, models = rfm_rule_texts(), cluster_texts(profiles), model_texts()
        write_table(conn, "ml.explanation_rfm_rules", rules)
        write_table(conn, "ml.explanation_clusters", clusters)
        write_table(conn, "ml.explanation_models", models)
        # Retired: the table every customer's rows were written to before the view; an upgraded warehouse would
        # otherwise keep its 3 stale text rows per customer.
        conn.execute("drop table if exists ml.customer_explanations")
    yield dg.MaterializeResult(
        asset_key=EXPLANATION_RFM_RULES, metadata={"dagster/row_count": dg.MetadataValue.int(len(rules))}
    )
    yield dg.MaterializeResult(
        asset_key=EXPLANATION_CLUSTERS,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(clusters)),
            "clusters": markdown_table(clusters[["cluster_id", "lead", "attribute_1_text"]].astype(object)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=EXPLANATION_MODELS, metadata={"dagster/row_count": dg.MetadataValue.int(len(models))}
    )
