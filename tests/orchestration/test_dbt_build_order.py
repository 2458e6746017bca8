"""The dbt build order is the folder tree: models/marts/scores/ is built after the ML assets, everything else before.

Rehearsed with a throwaway mart in a copy of the dbt project: put in the scores folder, it joins the score step;
put beside the feature marts, the code location refuses to load with one line naming the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from dagster_dbt import dbt_assets

from orchestration.defs.dbt_models import (
    SCORES_SELECTOR,
    DbtLayoutError,
    SegmintDbtTranslator,
    check_layout,
    dbt_feature_models,
    dbt_score_models,
    misplaced_models,
)
from orchestration.lib import groups, keys
from tests.conftest import PROJECT_ROOT, VENV_BIN

# A mart joining an ML output back to the features: what the issue says used to need tags=['scores'].
NEW_MART = """
select features.country, avg(predictions.predicted_clv) as mean_predicted_clv
from {{ ref('customer_features') }} as features
join {{ source('ml', 'clv_predictions') }} as predictions using (customer_id)
group by features.country
"""


@pytest.fixture(scope="module")
def rehearsal_manifest(tmp_path_factory) -> Path:
    """The repository's dbt project plus NEW_MART twice: in the scores folder, and misplaced beside the features."""
    tmp_path = tmp_path_factory.mktemp("rehearsal")
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    (project / "models/marts/scores/clv_by_country.sql").write_text(NEW_MART)
    (project / "models/marts/clv_by_country_misplaced.sql").write_text(NEW_MART)
    env = {
        "PATH": str(VENV_BIN),
        "DO_NOT_TRACK": "1",
        "HOME": str(tmp_path),
        "SEGMINT_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
    }
    result = subprocess.run(
        [str(VENV_BIN / "dbt"), "parse", "--profiles-dir", ".", "--quiet"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    return project / "target" / "manifest.json"


def test_the_score_step_builds_exactly_the_scores_folder():
    manifest = json.loads((PROJECT_ROOT / "dbt_project" / "target" / "manifest.json").read_text())
    in_folder = {
        node["name"] for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["original_file_path"].startswith("models/marts/scores/")
    }  # fmt: skip
    assert in_folder and {key.path[-1] for key in dbt_score_models.keys} == in_folder
    assert keys.CUSTOMER_SCORES in dbt_score_models.keys and keys.CUSTOMER_SCORES not in dbt_feature_models.keys
    assert {dbt_score_models.specs_by_key[key].group_name for key in dbt_score_models.keys} == {groups.SCORES}
    assert misplaced_models(manifest) == []


def test_a_new_mart_in_the_scores_folder_is_built_after_the_models(rehearsal_manifest):
    assert "models/marts/scores/clv_by_country.sql" not in misplaced_models(json.loads(rehearsal_manifest.read_text()))

    @dbt_assets(manifest=rehearsal_manifest, select=SCORES_SELECTOR, dagster_dbt_translator=SegmintDbtTranslator())
    def scores(): ...

    new_key = dg.AssetKey(["marts", "clv_by_country"])
    assert new_key in scores.keys
    assert scores.specs_by_key[new_key].group_name == groups.SCORES
    assert keys.CLV_PREDICTIONS in {dep.asset_key for dep in scores.specs_by_key[new_key].deps}


def test_a_mart_reading_an_ml_output_outside_the_scores_folder_stops_the_location_with_one_line(rehearsal_manifest):
    message = r"^models/marts/clv_by_country_misplaced.sql read\(s\) an ML output: move it to dbt_project/models/marts/scores/$"
    with pytest.raises(DbtLayoutError, match=message):
        check_layout(rehearsal_manifest)
