"""dbt models as assets, in steps: staging and feature marts, the scores around the ML assets, and views after them.

`dbt_feature_models` is one dbt invocation (one dbt start-up) for everything before the ML assets: the order and
event staging (tag `daily`, incremental: a run re-stages the days of its window, or every day without one;
orchestration/lib/partitions.py), the staging views, cut-offs, the customer snapshots (customer_features, ...) and
the sync edge (edge.customer_contacts). The back-test marts (customer_features_train, _selection) have their own
step, `dbt_backtest_models`, which builds them only when the model chain refits (ml/model_refit_decision) and
otherwise keeps them as the pinned fit saw them. The ML assets write schema `ml`; then `dbt_score_models` (the folder
models/marts/scores/) joins them into marts.customer_scores. Separate definitions keep the run order explicit,
and the folder tree says which step a model belongs to: a mart that reads an ML output goes in
models/marts/scores/ (`check_layout` refuses it anywhere else). Python assets that run after the scores publish
their tables under `marts` through views: `dbt_after_scores_models` (models/marts/after_scores/: segment cards,
membership history) and `dbt_after_syncs_models` (models/marts/after_syncs/: audience lift), built by one
factory and kept apart so that syncs held back by the CLV gate never hold back the cards. dbt tests become asset
checks; `dbt build` stops the line on error-level tests.

Fixed costs (README "Fixed costs of the dbt steps"): no step passes `--vars` by default (the staging window goes in
dbt's environment), so each keeps its partial-parse state; a new step folder starts from a sibling's; the view steps
keep unchanged views without starting dbt; row counts are one query per step.
"""

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration.defs.resources import DUCKDB_TAG, SparkEngine, Warehouse
from orchestration.lib import groups
from orchestration.lib.cadence import REFIT_DECISION_TABLE, read_refit_decision
from orchestration.lib.keys import MODEL_REFIT_DECISION
from orchestration.lib.partitions import (
    FEATURE_STEP,
    STAGED_DAYS_METADATA,
    StagingWindow,
    StagingWindowConfig,
    dbt_window_env,
    staged_days,
)
from orchestration.lib.settings import DBT_PROJECT_DIR, data_dir_for, load_settings
from orchestration.lib.staged_days import (
    STATE_FILE,
    raw_day_digests,
    record_day_digests,
    recorded_day_digests,
    widened_window,
)

DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"
# The folder of the marts built after the ML assets, under dbt_project/models/. Selected by its place in the fqn
# (package.folder...model), which is the folder tree: dbt's `path:` method would glob from the current directory.
SCORES_FOLDER = ("marts", "scores")
SCORES_SELECTOR = "fqn:segmint." + ".".join(SCORES_FOLDER)
# Views of the Python outputs made from the scores, and of those made by the syncs (each after its writers).
AFTER_SCORES_FOLDER = ("marts", "after_scores")
AFTER_SCORES_SELECTOR = "fqn:segmint." + ".".join(AFTER_SCORES_FOLDER)
AFTER_SYNCS_FOLDER = ("marts", "after_syncs")
AFTER_SYNCS_SELECTOR = "fqn:segmint." + ".".join(AFTER_SYNCS_FOLDER)
# Every folder built after the ML assets: a model there may read an ML output.
AFTER_ML_FOLDERS = (SCORES_FOLDER, AFTER_SCORES_FOLDER, AFTER_SYNCS_FOLDER)
# The back-test marts: built by their own step (dbt_backtest_models) only when the model chain refits
# (ml/model_refit_decision), so between refits they hold exactly what the pinned fits were made on.
BACKTEST_MODELS = ("customer_features_selection", "customer_features_train")
BACKTEST_SELECTOR = " ".join(f"fqn:segmint.marts.{name}" for name in BACKTEST_MODELS)
DAILY_TAG = "daily"  # dbt tag of the incremental order and event staging (orchestration/lib/partitions.py)
# dbt sources that Python assets write after the features: a model reading one must be built after the ML assets.
PYTHON_OUTPUT_SOURCES = ("ml", "activation")


