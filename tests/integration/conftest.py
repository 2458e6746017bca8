"""One operated deployment shared by the webserver and browser tests: a good run, a failed-check run, the real UI.

Built once per session because a whole-graph run takes about two minutes on 2 cores (dbt dominates):
1. `make run` on a small demo shop (every asset materialized, the segment report written);
2. `make run` again on a copy of the demo landing zone with one impossible order total (the planted defect), so
   the blocking GX check `gx_raw_orders` fails and the run stops there;
3. `dagster-webserver` on a free 127.0.0.1 port over the same DAGSTER_HOME, as `make dev` would serve it.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT_ROOT, VENV_BIN, make_run, segmint_env

DEMO_CUSTOMERS = "2000"  # the issue-19 comparison shop size (test_spark_engine compares both engines on it)
IMPOSSIBLE_ORDER_TOTAL = "99999999.0"  # above the raw_orders suite's 1e7 bound: an error-level expectation fails
WEBSERVER_START_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class OperatedDeployment:
    """Paths of the shared deployment and the ids of its two runs."""

    root: Path
    env: dict[str, str]
    good_run_output: str
    failed_run_output: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def report(self) -> Path:
        return self.data_dir / "reports" / "segment_report.html"


def _output(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-4000:] + "\n" + result.stderr[-4000:]


def corrupt_landing_copy(source: Path, target: Path) -> Path:
    """A copy of the landing zone whose fifth order has an impossible total (the only defect planted)."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.suffix == ".csv" and path.name != "events.csv":  # events are optional; leaving them out keeps it fast
            shutil.copy(path, target / path.name)
    orders = target / "orders.csv"
    with orders.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[4]["order_total"] = IMPOSSIBLE_ORDER_TOTAL
    with orders.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.fixture(scope="session")
def operated(tmp_path_factory) -> OperatedDeployment:
    root = tmp_path_factory.mktemp("operated")
    good = make_run(root, SEGMINT_DEMO_CUSTOMERS=DEMO_CUSTOMERS)
    assert good.returncode == 0, _output(good)
    landing = corrupt_landing_copy(root / "data" / "demo" / "landing", root / "bad_landing")
    failed = make_run(root, SEGMINT_DEMO_CUSTOMERS=DEMO_CUSTOMERS, SEGMINT_LANDING_DIR=str(landing))
    assert failed.returncode != 0, "the run with an impossible order total should have failed its GX check"
    return OperatedDeployment(
        root=root, env=segmint_env(root), good_run_output=_output(good), failed_run_output=_output(failed)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(base_url: str, query: str) -> dict:
    response = requests.post(f"{base_url}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def _wait_for_code_location(base_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WEBSERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-4000:]}"
        try:
            if graphql(base_url, "{ assetNodes { id } }")["assetNodes"]:
                return
        except (requests.RequestException, AssertionError, KeyError, TypeError):
            pass
        time.sleep(1)
    raise AssertionError(
        f"the code location did not load in {WEBSERVER_START_TIMEOUT_SECONDS} s:\n{log.read_text()[-4000:]}"
    )


@pytest.fixture(scope="session")
def webserver(operated: OperatedDeployment) -> str:
    """Base URL of a real `dagster-webserver` over the operated deployment's DAGSTER_HOME."""
    port = free_port()
    log = operated.root / "webserver.log"
    with log.open("w") as log_handle:
        process = subprocess.Popen(
            [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=PROJECT_ROOT,
            env=operated.env,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_code_location(base_url, process, log)
        # The first visit on 127.0.0.1 opens a "join the community" dialog over the page; mark it as seen.
        graphql(base_url, "mutation { setNuxSeen }")
        yield base_url
    finally:
        # The webserver runs its code server as a child: end the whole process group this fixture started.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
