"""Code versions computed from the source (orchestration/lib/code_versions.py): the same for edits that cannot
change a fit, new for any code edit the step reaches, stable across processes and checkouts, and the model chain
refits when one changes. Every edit is made on a temporary copy, never on the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from ml.cadence import TrainingSnapshot, decide_refit
from orchestration.defs.btyd import CHAIN_STEPS, chain_code_versions, code_versions_setting
from orchestration.lib.code_versions import PROJECT_ROOT, source_digest, step_sources

# A toy project: the step `model_step` fits with ml.fit, which imports ml.helper (a module) and ml.rates (a name).
TOY = {
    "ml/__init__.py": "",
    "ml/fit.py": '''"""Fits."""

from ml import helper
from ml.rates import RATE


def fit(x):
    """Scaled by the rate."""
    return helper.scale(x) * RATE  # the rate of the shop
''',
    "ml/helper.py": "def scale(x):\n    return x * 2\n",
    "ml/rates.py": "RATE = 0.5\n",
    "ml/unrelated.py": "VALUE = 1\n",
    "orchestration/__init__.py": "",
    "orchestration/defs/__init__.py": "",
    "orchestration/defs/step.py": """import dagster as dg

from ml.fit import fit
from ml.unrelated import VALUE

SQL = "select 1"


def _read():
    return SQL


@dg.asset
def model_step():
    return fit(_read())


@dg.asset
def other_step():
    return VALUE
