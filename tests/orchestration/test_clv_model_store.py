"""The production CLV model is read back from the warehouse row its asset wrote, and only if it matches its version."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from orchestration.defs.clv import load_model


def test_the_stored_model_loads_when_its_blob_matches_the_recorded_version():
    blob = pickle.dumps({"name": "lightgbm"})
    assert load_model(blob, hashlib.sha256(blob).hexdigest()[:12]) == {"name": "lightgbm"}


def test_a_blob_that_does_not_match_its_version_is_refused_with_one_line():
    # Regression: clv_predictions used to read the newest clv_model.pkl on disk, whichever warehouse wrote it.
    blob = pickle.dumps({"name": "lightgbm"})
    with pytest.raises(ValueError, match="does not match its version 000000000000"):
        load_model(blob, "000000000000")


def test_a_btyd_fit_that_hit_its_budget_is_noted_on_its_evaluation_rows():
    import pandas as pd

    from ml.btyd import BGNBDParams, FittedBTYD
    from orchestration.defs.clv import _with_budget_notes, budget_notes

    starved = FittedBTYD(
        "bgnbd", BGNBDParams(1, 1, 1, 1), None, 0.0, ["bgnbd: L-BFGS-B stopped at its budget"], 0.1, True
    )
    fine = FittedBTYD("pareto_nbd", BGNBDParams(1, 1, 1, 1), None, 0.0, [], 0.1, False)
    notes = budget_notes({"train": {"bgnbd": starved, "pareto_nbd": fine}, "selection": {"bgnbd": "no customers"}})
    assert notes == {"bgnbd": ["at the train cut-off: bgnbd: L-BFGS-B stopped at its budget"]}
    evaluation = pd.DataFrame({"model": ["bgnbd", "pareto_nbd", "lightgbm"], "note": [None, "kept", None]})
    noted = _with_budget_notes(evaluation, notes)["note"].tolist()
    assert noted[:2] == ["at the train cut-off: bgnbd: L-BFGS-B stopped at its budget", "kept"]
    assert pd.isna(noted[2])