def _in_folder(dbt_resource_props: Mapping[str, Any], folder: tuple[str, ...]) -> bool:
    folders = list(dbt_resource_props.get("fqn", []))[1:-1]
    return folders[: len(folder)] == list(folder)


def is_score_model(dbt_resource_props: Mapping[str, Any]) -> bool:
    """True for a model under models/marts/scores/ (built by dbt_score_models, after the ML assets)."""
    return _in_folder(dbt_resource_props, SCORES_FOLDER)


def is_after_ml_model(dbt_resource_props: Mapping[str, Any]) -> bool:
    """True for a model built after the ML assets: models/marts/scores/, after_scores/ or after_syncs/."""
    return any(_in_folder(dbt_resource_props, folder) for folder in AFTER_ML_FOLDERS)


class SegmintDbtTranslator(DagsterDbtTranslator):
    """Groups by layer (staging, features, scores) so the UI's lineage reads like the data flow; the back-test marts
    also depend on the model chain's refit decision, which says whether they are rebuilt."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id in {f"model.segmint.{name}" for name in BACKTEST_MODELS}:
            spec = spec.merge_attributes(deps=[MODEL_REFIT_DECISION])
        return spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # A view of a Python asset's table names its writer's group in `meta.dagster.group`.
        explicit = super().get_group_name(dbt_resource_props)
        if explicit is not None:
            return explicit
        fqn = dbt_resource_props.get("fqn", [])
        if "edge" in fqn:
            return groups.AUDIENCES
        if is_score_model(dbt_resource_props):
            return groups.SCORES
        if "marts" in fqn:
            return groups.FEATURES
        if dbt_resource_props.get("resource_type") == "model":
            return groups.STAGING
        return super().get_group_name(dbt_resource_props)


class DbtLayoutError(ValueError):
    """A dbt model sits in the wrong folder for its place in the build order."""


def misplaced_models(manifest: Mapping[str, Any]) -> list[str]:
    """Models outside the after-ML folders (scores/, after_scores/, after_syncs/ under models/marts/) that read an
    output of the Python assets (source `ml` or `activation`), directly or through another model.

    The feature step runs before the ML assets, so such a model would wait for its own downstream.
    """
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    memo: dict[str, bool] = {}

    def reads_ml(unique_id: str) -> bool:
        if unique_id not in memo:
            node = nodes.get(unique_id, {})
            memo[unique_id] = node.get("resource_type") == "source" and node.get("source_name") in PYTHON_OUTPUT_SOURCES
            memo[unique_id] = memo[unique_id] or any(reads_ml(p) for p in node.get("depends_on", {}).get("nodes", []))
        return memo[unique_id]

    return sorted(
        node["original_file_path"]
        for unique_id, node in manifest.get("nodes", {}).items()
        if node.get("resource_type") == "model" and not is_after_ml_model(node) and reads_ml(unique_id)
    )


def check_layout(manifest_path: Path = DBT_MANIFEST) -> None:
    """Raise one line naming every model that reads an ML output from outside models/marts/scores/."""
    misplaced = misplaced_models(json.loads(manifest_path.read_text(encoding="utf-8")))
    if misplaced:
        folder = "/".join(SCORES_FOLDER)
        raise DbtLayoutError(f"{', '.join(misplaced)} read(s) an ML output: move it to dbt_project/models/{folder}/")


class DbtScoresConfig(dg.Config):
    """Business inputs of the score marts, editable in the launchpad (defaults = the dbt vars in dbt_project.yml)."""

    margin: float = 0.3  # gross margin on revenue, used for max_cpa
    target_roas: float = 3.0  # target return on ad spend, used for max_cpa
    max_cpa_basis: str = "mean"  # predicted CLV max_cpa bids on: "mean" (predicted_clv) or "p10" (conservative)


def step_relations(manifest: Mapping[str, Any], asset_keys: set[dg.AssetKey]) -> tuple[list[str], list[str]]:
    """(sources read, models built) as `schema.table`, for the dbt models whose asset keys are `asset_keys`."""
    translator = SegmintDbtTranslator()
    sources, models = set(), set()
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model" or translator.get_asset_key(node) not in asset_keys:
            continue
        models.add(f"{node['schema']}.{node['alias']}")
        for parent in node.get("depends_on", {}).get("nodes", []):
            source = manifest.get("sources", {}).get(parent)
            if source is not None:
                sources.add(f"{source['schema']}.{source['identifier']}")
    return sorted(sources), sorted(models)


def dbt_target_path(warehouse_path: str, step: str) -> Path:
    """dbt's target folder for one step of the graph on one warehouse: `<data dir>/dbt_target/<step>`."""
    return data_dir_for(Path(warehouse_path)) / "dbt_target" / step


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def seed_partial_parse(target: Path) -> Path | None:
    """Give a step's target folder that has no parse state yet the newest one of its sibling steps (same warehouse).

    On a new data folder every dbt step used to parse the whole project (~2.5 s of CPU each); the steps share the
    project, profile, target and (empty) vars, so dbt accepts a sibling's state and re-parses only what differs.
    dbt checks that state itself (vars, profile, files) and parses in full when anything does not match, so a
    stale copy costs a parse, never a wrong manifest. Returns the copied file, or None."""
    if (target / PARTIAL_PARSE_FILE).exists():
        return None
    siblings = [path for path in target.parent.glob(f"*/{PARTIAL_PARSE_FILE}") if path.parent != target]
    if not siblings:
        return None
    newest = max(siblings, key=lambda path: path.stat().st_mtime)
    shutil.copy2(newest, target / PARTIAL_PARSE_FILE)
    return newest


