"""The code location is called `segmint` wherever Dagster loads it: workspace.yaml (make dev, the webserver
test) and pyproject's [tool.dagster] (`dagster dev` without -w)."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_code_location_is_named_segmint_in_the_workspace_and_in_pyproject():
    [entry] = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert entry["python_module"]["location_name"] == tool["code_location_name"] == "segmint"
    assert entry["python_module"]["module_name"] == tool["module_name"] == "orchestration.definitions"
