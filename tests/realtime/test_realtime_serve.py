"""`make serve` refusals, kill -9 under load without losing an acknowledged event, hot reload under load."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from realtime.bundle import bundles_dir, current_version
from realtime.log import LogStats, log_dir, read_events
from tests.realtime.helpers import KNOWN_CUSTOMER, PROJECT_ROOT, Server, at, build_bundle, customers_frame, serve_env


def run_serve(data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "realtime.cli", "serve"],
        cwd=PROJECT_ROOT,
        env=serve_env(data_dir, 8799, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_serve_runs_the_cli():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    target = re.search(r"^serve:.*\n\t(.*)$", makefile, re.M)
    assert target and target.group(1) == "$(BIN)/python -m realtime.cli serve"


def test_refuses_without_a_bundle(tmp_path):
    result = run_serve(tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, "one line"
    assert "run `make run` first" in result.stderr and result.stderr.startswith("segmint serve: ")


def test_refuses_a_public_host_without_a_token(tmp_path):
    build_bundle(tmp_path / "data")
    result = run_serve(tmp_path / "data", SEGMINT_SERVE_HOST="0.0.0.0")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "not a loopback address" in result.stderr and "SEGMINT_SERVE_TOKEN" in result.stderr


def test_refuses_a_bad_port_and_a_missing_rules_file(tmp_path):
    build_bundle(tmp_path / "data")
    assert "SEGMINT_SERVE_PORT" in run_serve(tmp_path / "data", SEGMINT_SERVE_PORT="http").stderr
    result = run_serve(tmp_path / "data", SEGMINT_REALTIME_RULES=str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "SEGMINT_REALTIME_RULES" in result.stderr


class Load:
    """Client threads posting events with their own event_ids; records what was acknowledged and every failure."""

    def __init__(self, url: str, threads: int = 4, prefix: str = "load"):
        self.url, self.prefix = url, prefix
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _run(self, n: int) -> None:
        session = requests.Session()
        i = 0
        while not self.stop.is_set():
            event_id = f"{self.prefix}-{n}-{i}"
            event = {
                "event_id": event_id,
                "anonymous_id": f"{self.prefix}-visitor-{n}-{i % 50}",
                "event_type": "add_to_cart",
                "product_id": f"sku-{i}",
                "category": "shoes",
            }
            try:
                response = session.post(self.url + "/v1/events", json=event, timeout=10)
                if response.status_code == 200 and response.json()["event_id"] == event_id:
                    self.acknowledged.append(event_id)
                else:
                    self.failures.append(f"{response.status_code} {response.text[:100]}")
            except requests.RequestException as failure:
                self.failures.append(type(failure).__name__)
            i += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


@pytest.mark.parametrize("policy", ["interval", "always"])
def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path, policy):
    data = tmp_path / "data"
    build_bundle(data)
    server = Server(data, SEGMINT_REALTIME_FSYNC=policy).start()
    with Load(server.url) as load:
        time.sleep(3)
        server.kill()  # SIGKILL while requests are in flight
    assert len(load.acknowledged) > 100, "the load reached the service"
    stats = LogStats()
    logged = {event["event_id"] for event in read_events(log_dir(data), stats)}
    missing = set(load.acknowledged) - logged
    assert not missing, f"{len(missing)} acknowledged events are not in the log"
    assert stats.bad_lines == 0

    # restart: sessions are rebuilt from the log, and an acknowledged event sent again is counted once
    restarted = Server(data).start()
    try:
        visitor = "load-visitor-0-0"
        profile = restarted.get(f"/v1/profiles/{visitor}").json()
        sent = sorted(
            int(e.rsplit("-", 1)[1])
            for e in load.acknowledged
            if e.startswith("load-0-") and int(e.rsplit("-", 1)[1]) % 50 == 0
        )
        assert profile["cart"][: len(sent)] == [f"sku-{i}" for i in sent]
        first = load.acknowledged[0]
        n, i = first.split("-")[1:3]
        again = restarted.post(
            {
                "event_id": first,
                "anonymous_id": f"load-visitor-{n}-{int(i) % 50}",
                "event_type": "add_to_cart",
                "product_id": f"sku-{i}",
                "category": "shoes",
            }
        ).json()
        assert again.get("duplicate") is True
        assert [e["event_id"] for e in read_events(log_dir(data))].count(first) == 1
        metrics = restarted.get("/metrics").text
        assert re.search(rf"^segmint_realtime_recovered_events {len(logged)}$", metrics, re.M)
    finally:
        restarted.stop()


def test_hot_reload_under_load_drops_no_request(tmp_path):
    data = tmp_path / "data"
    build_bundle(data)
    first = current_version(bundles_dir(data))
    server = Server(data).start()
    try:
        server.post(
            {
                "anonymous_id": "kept",
                "event_type": "add_to_cart",
                "product_id": "p1",
                "category": "shoes",
                "occurred_at": at(0),
            }
        )
        with Load(server.url, threads=3, prefix="reload") as load:
            time.sleep(1)
            changed = customers_frame()
            changed.loc[changed["customer_id"] == KNOWN_CUSTOMER, "predicted_clv"] = 999.5
            build_bundle(data, customers=changed)
            second = current_version(bundles_dir(data))
            deadline = time.monotonic() + 20
            while server.get("/healthz").json()["bundle_version"] != second and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
        assert second != first and server.get("/healthz").json()["bundle_version"] == second
        assert load.failures == [] and len(load.acknowledged) > 50
        assert server.get(f"/v1/profiles/{KNOWN_CUSTOMER}").json()["predicted_clv"] == 999.5
        assert server.get("/v1/profiles/kept").json()["cart"] == ["p1"], "visitor state survives a reload"
        assert "segmint_realtime_bundle_reloads_total 1" in server.get("/metrics").text
    finally:
        server.stop()


def test_segmint_realtime_rules_overrides_the_bundles_rules(tmp_path):
    data = tmp_path / "data"
    build_bundle(data)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        (PROJECT_ROOT / "config" / "realtime_rules.yaml")
        .read_text()
        .replace("keywords: [durability, style]", "keywords: [comfort]")
    )
    server = Server(data, SEGMINT_REALTIME_RULES=str(rules)).start()
    try:
        names = [s["name"] for s in server.get("/v1/segments").json()["segments"]]
        assert "motivation:comfort" in names and "motivation:style" not in names
        assert (
            "motivation:comfort"
            in server.post({"anonymous_id": "x", "event_type": "page_view", "utm_content": "comfort-ad"}).json()[
                "segments"
            ]
        )
    finally:
        server.stop()