def row_counts(conn: duckdb.DuckDBPyConnection, relations: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Rows of each (schema, name) that is a table, in two queries whatever their number (views are skipped:
    counting one would re-run it over the raw tables)."""
    wanted = sorted(set(relations))
    if not wanted:
        return {}
    placeholders = ", ".join("(?, ?)" for _ in wanted)
    tables = conn.execute(
        "select table_schema, table_name from information_schema.tables"
        f" where table_type = 'BASE TABLE' and (table_schema, table_name) in ({placeholders})",
        [part for relation in wanted for part in relation],
    ).fetchall()
    if not tables:
        return {}
    counts = " union all ".join(
        f"select {i} as i, count(*) as n from {_quoted(schema)}.{_quoted(name)}"
        for i, (schema, name) in enumerate(tables)
    )
    return {tuple(tables[i]): n for i, n in conn.execute(counts).fetchall()}


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    spark_engine: SparkEngine,
    args: list[str],
    extra_metadata: Callable[[dg.AssetKey], Mapping[str, Any]] = lambda key: {},
    env: Mapping[str, str] | None = None,
    data_version: dg.DataVersion | None = None,
) -> Iterator[Any]:
    # dbt's profile reads the absolute warehouse path from the environment (profiles.yml).
    os.environ["SEGMINT_WAREHOUSE"] = warehouse.resolved_path()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    spark = warehouse.resolved_engine() == "spark"
    if spark:
        # SEGMINT_ENGINE=spark: the Python-owned tables this step reads go to the Spark warehouse first, then dbt
        # builds on the `spark` target through the run's one Spark Connect server (SPARK_REMOTE: no JVM per step;
        # orchestration/lib/spark_connect.py), then the tables it built become readable in DuckDB.
        settings = load_settings()
        os.environ["SEGMINT_SPARK_WAREHOUSE"] = str(settings.spark_warehouse_dir)
        os.environ["SEGMINT_SPARK_MASTER"] = settings.spark_master
        manifest = json.loads(DBT_MANIFEST.read_text(encoding="utf-8"))
        sources, models = step_relations(manifest, set(context.selected_asset_keys))
        with warehouse.connect() as conn:
            published = warehouse.publish_to_engine(conn, sources)
        context.log.info(f"Spark: published {', '.join(published) or 'nothing'} to {settings.spark_warehouse_dir}")
        context.log.info(f"Spark: dbt connects to {spark_engine.remote()}")
        args = [*args, "--target", "spark"]
    # One target folder per warehouse and step, reused by every run (dagster-dbt otherwise leaves a folder per run
    # behind): dbt keeps its partial-parse state there, so a run whose profile and vars match the step's last run
    # re-parses only changed files (measured: 3.0 s of CPU per dbt start instead of 5.3 s for a full parse).
    target = dbt_target_path(warehouse.resolved_path(), context.op_def.name)
    target.mkdir(parents=True, exist_ok=True)
    seeded = seed_partial_parse(target)
    if seeded is not None:
        context.log.info(f"dbt parse state seeded from {seeded.parent.name}")
    # The step's own environment for the dbt process only (dagster-dbt copies os.environ when it starts dbt).
    saved = {name: os.environ.get(name) for name in (env or {})}
    os.environ.update(env or {})
    # dbt opens the file itself (DuckDB: one writer): the run's kept handle is closed first (resources.py).
    warehouse.release()
    try:
        invocation = dbt.cli(args, context=context, target_path=target)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    events = list(invocation.stream())
    if spark:
        with warehouse.connect() as conn:
            attached = warehouse.attach_engine_tables(conn, models)
        context.log.info(f"Spark: {', '.join(attached) or 'nothing'} readable by the Python steps")
    # Row counts from our own short connection once dbt has exited, all in one query. (dagster-dbt's
    # fetch_row_counts opens a second in-process DuckDB connection with another configuration, which then blocks
    # every later step.)
    keys = {
        event.output_name: context.asset_key_for_output(event.output_name)
        for event in events
        if isinstance(event, dg.Output)
    }
    with warehouse.connect() as conn:
        try:
            counts = row_counts(conn, (tuple(key.path[-2:]) for key in keys.values()))
        except duckdb.Error as error:  # metadata only: the step's tables are built and tested already
            context.log.warning(f"row counts not recorded: {error}")
            counts = {}
    for event in events:
        if not isinstance(event, dg.Output):
            yield event
            continue
        key = keys[event.output_name]
        metadata = {**event.metadata, **extra_metadata(key)}
        count = counts.get(tuple(key.path[-2:]))
        if count is not None:
            metadata["dagster/row_count"] = dg.MetadataValue.int(count)
        if data_version is None:
            yield event.with_metadata(metadata)
        else:
            yield versioned_output(event.value, event.output_name, metadata, data_version, event.tags)


def versioned_output(
    value: Any,
    output_name: str,
    metadata: Mapping[str, Any],
    data_version: dg.DataVersion,
    tags: Mapping[str, str] | None = None,
) -> dg.Output:
    """An Output with its data version set by the step (Dagster marks the parameter beta and warns on every use;
    MaterializeResult's, which the Python steps use, is the same mechanism without the warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(value, output_name, metadata, data_version, tags=tags)


@dbt_assets(
    manifest=DBT_MANIFEST,
    exclude=f"{SCORES_SELECTOR} {AFTER_SCORES_SELECTOR} {AFTER_SYNCS_SELECTOR} {BACKTEST_SELECTOR}",
    dagster_dbt_translator=SegmintDbtTranslator(),
    name=FEATURE_STEP,
    op_tags=DUCKDB_TAG,
)
def dbt_feature_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    spark: SparkEngine,
    config: StagingWindowConfig,
):
    """The order and event staging (incremental: the run's window of days, or every day), the customer and event
    staging views, cut-offs, the feature marts (customer_features, prospect_features,
    customer_prepurchase_behaviour, top_event_types) and the sync edge (edge.customer_contacts): one dbt
    invocation. The back-test marts are dbt_backtest_models'."""
    try:
        window = config.window()
    except ValueError as error:
        raise dg.Failure(description=f"staging window: {error}") from None
    # DuckDB: widen the window to the raw days that changed since the staging last read them (staged_days.py);
    # on Spark the staging is rebuilt whole every run.
    duckdb_engine = warehouse.resolved_engine() != "spark"
    target = dbt_target_path(warehouse.resolved_path(), context.op_def.name)
    if duckdb_engine:
        with warehouse.connect() as conn:
            raw_days = raw_day_digests(conn)
        recorded = recorded_day_digests(target / STATE_FILE) if window is not None else None
        if window is not None:
            window, widened = widened_window(window, recorded, raw_days)
            if widened:  # a first record is routine; a change outside the window is worth a line on the console
                (context.log.info if recorded is None else context.log.warning)(f"staging window: {widened}")
    context.log.info(f"re-staging {staged_days(window)} of orders and events")
    staged = {STAGED_DAYS_METADATA: dg.MetadataValue.text(staged_days(window))}
    incremental, why = incremental_marts(
        window,
        load_settings().force_ingest,
        last_materializations(context.instance, [*DAILY_STAGING_KEYS, *INCREMENTAL_MART_KEYS.values()]),
    )
    context.log.info(f"feature marts: {why}")
    paths: dict[str, str] = {}

    def metadata(key: dg.AssetKey) -> Mapping[str, Any]:
        if key in DAILY_STAGING_KEYS:
            return staged
        model = next((name for name, mart in INCREMENTAL_MART_KEYS.items() if mart == key), None)
        if model is None:
            return {}
        if not paths:  # dbt has exited: its log says which path each mart took and why (feature_increment.sql)
            paths.update(feature_build_paths(last_invocation_lines(target / "dbt.log")))
        return {FEATURE_BUILD_METADATA: dg.MetadataValue.text(paths.get(model, "not logged"))}

    yield from _run_dbt(
        context,
        dbt,
        warehouse,
        spark,
        feature_build_args(window),
        extra_metadata=metadata,
        env={**dbt_window_env(window), **feature_increment_env(incremental, why)},
    )
    if duckdb_engine:  # the staging now holds these raw days (a failed dbt run raised before this line)
        record_day_digests(target / STATE_FILE, raw_days)


# The feature marts a daily run may bring forward instead of rebuilding (dbt_project/macros/feature_increment.sql).
INCREMENTAL_MARTS = ("customer_features", "customer_prepurchase_behaviour", "prospect_features")
FEATURE_BUILD_METADATA = "segmint/feature_build"
FEATURE_INCREMENT_ENV = "SEGMINT_FEATURE_INCREMENT"
FEATURE_INCREMENT_WHY_ENV = "SEGMINT_FEATURE_INCREMENT_WHY"


def incremental_marts(
    window: StagingWindow | None, force_ingest: bool, last_storage_ids: Mapping[dg.AssetKey, int | None]
) -> tuple[list[str], str]:
    """The customer marts this run may bring forward from their last build (the SQL makes the remaining checks:
    previous table, basis, as-of), and why, in one line.

    A mart may be brought forward only when the staging outside this run's window is what its last build read:
    no run since re-staged days without building it (a failed or partial run would leave it behind: the increment
    would miss the days that run re-staged). Told by the Dagster record: the mart's last materialization is newer
    than every daily staging model's."""
    if window is None:
        return [], "full build: every day is re-staged"
    if force_ingest:
        return [], "full build: SEGMINT_FORCE_INGEST"
    staging = [last_storage_ids.get(key) for key in DAILY_STAGING_KEYS]
    if any(storage_id is None for storage_id in staging):
        return [], "full build: a staging model has no materialization on record"
    newest_staging = max(staging, default=0)
    behind = [
        name for name in INCREMENTAL_MARTS if (last_storage_ids.get(INCREMENTAL_MART_KEYS[name]) or 0) < newest_staging
    ]
    allowed = [name for name in INCREMENTAL_MARTS if name not in behind]
    if behind:
        return allowed, f"{', '.join(behind)} in full: the staging was re-staged after its last build"
    return allowed, f"incremental if exact: {', '.join(allowed)} from their last build"


def feature_increment_env(incremental: Iterable[str], why: str) -> dict[str, str]:
    """The dbt process's environment for feature_increment.sql: the marts it may bring forward (comma-separated),
    and why the others build in full."""
    return {FEATURE_INCREMENT_ENV: ",".join(incremental), FEATURE_INCREMENT_WHY_ENV: why}


def last_materializations(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]) -> dict[dg.AssetKey, int | None]:
    """Each asset's last materialization's storage id (its place in the run history), None when it has none."""
    keys = list(keys)
    records = {record.asset_entry.asset_key: record for record in instance.get_asset_records(keys)}
    found = {}
    for key in keys:
        entry = records[key].asset_entry if key in records else None
        last = entry.last_materialization_record if entry is not None else None
        found[key] = last.storage_id if last is not None else None
    return found


