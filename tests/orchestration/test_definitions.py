"""The code location as the UI shows it: it loads, every asset is documented, checks gate, lineage is whole."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.defs.automation import AUTOMATED_GROUPS, FOLLOW_INPUTS, FRESH_MARTS, MART_MAX_AGE
from orchestration.lib import keys
from orchestration.lib.code_versions import ASSET_STEPS, asset_code_versions


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from orchestration.definitions import defs

    dg.Definitions.validate_loadable(defs)
    return defs


@pytest.fixture(scope="module")
def graph(defs):
    return defs.resolve_asset_graph()


def key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


EXPECTED_ASSETS = [
    "landing_files", "raw/orders", "raw/customers", "raw/events", "raw/fx_rates", "raw/quarantine", "raw/ingest_log", "raw/run_context",
    "raw/ingest_held", "raw/ingest_state",
    "raw/event_vocabulary", "staging/stg_orders", "staging/stg_customers", "staging/stg_events",
    "staging/stg_visitor_event_days", "staging/stg_visitor_event_type_days",
    "marts/customer_features", "marts/customer_features_train", "marts/customer_features_selection", "marts/prospect_features",
    "marts/top_event_types",
    "ml/rfm_segments", "ml/behavioral_segments", "ml/prospect_scores", "ml/lookalike_model",
    "ml/cluster_profiles", "ml/cluster_model",
    "ml/clv_model_evaluation", "ml/clv_model", "ml/clv_predictions", "ml/clv_activation_gate", "ml/btyd_predictions",
    "ml/btyd_models", "ml/model_refit_decision",
    "marts/customer_scores", "ml/segment_membership_history", "ml/segment_cards",
    "edge/customer_contacts", "edge_forms/customer_match_forms", "activation/audience_lift",
    "sync/destination_members", "sync/runs", "sync/batches", "sync/control_group", "sync/members_provenance",
    # dbt views of Python outputs under their contract names
    "marts/clv_model_evaluation", "marts/segment_membership_history", "marts/segment_cards", "marts/audience_lift",
    "ml/explanation_rfm_rules", "ml/explanation_clusters", "ml/explanation_models", "marts/customer_explanations", "ml/fairness_audit", "realtime/serving_bundle",
]  # fmt: skip
# The lineage an analyst follows from an order file to a segment (edges: parent -> child).
SEGMENT_LINEAGE = [
    "raw/orders",
    "staging/stg_orders",
    "marts/customer_features",
    "ml/rfm_segments",
    "marts/customer_scores",
]
BLOCKING_CHECKS = [
    ("raw/orders", "gx_raw_orders"),
    ("raw/customers", "gx_raw_customers"),
    ("raw/events", "gx_raw_events"),
    ("raw/quarantine", "check_ingest_counts_reconcile"),
    ("marts/customer_features", "gx_customer_features"),
    ("marts/customer_scores", "gx_customer_scores"),
    ("ml/clv_activation_gate", "check_clv_model_beats_baselines"),
    ("marts/customer_features", "check_no_special_category_features"),
    ("marts/customer_scores", "check_no_special_category_features"),
    ("ml/fairness_audit", "check_four_fifths_rule"),
]
EXPECTED_SENSORS = {
    "segmint_landing_files", "segmint_run_failure_alert", "segmint_failed_check_alert", "segmint_stale_mart_alert",
    "segmint_automation",
}  # fmt: skip


def test_every_expected_asset_is_defined(graph):
    missing = {path for path in EXPECTED_ASSETS if key(path) not in graph.get_all_asset_keys()}
    assert not missing


def test_every_asset_has_a_description_a_group_and_kinds(graph):
    undocumented = {
        k.to_user_string(): problem
        for k in graph.get_all_asset_keys()
        for problem, bad in {
            "description": not (graph.get(k).description or "").strip(),
            "group": graph.get(k).group_name in (None, "default"),
            "kinds": not graph.get(k).kinds,
        }.items()
        if bad
    }
    assert undocumented == {}


def test_the_segment_lineage_runs_from_the_order_file_to_the_scores(graph):
    for parent, child in zip(SEGMENT_LINEAGE, SEGMENT_LINEAGE[1:]):
        assert key(parent) in graph.get(key(child)).parent_keys, f"{parent} -> {child} missing"


@pytest.mark.parametrize(("asset", "check"), BLOCKING_CHECKS)
def test_the_quality_gates_exist_and_block_downstream(graph, asset, check):
    check_key = dg.AssetCheckKey(key(asset), check)
    assert check_key in graph.asset_check_keys
    assert graph.get_check_spec(check_key).blocking


def test_the_clv_gate_holds_back_activation_but_never_scores_segments_or_the_report(graph):
    gate = key("ml/clv_activation_gate")
    behind_gate = {k.to_user_string() for k in graph.get_all_asset_keys() if gate in graph.get_ancestor_asset_keys(k)}
    insight = {
        "ml/clv_predictions",
        "marts/customer_scores",
        "ml/rfm_segments",
        "ml/behavioral_segments",
        "ml/segment_cards",
        "marts/segment_cards",
        "ml/segment_membership_history",
        "marts/segment_membership_history",
        "audiences/champions",
        "audiences/lookalike_seed",
    }
    assert not insight & behind_gate
    syncs = {k.to_user_string() for k in graph.get_all_asset_keys() if k.path[0] == "sync" and len(k.path) == 3}
    assert syncs and syncs <= behind_gate
    # Value-based exports (a model value uploaded, or members chosen by predicted CLV) wait; RFM-only ones do not.
    assert {"exports/lookalike_seed", "exports/high_value_at_risk"} <= behind_gate
    assert "exports/champions" not in behind_gate
    evaluation = {key("ml/clv_model_evaluation"), key("marts/clv_model_evaluation")}
    assert not [c for c in graph.asset_check_keys if c.asset_key in evaluation and graph.get_check_spec(c).blocking]


def test_every_key_in_the_keys_module_is_an_asset_or_check_of_the_location(graph):
    # keys.py spells dbt's keys by hand: a model renamed or moved to another schema fails here, not in a run.
    named = [value for value in vars(keys).values() if isinstance(value, dg.AssetKey)]
    assert named and not {k.to_user_string() for k in named} - {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys.ACTIVATION_GATE_CHECK in graph.asset_check_keys


def test_every_asset_check_has_a_description_or_comes_from_a_dbt_test(graph):
    # dbt tests arrive without one; every hand-written check must say what it checks.
    bare = [
        f"{k.asset_key.to_user_string()}:{k.name}"
        for k in graph.asset_check_keys
        if not graph.get_check_spec(k).description and "dbt" not in graph.get(k.asset_key).kinds
    ]
    assert bare == []


def test_the_daily_schedule_and_every_sensor_are_registered(defs):
    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} >= EXPECTED_SENSORS
    schedule = repository.get_schedule_def("segmint_daily_refresh")
    assert schedule.job_name == "segmint_refresh"
    assert repository.get_sensor_def("segmint_landing_files").job_name == "segmint_refresh"


def test_models_and_their_products_follow_their_inputs_once_their_checks_pass(graph):
    automated = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition is not None
    }
    expected = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name in AUTOMATED_GROUPS}
    assert automated == expected
    # Ingestion and the dbt features only move in whole runs, where the GX gates stop them (see automation.py).
    assert not automated & {"raw/orders", "staging/stg_orders", "marts/customer_features"}
    condition = graph.get(key("ml/clv_model")).automation_condition
    assert condition.get_label() == FOLLOW_INPUTS.get_label()
    assert "all_deps_blocking_checks_passed" in str(condition)


def test_models_and_audiences_are_automated(graph):
    # The chain's refit decision gates the back-test marts' build: like them it runs in whole runs only.
    models = [k for k in graph.get_all_asset_keys() if k.path[0] == "ml" and k != keys.MODEL_REFIT_DECISION]
    assert graph.get(keys.MODEL_REFIT_DECISION).automation_condition is None
    audiences = [k for k in graph.get_all_asset_keys() if k.path[0] == "audiences"]
    assert models
    assert all(graph.get(k).automation_condition is not None for k in [*models, *audiences])


def test_the_marts_people_read_carry_a_freshness_policy(graph):
    for mart in FRESH_MARTS:
        policy = graph.get(mart).freshness_policy
        assert policy is not None, mart
        assert policy.fail_window.to_timedelta() == MART_MAX_AGE


def test_every_module_in_the_defs_folder_joins_the_location_without_being_listed(defs, graph):
    # definitions.py names no module: whatever a file under orchestration/defs/ defines is in the location.
    import importlib
    import pkgutil

    import orchestration.defs

    names = [m.name for m in pkgutil.iter_modules(orchestration.defs.__path__, "orchestration.defs.")]
    modules = [importlib.import_module(name) for name in names]
    assert {k for a in dg.load_assets_from_modules(modules) for k in a.keys} == graph.get_all_asset_keys()
    assert {k for c in dg.load_asset_checks_from_modules(modules) for k in c.check_keys} <= graph.asset_check_keys
    assert set(defs.resources) == {"warehouse", "settings", "dbt", "credentials", "spark"}


def test_the_location_module_holds_exactly_one_definitions_object():
    # Regression: the folder's own Definitions kept at module level made `dagster dev` and the webserver refuse the
    # location ("Cannot have more than one Definitions object defined at module scope").
    import orchestration.definitions as location

    assert [name for name, value in vars(location).items() if isinstance(value, dg.Definitions)] == ["defs"]


# Every Python asset that computes data carries the code version computed from its source (orchestration/lib/
# code_versions.py, ASSET_STEPS); the rest are named here with the reason. Asset (or key prefix) -> its step.
VERSIONED_ASSETS = {
    "raw/event_vocabulary": "event_vocabulary",
    "ml/rfm_segments": "rfm_segments",
    "ml/behavioral_segments": "behavioral_segments",
    "ml/cluster_profiles": "behavioral_segments",
    "ml/cluster_model": "behavioral_segments",
    "ml/prospect_scores": "prospect_scores",
    "ml/lookalike_model": "prospect_scores",
    "ml/model_refit_decision": "model_refit_decision",
    "ml/btyd_models": "btyd_models",
    "ml/btyd_predictions": "btyd_predictions",
    "ml/clv_model_evaluation": "clv_model_evaluation",
    "ml/clv_model": "clv_model",
    "ml/clv_activation_gate": "clv_activation_gate",
    "ml/clv_predictions": "clv_predictions",
    "ml/explanation_rfm_rules": "explanation_texts",
    "ml/explanation_clusters": "explanation_texts",
    "ml/explanation_models": "explanation_texts",
    "ml/fairness_audit": "fairness_audit",
    "ml/segment_membership_history": "segment_membership_history",
    "ml/segment_cards": "segment_cards",
    "realtime/serving_bundle": "serving_bundle",
    "edge_forms/customer_match_forms": "customer_match_forms",
    "audiences/": "audience_members",
    "exports/": "audience_exports",
    "activation/audience_lift": "audience_lift",
}
# Without one: the ingest (its data version is its own fingerprint, which hashes the ingest code:
# orchestration/lib/ingest_fingerprint.py), the syncs and their ledger (an effect at a destination, which the ledger,
# not a code version, says is current), and the privacy steps (records of actions: receipts, removals, compaction).
UNVERSIONED_PREFIXES = ("landing_files", "raw/", "sync/", "privacy/")


def test_every_python_asset_that_computes_data_carries_the_code_version_computed_from_its_source(graph):
    versions = asset_code_versions()
    assert set(VERSIONED_ASSETS.values()) == set(ASSET_STEPS)
    seen = set()
    for asset_key in graph.get_all_asset_keys():
        node, path = graph.get(asset_key), asset_key.to_user_string()
        if node.is_external or "dbt" in node.kinds:  # dbt's code version is the SQL's checksum (dagster-dbt)
            continue
        step = VERSIONED_ASSETS.get(path) or next((s for p, s in VERSIONED_ASSETS.items() if path.startswith(p)), None)
        if step is not None:
            assert node.code_version == versions[step], path
            seen.add(step)
        else:
            assert path.startswith(UNVERSIONED_PREFIXES), f"{path}: a Python asset without a computed code version"
            assert node.code_version is None, path
    assert seen == set(ASSET_STEPS)
