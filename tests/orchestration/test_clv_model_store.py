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