FEATURE_BUILD_PREFIX = "feature build "


def feature_build_paths(lines: Iterable[str]) -> dict[str, str]:
    """{mart: "incremental (...)" | "full (...)"} from the lines of one dbt invocation's JSON log."""
    paths = {}
    for line in lines:
        try:
            message = json.loads(line)["info"]["msg"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(message, str) and message.startswith(FEATURE_BUILD_PREFIX):
            model, _, path = message[len(FEATURE_BUILD_PREFIX) :].partition(": ")
            paths[model] = path
    return paths


def last_invocation_lines(log: Path) -> list[str]:
    """The lines of the last dbt invocation in a JSON dbt.log (which dbt rotates at 10 MB into dbt.log.1)."""
    lines: list[str] = []
    for path in (log.with_name("dbt.log.1"), log):
        if path.exists():
            lines.extend(path.read_text("utf-8").splitlines())
    starts = [i for i, line in enumerate(lines) if '"MainReportVersion"' in line]
    return lines[starts[-1] :] if starts else lines


def feature_build_args(window: StagingWindow | None) -> list[str]:
    """The feature step's dbt command. No `--vars`: the window travels in the environment (dbt_window_env), so
    the step's parse state survives a new window. Every day: `--full-refresh` rebuilds the incremental staging
    as new tables (the only incremental models are the daily staging, and the step selects them all)."""
    return ["build"] if window is not None else ["build", "--full-refresh"]


@dbt_assets(
    manifest=DBT_MANIFEST,
    select=BACKTEST_SELECTOR,
    dagster_dbt_translator=SegmintDbtTranslator(),
    name="dbt_backtest_models",
    op_tags=DUCKDB_TAG,
)
def dbt_backtest_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, spark: SparkEngine
):
    """The back-test marts customer_features_train and customer_features_selection, built only when the model
    chain refits (ml/model_refit_decision, decided from the staging without them): a daily run that keeps the
    pinned fit starts no dbt and keeps them as the pinned fit saw them (metadata `segmint/kept`, and their data
    version stays the pinned fit key). Their dbt tests ran when they were built: a kept day carries each one's last
    passing result over (carried_check_results), or runs `dbt test` when one is missing or failed."""
    with warehouse.connect() as conn:
        decision = read_refit_decision(conn)
        as_of = conn.execute("select as_of from raw.run_context").fetchone()[0]
    if decision is None or decision.as_of != as_of:
        found = "none" if decision is None else f"one for as-of {decision.as_of}"
        raise dg.Failure(
            description=f"{REFIT_DECISION_TABLE} holds {found}, the features are as of {as_of}: "
            "materialize ml/model_refit_decision first"
        )
    version = dg.DataVersion(decision.fit_key)
    if decision.refit:
        built = {"cadence": dg.MetadataValue.text(f"built for a refit: {decision.reason}")}
        yield from _run_dbt(
            context, dbt, warehouse, spark, ["build"], extra_metadata=lambda key: built, data_version=version
        )
        return
    kept = {
        KEPT_METADATA: dg.MetadataValue.text(
            f"kept as built for the pinned fit {decision.fit_key} (as of {decision.pinned_as_of}): the chain keeps "
            f"it ({decision.reason})"
        ),
    }
    # Upstream first (selection before train is the manifest's order; neither reads the other).
    for key in sorted(context.selected_asset_keys, key=lambda key: key.path):
        output_name = context.assets_def.get_output_name_for_asset_key(key)
        yield versioned_output(None, output_name, kept, version)
    carried = carried_check_results(context.instance, sorted(context.selected_asset_check_keys))
    if carried is None:
        # No passing result on record for an unchanged table (a new run history, or a failed test): test it again.
        yield from _run_dbt(context, dbt, warehouse, spark, ["test"])
    else:
        yield from carried


