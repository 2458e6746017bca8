"""Shared helpers for destination tests: a fast retry policy, a test audience and a sleep recorder."""

from __future__ import annotations

import duckdb

from activation.audiences import Audience, DestinationConfig
from activation.http import RetryPolicy
from activation.ledger import load_ledger
from tests.servers.warehouse import build_warehouse

# Tiny delays keep fault-injection tests fast; the timeout is short so an injected stall trips it quickly.
FAST_POLICY = RetryPolicy(
    max_attempts=4, backoff_base_s=0.001, backoff_cap_s=0.01, max_retry_after_s=0.01, timeout_s=0.5
)


class SleepRecorder:
    """Stands in for time.sleep: records requested delays, waits a negligible time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_audience(
    name: str = "everyone",
    rule: str = "predicted_clv >= 0",
    value_column: str | None = None,
    control_share: float = 0.10,
    max_change_share: float = 0.9,
) -> Audience:
    """An audience over the test warehouse (every customer matches the default rule)."""
    return Audience(
        name=name,
        description="test",
        rule=rule,
        destinations=(DestinationConfig("x", "webhook"),),
        value_column=value_column,
        control_share=control_share,
        max_change_share=max_change_share,
    )


test_audience.__test__ = False  # not a pytest test despite its name


def new_warehouse(n: int = 60) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the test marts and raw tables."""
    return build_warehouse(duckdb.connect(":memory:"), n)


def ledger_keys(conn: duckdb.DuckDBPyConnection, destination: str, audience: str, state: str = "confirmed") -> set:
    """Member keys in one ledger state."""
    rows = load_ledger(conn, destination, audience)
    return set(rows.loc[rows["state"] == state, "member_key"])