""",
}
STEP = ("orchestration.defs.step", "model_step")


def _toy(tmp_path: Path, name: str, **edits: tuple[str, str]) -> Path:
    """A copy of the toy project with edits: file (dots for slashes, no suffix) -> (old text, new text)."""
    root = tmp_path / name
    for path, text in TOY.items():
        key = path.removesuffix(".py").replace("/", "__")
        if key in edits:
            old, new = edits[key]
            assert old in text, (path, old)
            text = text.replace(old, new)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def _toy_digest(tmp_path: Path, name: str, **edits: tuple[str, str]) -> str:
    return source_digest(*STEP, root=_toy(tmp_path, name, **edits))


def test_the_step_covers_its_function_the_helpers_it_reaches_and_the_ml_modules_imported_transitively(tmp_path):
    covered = step_sources(*STEP, root=_toy(tmp_path, "toy"))
    assert set(covered) == {
        "orchestration.defs.step:model_step",
        "orchestration.defs.step:_read",
        "orchestration.defs.step:SQL",
        "ml.fit",
        "ml.helper",
        "ml.rates",
    }  # not other_step, nor ml.unrelated it alone imports


def test_comment_docstring_and_formatting_edits_keep_the_version(tmp_path):
    original = _toy_digest(tmp_path, "original")
    for name, edit in {
        "comment": ("# the rate of the shop", "# another comment\n    # and one more"),
        "docstring": ('"""Scaled by the rate."""', '"""Scaled by the rate of the shop, a longer docstring."""'),
        "module_docstring": ('"""Fits."""', '"""Fits, and what they are for."""'),
        "formatting": ("return helper.scale(x) * RATE", "return (\n        helper.scale(x)\n        * RATE\n    )"),
        "blank_lines": ("\n\ndef fit", "\n\n\n\ndef fit"),
    }.items():
        assert _toy_digest(tmp_path, name, ml__fit=edit) == original, name


def test_a_code_edit_anywhere_the_step_reaches_changes_the_version(tmp_path):
    original = _toy_digest(tmp_path, "original")
    edits = {
        "fit": {"ml__fit": ("* RATE", "* RATE * 1.01")},
        "helper_module": {"ml__helper": ("x * 2", "x * 3")},
        "imported_constant": {"ml__rates": ("0.5", "0.25")},
        "sql_constant": {"orchestration__defs__step": ('"select 1"', '"select 2"')},
        "helper_function": {"orchestration__defs__step": ("return SQL", "return SQL.upper()")},
        "asset_body": {"orchestration__defs__step": ("return fit(_read())", "return fit(_read()) + 1")},
    }
    digests = {name: _toy_digest(tmp_path, name, **edit) for name, edit in edits.items()}
    assert original not in digests.values()
    assert len(set(digests.values())) == len(edits)


def test_a_late_import_and_a_rebound_constant_count_too(tmp_path):
    late = {
        "orchestration__defs__step": ("    return SQL", "    from ml.unrelated import VALUE\n\n    return SQL * VALUE")
    }
    covered = step_sources(*STEP, root=_toy(tmp_path, "late", **late))
    assert "ml.unrelated" in covered
    rebound = {"orchestration__defs__step": ('SQL = "select 1"\n', 'SQL = "select 1"\nSQL += " union all select 2"\n')}
    assert _toy_digest(tmp_path, "rebound", **rebound) != _toy_digest(tmp_path, "original")


def test_edits_the_step_does_not_reach_keep_the_version(tmp_path):
    original = _toy_digest(tmp_path, "original")
    assert _toy_digest(tmp_path, "unrelated_module", ml__unrelated=("VALUE = 1", "VALUE = 2")) == original
    assert _toy_digest(tmp_path, "other_asset", orchestration__defs__step=("return VALUE", "return -VALUE")) == original


def copy_of_the_chain(tmp_path: Path, name: str) -> Path:
    """A copy of the project's ml package and the chain's asset modules, somewhere else on disk."""
    root = tmp_path / name
    shutil.copytree(PROJECT_ROOT / "ml", root / "ml", ignore=shutil.ignore_patterns("__pycache__"))
    for module in {module for _, module, _ in CHAIN_STEPS.values()}:
        relative = Path(*module.split(".")).with_suffix(".py")
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / relative, root / relative)
    return root


def edit_source(root: Path, relative: str, old: str, new: str) -> None:
    """Replaces the first `old` (or appends `new` when `old` is empty)."""
    path = root / relative
    text = path.read_text()
    assert old in text, (relative, old)
    path.write_text(text.replace(old, new, 1) if old else text + new)


def test_the_chain_versions_do_not_depend_on_the_checkout_path_and_follow_a_real_codeedit_source(tmp_path):
    repo = chain_code_versions(PROJECT_ROOT)
    assert set(repo) == set(CHAIN_STEPS) and repo["clv_model_evaluation"].startswith("clv-champion-")
    assert chain_code_versions(copy_of_the_chain(tmp_path, "copy")) == repo

    commented = copy_of_the_chain(tmp_path, "commented")
    edit_source(
        commented,
        "ml/evaluation.py",
        "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.2",
        "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.2  # x",
    )
    edit_source(commented, "ml/champion.py", '"""', '"""An edited docstring. ')
    assert chain_code_versions(commented) == repo

    # ml/evaluation.py: imported by ml/champion.py, not by the step's asset module nor by the BTYD fit
    edited = copy_of_the_chain(tmp_path, "edited")
    edit_source(
        edited, "ml/evaluation.py", "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.2", "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.25"
    )
    changed = chain_code_versions(edited)
    assert changed["btyd_models"] == repo["btyd_models"]
    for step in ("clv_model_evaluation", "clv_model"):
        assert changed[step] != repo[step] and changed[step].split("-")[:-1] == repo[step].split("-")[:-1]


def test_the_chain_refits_when_a_code_version_changes_and_not_for_a_comment(tmp_path):
    """Rule 4 of ml/cadence.py through the real digest: the snapshot setting the chain's decision compares."""
    edited, commented = copy_of_the_chain(tmp_path, "edited"), copy_of_the_chain(tmp_path, "commented")
    edit_source(edited, "ml/btyd.py", "", "\n\ndef _an_added_helper():\n    return 1\n")
    edit_source(commented, "ml/btyd.py", "", "# a comment at the end\n")

    def snapshot(root: Path) -> TrainingSnapshot:
        settings = {"horizon_days": "365", "code_versions": code_versions_setting(chain_code_versions(root))}
        return TrainingSnapshot(date(2026, 11, 20), {"train.customers": 100.0}, settings)

    pinned = snapshot(PROJECT_ROOT)
    decision = decide_refit(pinned, snapshot(edited))
    assert decision.refit and decision.reason.startswith("settings changed: code_versions btyd_models=btyd-models-")
    assert not decide_refit(pinned, snapshot(commented)).refit
    assert not decide_refit(pinned, replace(pinned, as_of=date(2026, 11, 21))).refit


def test_the_same_versions_in_fresh_processes_with_other_hash_seeds_and_working_directories(tmp_path):
    script = (
        "import json, sys; from orchestration.lib.code_versions import source_version; "
        "steps = json.loads(sys.argv[1]); "
        "print(json.dumps({step: source_version(*where) for step, where in steps.items()}))"
    )
    seen = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(PROJECT_ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", script, json.dumps(CHAIN_STEPS)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seen.append(json.loads(run.stdout))
    assert seen[0] == seen[1] == chain_code_versions(PROJECT_ROOT) == chain_code_versions()


def test_a_missing_asset_function_is_an_error_not_an_empty_version(tmp_path):
    with pytest.raises(ValueError, match="defines no top-level 'no_such_step'"):
        source_digest("orchestration.defs.step", "no_such_step", root=_toy(tmp_path, "toy"))
