"""Every asset key the Python code names, defined once.

An asset key is the table it materializes: `["marts", "customer_scores"]` is the warehouse table
`marts.customer_scores`. The defs modules declare their own assets with these keys and their reads (`deps`) with
the keys of others, the jobs select by them, and the tests look them up here instead of spelling paths. dbt's
keys come from dagster-dbt's translator (`[schema, model]`), so a dbt model renamed or moved to another schema
must be renamed here too: tests/orchestration/test_definitions.py fails on a key below that the location lacks.
"""

import dagster as dg


def _key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


# Landing (orchestration/defs/landing.py): the files, then one raw table each.
LANDING_FILES = _key("landing_files")


def raw(table: str) -> dg.AssetKey:
    """The raw table `raw.<table>` written by the landing step."""
    return dg.AssetKey(["raw", table])


RAW_ORDERS = raw("orders")
RAW_CUSTOMERS = raw("customers")
RAW_EVENTS = raw("events")
RAW_QUARANTINE = raw("quarantine")
RAW_RUN_CONTEXT = raw("run_context")
RAW_INGEST_STATE = raw("ingest_state")

# The event vocabulary (Python, in `raw`: dbt owns `staging`, see orchestration/lib/lineage.py SCHEMA_OWNERS).
EVENT_VOCABULARY = raw("event_vocabulary")

# Staging and intermediate (dbt).
STG_ORDERS = _key("staging/stg_orders")
STG_CUSTOMERS = _key("staging/stg_customers")
INT_CUTOFFS = _key("intermediate/int_cutoffs")

# Feature marts (dbt).
CUSTOMER_FEATURES = _key("marts/customer_features")
CUSTOMER_FEATURES_TRAIN = _key("marts/customer_features_train")
CUSTOMER_FEATURES_SELECTION = _key("marts/customer_features_selection")
PROSPECT_FEATURES = _key("marts/prospect_features")
PREPURCHASE_BEHAVIOUR = _key("marts/customer_prepurchase_behaviour")
TOP_EVENT_TYPES = _key("marts/top_event_types")

# Segments and models (Python).
RFM_SEGMENTS = _key("ml/rfm_segments")
BEHAVIORAL_SEGMENTS = _key("ml/behavioral_segments")
CLUSTER_PROFILES = _key("ml/cluster_profiles")  # the second output of ml/behavioral_segments
CLUSTER_MODEL = _key("ml/cluster_model")  # the third: the pinned clustering fit, refitted on the model cadence
PROSPECT_SCORES = _key("ml/prospect_scores")
# The second output of ml/prospect_scores: the fitted lookalike, which realtime/serving_bundle reads (fitted once).
LOOKALIKE_MODEL = _key("ml/lookalike_model")
CLV_MODEL_EVALUATION = _key("ml/clv_model_evaluation")
CLV_MODEL = _key("ml/clv_model")
CLV_ACTIVATION_GATE = _key("ml/clv_activation_gate")
CLV_PREDICTIONS = _key("ml/clv_predictions")
BTYD_FITS = _key("ml/btyd_models")
# The model chain's refit decision, before the back-test marts (orchestration/defs/btyd.py).
MODEL_REFIT_DECISION = _key("ml/model_refit_decision")
BTYD_PREDICTIONS = _key("ml/btyd_predictions")

# Scores and what people read (dbt joins the model outputs; Python writes history and cards into `ml`).
CUSTOMER_SCORES = _key("marts/customer_scores")
SEGMENT_MEMBERSHIP_HISTORY = _key("ml/segment_membership_history")
SEGMENT_CARDS = _key("ml/segment_cards")

# The sync edge (dbt view): the only relation outside `raw` with contact PII; audiences read contacts from it.
CUSTOMER_CONTACTS = _key("edge/customer_contacts")
# Its normal forms and SHA-256 hashes per customer (Python, activation.member_records.refresh_match_forms): what the
# exports, guards and syncs match people on, computed again only for customers whose contact row changed.
CUSTOMER_MATCH_FORMS = _key("edge_forms/customer_match_forms")

# What the syncs produce (Python, schemas `sync` and `activation`).
AUDIENCE_LIFT = _key("activation/audience_lift")
SYNC_LEDGER_TABLES = (
    "destination_members",
    "runs",
    "batches",
    "control_group",
    "erasure_removals",
    "members_provenance",
)


def sync_ledger(table: str) -> dg.AssetKey:
    """The sync ledger table `sync.<table>` (activation/ledger.py), declared by the sync_ledger_tables assets."""
    return dg.AssetKey(["sync", table])


# dbt views that publish Python outputs under their contract names in `marts` (dbt owns `marts`; the Python asset
# writes `ml`/`activation`): models/marts/scores/, after_scores/ and after_syncs/.
CLV_MODEL_EVALUATION_VIEW = _key("marts/clv_model_evaluation")
SEGMENT_MEMBERSHIP_HISTORY_VIEW = _key("marts/segment_membership_history")
SEGMENT_CARDS_VIEW = _key("marts/segment_cards")
AUDIENCE_LIFT_VIEW = _key("marts/audience_lift")
PUBLISHED_IN_MARTS = {
    CLV_MODEL_EVALUATION_VIEW: CLV_MODEL_EVALUATION,
    SEGMENT_MEMBERSHIP_HISTORY_VIEW: SEGMENT_MEMBERSHIP_HISTORY,
    SEGMENT_CARDS_VIEW: SEGMENT_CARDS,
    AUDIENCE_LIFT_VIEW: AUDIENCE_LIFT,
}

# Privacy (README "Privacy"): the bias audit that exports and syncs wait for; per-customer explanations.
FAIRNESS_AUDIT = _key("ml/fairness_audit")
# Erasure (README "Privacy"): applied before ingest; the warehouse rewritten after the syncs that follow one.
ERASURE_RECEIPTS = _key("privacy/erasure_receipts")
# Written with the receipts (privacy/erasure.py): the salted-hash suppression list the ingest applies, and the salt's
# fingerprint.
ERASURE_SUPPRESSION = _key("privacy/suppression")
SALT_FINGERPRINT = _key("privacy/salt_fingerprint")
WAREHOUSE_COMPACTION = _key("privacy/warehouse_compaction")
# The removals owed to erased persons and withdrawn consents, sent without waiting for the CLV activation gate.
OWED_REMOVALS = _key("privacy/owed_removals")
# The small tables of texts the view marts/customer_explanations assembles its sentences from (ml/explanations.py).
EXPLANATION_RFM_RULES = _key("ml/explanation_rfm_rules")
EXPLANATION_CLUSTERS = _key("ml/explanation_clusters")
EXPLANATION_MODELS = _key("ml/explanation_models")
CUSTOMER_EXPLANATIONS_MART = _key("marts/customer_explanations")

# What the real-time segment service loads (realtime/).
SERVING_BUNDLE = _key("realtime/serving_bundle")

# The check `make run` reads to say whether value-based activation was held back.
ACTIVATION_GATE_CHECK = dg.AssetCheckKey(CLV_ACTIVATION_GATE, "check_clv_model_beats_baselines")


# One asset per audience in config/audiences.yaml, one export each, one sync per audience and destination.
def audience(name: str) -> dg.AssetKey:
    return dg.AssetKey(["audiences", name])


def export(name: str) -> dg.AssetKey:
    return dg.AssetKey(["exports", name])


def sync(name: str, destination: str) -> dg.AssetKey:
    return dg.AssetKey(["sync", name, destination])