def carried_check_results(
    instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey]
) -> list[dg.AssetCheckResult] | None:
    """The dbt tests of tables kept unchanged: each one's last completed result, when every one passed, else None.

    The tests' blocking checks gate the model chain; a kept table has exactly the content they last passed on (a
    failed test stops the refit, so the next run rebuilds), and re-running them would start dbt on a day that needs
    none. A result that is missing (a new run history) or failed means the tests run again."""
    results = []
    for key in check_keys:
        history = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, status={AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
        )
        evaluation = history[0].event.asset_check_evaluation if history and history[0].event else None
        if evaluation is None or not evaluation.passed:
            return None
        results.append(
            dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=True,
                metadata={
                    KEPT_METADATA: dg.MetadataValue.text(
                        f"not re-run: the table is unchanged since this test passed in run {history[0].run_id}"
                    )
                },
            )
        )
    return results


# The incremental staging models inside the feature step (dbt tag `daily`): what a window of days re-stages.
DAILY_STAGING_KEYS = frozenset(
    key for key, spec in dbt_feature_models.specs_by_key.items() if DAILY_TAG in (spec.tags or {})
)
INCREMENTAL_MART_KEYS = {
    key.path[-1]: key for key in dbt_feature_models.specs_by_key if key.path[-1] in INCREMENTAL_MARTS
}


