"""ml/behavioral_segments against a tmp DuckDB: the clustering fit is pinned on the model cadence (issue 18).

An unchanged day refits nothing and gives identical segments; a day on which the training data moved materially,
the fit became SEGMINT_MODEL_REFIT_DAYS old or a refit was forced refits; a refit day gives exactly what the
unpinned fit gives."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pandas as pd

from ml.archetypes import label_segments, name_clusters
from ml.cadence import TrainingSnapshot
from ml.clustering import cluster_customers
from orchestration.defs import segments
from orchestration.defs.resources import SegmintSettings, SparkEngine, Warehouse
from orchestration.defs.segments import CLUSTER_MODEL_TABLE, behavioral_segments
from orchestration.lib.code_versions import asset_code_versions
from tests.unit.test_clustering import blob_features
from tests.unit.test_code_versions import copy_of_the_sources, edit_source

BOOTSTRAP = 3


def _warehouse(path, features: pd.DataFrame, as_of: date) -> None:
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema if not exists marts; create schema if not exists raw")
        conn.register("frame", features.drop(columns=["group"]))
        conn.execute("create or replace table marts.customer_features as select * from frame")
        conn.execute(
            "create or replace table marts.top_event_types as "
            "select 1 as type_rank, 'event_type_share_1' as feature_column, 'page_view' as source_event_type, "
            "1.0 as event_share"
        )
        conn.execute("create or replace table raw.run_context as select ?::date as as_of, 365 as horizon_days", [as_of])


def _run(path, monkeypatch, **env) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    monkeypatch.delenv("SEGMINT_FORCE_REFIT", raising=False)
    monkeypatch.delenv("SEGMINT_ENGINE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = dg.materialize(
        [behavioral_segments],
        # Few resamples keep the test quick; the cadence does not depend on them.
        run_config={"ops": {"ml__behavioral_segments": {"config": {"bootstrap_resamples": BOOTSTRAP}}}},
        resources={
            "warehouse": Warehouse(path=str(path)),
            "spark": SparkEngine(),
            "settings": SegmintSettings(landing_dir=str(path.parent)),
        },
    )
    materializations = result.asset_materializations_for_node("ml__behavioral_segments")
    metadata = {"/".join(m.asset_key.path): m.metadata for m in materializations}
    with duckdb.connect(str(path), read_only=True) as conn:
        segments = conn.execute("select * from ml.behavioral_segments order by customer_id").df()
        profiles = conn.execute("select * from ml.cluster_profiles order by cluster_id, feature").df()
    return segments, profiles, metadata


def _model_version(path) -> str:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(f"select model_version from {CLUSTER_MODEL_TABLE}").fetchone()[0]


def test_an_unchanged_day_refits_nothing_and_gives_identical_segments(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    features = blob_features(1200, 5, seed=3)
    _warehouse(path, features, date(2025, 3, 1))
    first, first_profiles, first_meta = _run(path, monkeypatch)
    assert first_meta["ml/cluster_model"]["cadence"].value == "refit: no pinned fit yet"
    version = _model_version(path)

    # The next day: the as-of date moved, the customers did not.
    _warehouse(path, features, date(2025, 3, 2))
    second, second_profiles, second_meta = _run(path, monkeypatch)
    assert second_meta["ml/behavioral_segments"]["cadence"].value.startswith(f"kept clustering fit {version}")
    assert _model_version(path) == version
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first_profiles, second_profiles)


def test_a_refit_day_gives_exactly_what_the_unpinned_clustering_gives(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    features = blob_features(1200, 5, seed=3)
    _warehouse(path, features, date(2025, 3, 1))
    segments, profiles, _ = _run(path, monkeypatch)
    result = cluster_customers(
        features.drop(columns=["group"]).sort_values("customer_id"), seed=0, n_bootstrap=BOOTSTRAP
    )
    expected = label_segments(result.labels, name_clusters(result.profiles, result.mode, {}))
    assert segments["cluster_id"].tolist() == expected["cluster_id"].tolist()
    assert segments["behavioral_segment"].tolist() == expected["behavioral_segment"].tolist()


def test_a_changed_training_window_a_weekly_cadence_or_a_forced_run_refits(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    features = blob_features(1200, 5, seed=3)
    _warehouse(path, features, date(2025, 3, 1))
    _run(path, monkeypatch)
    pinned = _model_version(path)

    # Material change: 20 % more customers (ml/cadence.py: > 5 % of a training-window measure).
    grown = blob_features(1440, 5, seed=4)
    _warehouse(path, grown, date(2025, 3, 2))
    _, _, meta = _run(path, monkeypatch)
    assert meta["ml/cluster_model"]["cadence"].value.startswith("refit: training data moved more than 5%")
    assert _model_version(path) != pinned

    # Same customers, seven days later: the weekly refit.
    _warehouse(path, grown, date(2025, 3, 9))
    _, _, meta = _run(path, monkeypatch)
    assert meta["ml/cluster_model"]["cadence"].value.startswith("refit: scheduled: pinned fit is 7 days old")

    # Next day, unchanged, but forced.
    _warehouse(path, grown, date(2025, 3, 10))
    _, _, meta = _run(path, monkeypatch, SEGMINT_FORCE_REFIT="1")
    assert meta["ml/cluster_model"]["cadence"].value.startswith("refit: forced")


def test_a_code_edit_the_clustering_step_reaches_refits_the_pinned_fit_and_a_comment_does_not(tmp_path, monkeypatch):
    """The fit's snapshot carries the step's computed code version (ml/cadence.py rule 4), as it carried a bump."""
    path = tmp_path / "warehouse.duckdb"
    features = blob_features(1200, 5, seed=3)
    _warehouse(path, features, date(2025, 3, 1))
    _run(path, monkeypatch)
    pinned = _model_version(path)
    with duckdb.connect(str(path), read_only=True) as conn:
        settings = TrainingSnapshot.from_json(
            conn.execute(f"select snapshot from {CLUSTER_MODEL_TABLE}").fetchone()[0]
        ).settings
    assert settings["code_versions"].startswith(f"behavioral_segments={asset_code_versions()['behavioral_segments']},")

    commented, edited = copy_of_the_sources(tmp_path, "commented"), copy_of_the_sources(tmp_path, "edited")
    edit_source(commented, "ml/clustering.py", "", "# a comment at the end\n")
    edit_source(edited, "ml/clustering.py", "", "\n\ndef _an_added_helper():\n    return 1\n")
    for day, root, cadence in ((2, commented, f"kept clustering fit {pinned}"), (3, edited, "refit: settings changed")):
        monkeypatch.setattr(segments, "CLUSTERS_CODE_VERSION", asset_code_versions(root)["behavioral_segments"])
        _warehouse(path, features, date(2025, 3, day))
        _, _, meta = _run(path, monkeypatch)
        assert meta["ml/cluster_model"]["cadence"].value.startswith(cadence), meta["ml/cluster_model"]["cadence"]
    assert "code_versions behavioral_segments=clusters-" in meta["ml/cluster_model"]["cadence"].value
    assert _model_version(path) != pinned
