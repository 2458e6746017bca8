"""Code versions computed from the source (orchestration/lib/code_versions.py): the same for edits that cannot
change a fit, new for any code edit the step reaches and only for the steps it reaches, stable across processes and
checkouts, and the model chain refits when one changes. Every edit is made on a temporary copy, never on the
repository."""

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
from orchestration.lib.code_versions import (
    ASSET_STEPS,
    PACKAGES,
    PROJECT_ROOT,
    asset_code_versions,
    source_digest,
    step_sources,
)

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


def copy_of_the_sources(tmp_path: Path, name: str) -> Path:
    """A copy of the project's Python packages the steps' versions read (PACKAGES and orchestration), elsewhere on
    disk."""
    root = tmp_path / name

    def not_python(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if not n.endswith(".py") and not (Path(folder) / n).is_dir() or n == "__pycache__"}

    for package in (*PACKAGES, "orchestration"):
        shutil.copytree(PROJECT_ROOT / package, root / package, ignore=not_python)
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
    assert chain_code_versions(copy_of_the_sources(tmp_path, "copy")) == repo

    commented = copy_of_the_sources(tmp_path, "commented")
    edit_source(
        commented,
        "ml/evaluation.py",
        "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.2",
        "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.2  # x",
    )
    edit_source(commented, "ml/champion.py", '"""', '"""An edited docstring. ')
    assert chain_code_versions(commented) == repo

    # ml/evaluation.py: imported by ml/champion.py, not by the step's asset module nor by the BTYD fit
    edited = copy_of_the_sources(tmp_path, "edited")
    edit_source(
        edited, "ml/evaluation.py", "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.2", "DEFAULT_RANKING_FLOOR_SPEARMAN = 0.25"
    )
    changed = chain_code_versions(edited)
    assert changed["btyd_models"] == repo["btyd_models"]
    for step in ("clv_model_evaluation", "clv_model"):
        assert changed[step] != repo[step] and changed[step].split("-")[:-1] == repo[step].split("-")[:-1]


def test_the_chain_refits_when_a_code_version_changes_and_not_for_a_comment(tmp_path):
    """Rule 4 of ml/cadence.py through the real digest: the snapshot setting the chain's decision compares."""
    edited, commented = copy_of_the_sources(tmp_path, "edited"), copy_of_the_sources(tmp_path, "commented")
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
        "import json; from orchestration.lib.code_versions import asset_code_versions; "
        "print(json.dumps(asset_code_versions()))"
    )
    seen = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(PROJECT_ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seen.append(json.loads(run.stdout))
    assert seen[0] == seen[1] == asset_code_versions(PROJECT_ROOT) == asset_code_versions()
    assert chain_code_versions() == {step: seen[0][step] for step in CHAIN_STEPS}


def test_a_missing_asset_function_is_an_error_not_an_empty_version(tmp_path):
    with pytest.raises(ValueError, match="defines no top-level 'no_such_step'"):
        source_digest("orchestration.defs.step", "no_such_step", root=_toy(tmp_path, "toy"))


def test_every_pure_package_is_followed_and_orchestration_helpers_and_empty_packages_are_not(tmp_path):
    root = _toy(
        tmp_path,
        "packages",
        orchestration__defs__step=(
            "return fit(_read())",
            "from reporting import TITLE\n    from reporting.cards import card\n"
            "    from orchestration.lib.io import read\n\n    return card(fit(read(_read())), TITLE)",
        ),
    )
    extra = {
        "reporting/__init__.py": 'TITLE = "Segments"\n',
        "reporting/cards.py": "from activation.rules import RULE\n\n\ndef card(x, title):\n    return (title, x, RULE)\n",
        "activation/__init__.py": "",
        "activation/rules.py": "RULE = 'recency <= 30'\n",
        "orchestration/lib/__init__.py": "",
        "orchestration/lib/io.py": "def read(x):\n    return x\n",
    }
    for path, text in extra.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    covered = {name for name in step_sources(*STEP, root=root) if ":" not in name}
    # a package's non-empty __init__ counts; ml's and activation's are empty and compute nothing
    assert covered == {"ml.fit", "ml.helper", "ml.rates", "reporting", "reporting.cards", "activation.rules"}


def _changed_steps(tmp_path: Path, name: str, relative: str, old: str, new: str) -> set[str]:
    """The steps whose version an edit of a copy of the sources changes."""
    root = copy_of_the_sources(tmp_path, name)
    edit_source(root, relative, old, new)
    before, after = asset_code_versions(), asset_code_versions(root)
    assert set(after) == set(ASSET_STEPS)
    for step, version in after.items():  # the readable prefix stays; only the digest follows the code
        assert version.removesuffix(version.split("-")[-1]) == ASSET_STEPS[step][0] + "-"
    return {step for step in ASSET_STEPS if after[step] != before[step]}


def test_an_edit_changes_the_versions_of_exactly_the_assets_whose_code_reaches_it(tmp_path):
    added_helper = "\n\ndef _an_added_helper():\n    return 1\n"
    edits = {  # (file, old, new) -> the steps it changes
        ("ml/rfm.py", "", added_helper): {"rfm_segments", "prospect_scores", "explanation_texts", "serving_bundle"},
        ("reporting/cards.py", "", added_helper): {"segment_cards", "serving_bundle"},
        ("activation/exports.py", "", added_helper): {"audience_exports"},
        ("landing/event_mapping.py", "", added_helper): {"event_vocabulary"},
        ("ml/fairness.py", "", added_helper): {"fairness_audit"},
        # an asset's own body: that asset only, not the others of its module
        ("orchestration/defs/segments.py", 'write_table(conn, "ml.rfm_segments", scores)', "pass"): {"rfm_segments"},
        ("orchestration/defs/clv.py", "def clv_activation_gate(", "def clv_activation_gate(_unused=None, *, "): {
            "clv_activation_gate"
        },
    }
    covered = {step: set(step_sources(module, function)) for step, (_, module, function) in ASSET_STEPS.items()}
    for number, ((relative, old, new), expected) in enumerate(edits.items()):
        changed = _changed_steps(tmp_path, f"edit{number}", relative, old, new)
        assert changed == expected, (relative, changed)
        module = relative.removesuffix(".py").replace("/", ".")
        if not module.startswith("orchestration."):  # the steps that follow a module whole are those it reaches
            assert changed == {step for step, sources in covered.items() if module in sources}


def test_a_comment_or_a_docstring_anywhere_changes_no_version(tmp_path):
    assert not _changed_steps(tmp_path, "comment", "ml/rfm.py", "", "# a comment at the end\n")
    assert not _changed_steps(tmp_path, "docstring", "activation/exports.py", '"""', '"""An edited docstring. ')
    assert not _changed_steps(
        tmp_path,
        "asset_docstring",
        "orchestration/defs/segments.py",
        '    """One row per customer: recency',
        '    """One row per customer (edited): recency',
    )
