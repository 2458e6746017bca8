"""Fixtures of the real-time tests (helpers live in tests/realtime/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.bundle import bundles_dir, load_bundle
from realtime.engine import Engine
from tests.realtime.helpers import build_bundle


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    build_bundle(folder)
    return folder


@pytest.fixture
def engine(data_dir) -> Engine:
    return Engine(load_bundle(bundles_dir(data_dir)))