@dbt_assets(
    manifest=DBT_MANIFEST,
    select=SCORES_SELECTOR,
    dagster_dbt_translator=SegmintDbtTranslator(),
    name="dbt_score_models",
    op_tags=DUCKDB_TAG,
)
def dbt_score_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    spark: SparkEngine,
    config: DbtScoresConfig,
):
    """customer_scores and the decision marts that join the ML outputs back to the features."""
    yield from _run_dbt(context, dbt, warehouse, spark, score_build_args(config))


def score_build_args(config: DbtScoresConfig) -> list[str]:
    """The score step's dbt command: `--vars` only for launchpad values that differ from the defaults, which are
    dbt_project.yml's vars (a unit test pins them): with the defaults every dbt step runs with the same (no) vars
    and keeps its partial-parse state (dbt re-parses the whole project when the vars change)."""
    changed = {
        name: value
        for name, value in config.model_dump().items()
        if value != DbtScoresConfig.model_fields[name].default
    }
    return ["build", "--vars", json.dumps(changed)] if changed else ["build"]


VIEWS_STATE_FILE = "segmint_views.sha256"  # in the step's dbt target folder: the views it last built
KEPT_METADATA = "segmint/kept"


def views_fingerprint(
    conn: duckdb.DuckDBPyConnection, manifest: Mapping[str, Any], asset_keys: set[dg.AssetKey]
) -> str | None:
    """What the views of `asset_keys` are made of: each model's SQL file checksum, config, schema, alias and
    parents, the column names and types of every relation they read (a view over a table whose columns changed
    must be re-created), the database name (views name it) and dbt's version. None when one of them is not a view
    or does not exist in the warehouse (then dbt must build it)."""
    translator = SegmintDbtTranslator()
    nodes = sorted(
        (node for node in manifest.get("nodes", {}).values() if node.get("resource_type") == "model"),
        key=lambda node: node["unique_id"],
    )
    parts: list[Any] = [package_version("dbt-core"), package_version("dbt-duckdb")]
    parts.append(conn.execute("select current_database()").fetchone()[0])
    for node in nodes:
        if translator.get_asset_key(node) not in asset_keys:
            continue
        if node["config"].get("materialized") != "view":
            return None
        exists = conn.execute(
            "select count(*) from information_schema.tables"
            " where table_type = 'VIEW' and table_schema = ? and table_name = ?",
            [node["schema"], node["alias"]],
        ).fetchone()[0]
        if not exists:
            return None
        parents = node.get("depends_on", {}).get("nodes", [])
        parts.append([node["unique_id"], node["checksum"], node["config"], node["schema"], node["alias"], parents])
        for parent in parents:
            relation = {**manifest.get("nodes", {}), **manifest.get("sources", {})}.get(parent, {})
            schema, name = relation.get("schema"), relation.get("identifier") or relation.get("alias")
            parts.append(
                conn.execute(
                    "select column_name, data_type from information_schema.columns"
                    " where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, name],
                ).fetchall()
            )
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def view_step(name: str, selector: str) -> dg.AssetsDefinition:
    """A dbt step that builds one after-ML folder of views (`selector`), after the Python assets that write the
    tables they read; one factory, so the after-scores and after-syncs steps cannot drift apart.

    A view only stores its query, so re-creating it with the same definition over tables with the same columns
    changes nothing, yet cost a whole dbt start (~3-4 s per step and run). On DuckDB the step keeps the views when
    their fingerprint (views_fingerprint) equals the one recorded when dbt last built them (metadata
    `segmint/kept`), and runs dbt otherwise: a changed model, config, column list, dbt version or a missing view.
    Never when the step has dbt tests to run (none today) or on Spark."""

    @dbt_assets(
        manifest=DBT_MANIFEST,
        select=selector,
        dagster_dbt_translator=SegmintDbtTranslator(),
        name=name,
        op_tags=DUCKDB_TAG,
    )
    def _views(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, spark: SparkEngine):
        state = dbt_target_path(warehouse.resolved_path(), context.op_def.name) / VIEWS_STATE_FILE
        keys = set(context.selected_asset_keys)
        can_keep = warehouse.resolved_engine() != "spark" and not context.selected_asset_check_keys
        manifest = json.loads(DBT_MANIFEST.read_text(encoding="utf-8")) if can_keep else {}
        if can_keep and state.exists():
            with warehouse.connect() as conn:
                current = views_fingerprint(conn, manifest, keys)
            if current is not None and current == state.read_text(encoding="utf-8").strip():
                kept = {KEPT_METADATA: dg.MetadataValue.text("views unchanged: definition and input columns")}
                for output_name in sorted(context.selected_output_names):
                    yield dg.Output(None, output_name=output_name, metadata=kept)
                return
        state.unlink(missing_ok=True)
        yield from _run_dbt(context, dbt, warehouse, spark, ["build"])
        if can_keep:
            with warehouse.connect() as conn:
                built = views_fingerprint(conn, manifest, keys)
            if built is not None:
                state.write_text(built, encoding="utf-8")

    return _views


# marts.segment_cards and marts.segment_membership_history: views of the Python outputs made from the scores.
dbt_after_scores_models = view_step("dbt_after_scores_models", AFTER_SCORES_SELECTOR)
# marts.audience_lift: a view of activation.audience_lift, built once the syncs have run.
dbt_after_syncs_models = view_step("dbt_after_syncs_models", AFTER_SYNCS_SELECTOR)


# A model in the wrong folder fails the code location with one line, not with a cycle between dbt and ML steps.
check_layout()
