"""Helpers for the real-time tests: a tiny serving bundle from a hand-made frame, events, a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from bench.realtime import synthetic_lookalike
from realtime.bundle import bundles_dir, lookalike_json, write_bundle
from realtime.rules import DEFAULT_RULES_PATH

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KNOWN_CUSTOMER = "C-0001"


def customers_frame() -> pd.DataFrame:
    """Three known customers with batch scores, plus PII columns the writer must leave out."""
    return pd.DataFrame(
        {
            "customer_id": ["C-0002", KNOWN_CUSTOMER, "C-0003"],
            "rfm_segment": ["At Risk", "Champions", None],
            "behavioral_segment": ["Bargain Hunters", "Researchers", "Researchers"],
            "predicted_clv": [40.5, 812.25, np.nan],
            "purchase_propensity": [0.12, 0.87, 0.3],
            "recommended_action": ["Win back", "Reward and retain; ask for reviews.", None],
            "email": ["a@example.com", "vip@example.com", "c@example.com"],
            "phone": ["+331", "+332", "+333"],
            "first_name": ["Ann", "Bob", "Cy"],
        }
    )


def lookalike_model():
    """A real fitted lookalike (ml.lookalike) on a small synthetic frame: visual-heavy browsers become high value."""
    return synthetic_lookalike()


def build_bundle(
    data_dir: Path, rules_text: str | None = None, customers: pd.DataFrame | None = None, now: datetime | None = None
) -> dict:
    """Write a serving bundle into `data_dir` with the real writer; returns its manifest."""
    return write_bundle(
        bundles_dir(data_dir),
        customers if customers is not None else customers_frame(),
        lookalike_json(lookalike_model()),
        rules_text if rules_text is not None else DEFAULT_RULES_PATH.read_text(encoding="utf-8"),
        as_of_date="2026-11-25",
        now=now,
    )


def at(minutes: float, base: datetime | None = None, offset_hours: int = 0) -> str:
    """An ISO time `minutes` after `base` (default: 2 hours ago), written with the given UTC offset."""
    base = base or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    from datetime import timezone

    return (base + timedelta(minutes=minutes)).astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMINT_")}
    return env | {"SEGMINT_DATA_DIR": str(data_dir), "SEGMINT_SERVE_PORT": str(port), "DO_NOT_TRACK": "1"} | extra


class Server:
    """`python -m realtime.cli serve` (what `make serve` runs) as a real uvicorn subprocess on 127.0.0.1."""

    def __init__(self, data_dir: Path, **env: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = serve_env(data_dir, self.port, **env)
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()

    def start(self, timeout: float = 30) -> Server:
        # output to a file: an undrained pipe would block the server once it fills
        self.output = self.data_dir.parent / f"serve-{self.port}.log"
        with self.output.open("w") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "realtime.cli", "serve"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}: {self.output.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise TimeoutError("the service did not answer /healthz")

    def post(self, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + "/v1/events", json=body, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kwargs)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
