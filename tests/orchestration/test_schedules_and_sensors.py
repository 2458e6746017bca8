"""The daily schedule, the landing-file sensor (cursor included) and the alert sensors posting to a real local webhook."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from orchestration.defs.schedules import daily_refresh_schedule
from orchestration.defs.sensors import (
    RunCursor,
    decode_landing_cursor,
    failed_check_alert_sensor,
    landing_files_sensor,
    newly_failed,
    run_failure_alert_sensor,
    stale_mart_alert_sensor,
)
from orchestration.lib.alerts import (
    AlertConfig,
    AlertDeliveryError,
    FailedCheck,
    alert_config,
    check_failure_payload,
    post_alert,
    run_failure_payload,
    send_alert,
)
from orchestration.lib.keys import CUSTOMER_SCORES
from orchestration.lib.partitions import STAGED_DAYS_TAG

SECRET_PATH = "/services/T0SECRET/B0SECRET/xyzTOKEN123"  # webhook URLs carry their token in the path
UI_URL = "http://dagster.example.internal:3000"


# ---- a tiny webhook receiver on 127.0.0.1 ----------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(
            {"path": self.path, "content_type": self.headers.get("Content-Type"), "json": json.loads(body)}
        )
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def webhook():
    """A local HTTP server recording every POSTed JSON body; `.url` includes a secret-looking path."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alert_env(monkeypatch, webhook):
    monkeypatch.setenv("SEGMINT_ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("SEGMINT_DAGSTER_URL", UI_URL)
    return webhook


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- schedule ---------------------------------------------------------------------------------------------------


def test_the_daily_schedule_launches_one_refresh_per_day():
    def tick(day: int) -> dg.RunRequest:
        context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, day, 6, tzinfo=UTC))
        [request] = daily_refresh_schedule.evaluate_tick(context).run_requests
        return request

    assert daily_refresh_schedule.job_name == "segmint_refresh"
    assert daily_refresh_schedule.cron_schedule == "0 6 * * *"
    assert daily_refresh_schedule.execution_timezone == "UTC"
    # Same day, same run key: a re-evaluated tick never starts a second run; the next day does.
    assert tick(2).run_key == tick(2).run_key != tick(3).run_key
    assert tick(2).tags["segmint/trigger"] == "schedule"
    # Each tick re-stages the last three days (today included), not the whole history: the feature step's config.
    assert tick(2).run_config == {
        "ops": {"dbt_feature_models": {"config": {"stage_from": "2026-02-28", "stage_to": "2026-03-02"}}}
    }
    assert tick(2).tags[STAGED_DAYS_TAG] == "2026-02-28..2026-03-02"


# ---- landing-file sensor ----------------------------------------------------------------------------------------


def _write(path: Path, text: str, age_seconds: float = 120) -> None:
    path.write_text(text)
    past = time.time() - age_seconds
    os.utime(path, (past, past))


def _tick(cursor: str | None = None):
    return landing_files_sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor))


@pytest.fixture
def landing_dir(tmp_path, monkeypatch) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir()
    monkeypatch.setenv("SEGMINT_LANDING_DIR", str(landing))
    return landing


def test_the_landing_sensor_does_nothing_for_the_demo_shop(monkeypatch):
    monkeypatch.delenv("SEGMINT_LANDING_DIR", raising=False)
    result = _tick()
    assert not result.run_requests
    assert "SEGMINT_LANDING_DIR" in result.skip_message


def test_the_landing_sensor_says_why_when_the_folder_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGMINT_LANDING_DIR", str(tmp_path / "nowhere"))
    result = _tick()
    assert not result.run_requests
    assert "is not a folder" in result.skip_message


def test_new_landing_files_start_one_refresh_and_are_remembered_in_the_cursor(landing_dir):
    _write(landing_dir / "orders.csv", "order_id,customer_id\n1,a\n")
    _write(landing_dir / "events.parquet", "not really parquet")
    _write(landing_dir / "README.txt", "ignored: not a landing file")

    first = _tick()
    [request] = first.run_requests
    assert request.tags["segmint/changed_files"] == "events.parquet,orders.csv"
    # A changed file may change any day: its run has no staging window, so it re-stages every day.
    assert not request.run_config
    assert request.tags[STAGED_DAYS_TAG] == "every day"
    remembered = decode_landing_cursor(first.cursor)
    assert set(remembered) == {"orders.csv", "events.parquet"}
    assert remembered["orders.csv"] == (
        (landing_dir / "orders.csv").stat().st_mtime_ns,
        (landing_dir / "orders.csv").stat().st_size,
    )

    again = _tick(first.cursor)
    assert not again.run_requests
    assert again.skip_message == "no new or changed landing file"


def test_a_changed_landing_file_starts_a_refresh_naming_only_that_file(landing_dir):
    _write(landing_dir / "orders.csv", "order_id\n1\n")
    _write(landing_dir / "customers.csv", "customer_id\na\n")
    cursor = _tick().cursor

    _write(landing_dir / "orders.csv", "order_id\n1\n2\n", age_seconds=90)
    result = _tick(cursor)
    [request] = result.run_requests
    assert request.tags["segmint/changed_files"] == "orders.csv"
    assert result.cursor != cursor


def test_the_run_key_identifies_the_state_of_the_landing_zone(landing_dir):
    _write(landing_dir / "orders.csv", "order_id\n1\n")
    key_before = _tick().run_requests[0].run_key
    assert _tick().run_requests[0].run_key == key_before  # same files, same key: Dagster dedupes the run
    _write(landing_dir / "orders.csv", "order_id\n1\n2\n")
    assert _tick().run_requests[0].run_key != key_before


def test_a_file_still_being_written_is_waited_for_without_moving_the_cursor(landing_dir):
    _write(landing_dir / "orders.csv", "order_id\n1\n")
    cursor = _tick().cursor
    (landing_dir / "events.csv").write_text("event_id\n")  # modified just now

    result = _tick(cursor)
    assert not result.run_requests
    assert "events.csv" in result.skip_message
    assert result.cursor == cursor  # unchanged: the next tick looks again


def test_a_removed_file_updates_the_cursor_without_a_run(landing_dir):
    _write(landing_dir / "orders.csv", "order_id\n1\n")
    _write(landing_dir / "events.csv", "event_id\n1\n")
    cursor = _tick().cursor
    (landing_dir / "events.csv").unlink()

    result = _tick(cursor)
    assert not result.run_requests
    assert "removed events.csv" in result.skip_message
    assert set(decode_landing_cursor(result.cursor)) == {"orders.csv"}


def test_an_unreadable_cursor_is_treated_as_nothing_seen(landing_dir):
    _write(landing_dir / "orders.csv", "order_id\n1\n")
    assert len(_tick("{not json").run_requests) == 1


# ---- alert payloads and posting ----------------------------------------------------------------------------------


def test_alert_settings_default_to_the_local_ui_and_no_webhook():
    config = alert_config({})
    assert config == AlertConfig(webhook_url=None, dagster_url="http://127.0.0.1:3000")
    assert alert_config({"SEGMINT_DAGSTER_URL": "https://dagster.acme.io/"}).dagster_url == "https://dagster.acme.io"


def test_a_check_alert_names_run_job_asset_check_and_links_to_the_ui():
    check = FailedCheck(asset="raw/orders", check="gx_raw_orders", severity="ERROR", description="1 row out of range")
    payload = check_failure_payload(run_id="abc-123", job="segmint_refresh", check=check, dagster_url=UI_URL)
    assert payload | {"text": None} == {
        "source": "segmint",
        "kind": "check_failure",
        "run_id": "abc-123",
        "job": "segmint_refresh",
        "asset": "raw/orders",
        "check": "gx_raw_orders",
        "severity": "ERROR",
        "description": "1 row out of range",
        "run_url": f"{UI_URL}/runs/abc-123",
        "check_url": f"{UI_URL}/assets/raw/orders?view=checks&checkDetail=gx_raw_orders",
        "text": None,
    }
    assert "gx_raw_orders" in payload["text"] and payload["run_url"] in payload["text"]


def test_a_run_failure_alert_blames_the_first_failed_check_and_clips_long_errors():
    checks = [FailedCheck("raw/orders", "gx_raw_orders", "ERROR", "bad totals")]
    payload = run_failure_payload(
        run_id="r1",
        job="segmint_refresh",
        error="x" * 5000,
        failed_steps=["raw__orders_gx_raw_orders"],
        failed_checks=checks,
        dagster_url=UI_URL,
    )
    assert (payload["asset"], payload["check"]) == ("raw/orders", "gx_raw_orders")
    assert payload["failed_checks"][0]["description"] == "bad totals"
    assert len(payload["description"]) <= 1000
    without_check = run_failure_payload(
        run_id="r2",
        job="segmint_refresh",
        error="boom",
        failed_steps=["dbt_feature_models"],
        failed_checks=[],
        dagster_url=UI_URL,
    )
    assert without_check["check"] is None and "dbt_feature_models" in without_check["text"]


def test_an_alert_is_posted_as_json_to_the_webhook(webhook):
    payload = {"kind": "check_failure", "run_id": "r1", "text": "hello"}
    logged: list[str] = []
    assert send_alert(payload, AlertConfig(webhook.url, UI_URL), logged.append) is True
    [received] = webhook.received
    assert received["json"] == payload
    assert received["path"] == SECRET_PATH
    assert received["content_type"] == "application/json"
    assert "xyzTOKEN123" not in logged[0] and "127.0.0.1" in logged[0]


def test_without_a_webhook_the_alert_is_one_log_line():
    logged: list[str] = []
    assert (
        send_alert(
            {"kind": "run_failure", "run_id": "r1", "text": "[segmint] run failed"},
            AlertConfig(None, UI_URL),
            logged.append,
        )
        is False
    )
    assert logged == ["ALERT (set SEGMINT_ALERT_WEBHOOK_URL to post it): [segmint] run failed"]


def test_a_webhook_error_is_reported_without_the_secret_url(webhook):
    webhook.status = 500
    with pytest.raises(AlertDeliveryError) as error:
        post_alert({"text": "x"}, webhook.url)
    assert "HTTP 500" in str(error.value)
    assert "TOKEN" not in str(error.value)


def test_an_unreachable_webhook_fails_fast_without_the_secret_url():
    url = f"http://127.0.0.1:{_free_port()}{SECRET_PATH}"
    with pytest.raises(AlertDeliveryError) as error:
        post_alert({"text": "x"}, url, timeout=2)
    assert "TOKEN" not in str(error.value) and error.value.__cause__ is None
    assert "unreachable" in str(error.value)


# ---- alert sensors on a real (ephemeral) Dagster instance ------------------------------------------------------


@dg.asset
def tiny_orders() -> None:
    """A one-row stand-in for raw.orders."""


@dg.asset_check(asset=tiny_orders, blocking=True)
def tiny_orders_have_totals() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, description="order_total is null on 1 row"
    )


@dg.asset_check(asset=tiny_orders)
def tiny_orders_are_recent() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@pytest.fixture(scope="module")
def failed_run():
    """An instance holding one failed run: its blocking check failed (the planted defect), a second check passed."""
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [tiny_orders, tiny_orders_have_totals, tiny_orders_are_recent], instance=instance, raise_on_error=False
        )
        assert not result.success
        yield instance, result


def test_the_failed_check_sensor_posts_one_alert_per_failed_check_once(alert_env, failed_run):
    instance, result = failed_run
    context = dg.build_sensor_context(instance=instance, cursor=RunCursor(updated_after=0).encode())
    first = failed_check_alert_sensor.evaluate_tick(context)

    [alert] = [r["json"] for r in alert_env.received]
    assert alert["kind"] == "check_failure"
    assert (alert["run_id"], alert["asset"], alert["check"]) == (
        result.run_id,
        "tiny_orders",
        "tiny_orders_have_totals",
    )
    assert alert["job"] == result.dagster_run.job_name
    assert alert["run_url"] == f"{UI_URL}/runs/{result.run_id}"
    assert alert["description"] == "order_total is null on 1 row"
    assert result.run_id in RunCursor.decode(first.cursor).seen

    failed_check_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert len(alert_env.received) == 1  # the cursor moved past the run: no second alert


def test_the_failed_check_sensor_starts_from_now_on_its_first_tick(alert_env, failed_run):
    instance, _ = failed_run
    result = failed_check_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert alert_env.received == []
    assert RunCursor.decode(result.cursor).updated_after > 0


def _run_failure_context(instance, result) -> dg.RunFailureSensorContext:
    return dg.build_run_status_sensor_context(
        sensor_name="segmint_run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()


def test_the_run_failure_sensor_posts_the_run_and_the_check_that_failed_it(alert_env, failed_run):
    instance, result = failed_run
    context = _run_failure_context(instance, result)
    run_failure_alert_sensor(context)

    [alert] = [r["json"] for r in alert_env.received]
    assert alert["kind"] == "run_failure"
    assert (alert["run_id"], alert["asset"], alert["check"]) == (
        result.run_id,
        "tiny_orders",
        "tiny_orders_have_totals",
    )
    assert [c["check"] for c in alert["failed_checks"]] == ["tiny_orders_have_totals"]
    assert alert["failed_steps"]
    assert alert["run_url"] == f"{UI_URL}/runs/{result.run_id}"


def test_the_run_failure_sensor_logs_the_alert_when_no_webhook_is_set(monkeypatch, failed_run, capfd):
    monkeypatch.delenv("SEGMINT_ALERT_WEBHOOK_URL", raising=False)
    instance, result = failed_run
    context = _run_failure_context(instance, result)
    capfd.readouterr()
    run_failure_alert_sensor(context)
    logged = capfd.readouterr().err
    assert "ALERT (set SEGMINT_ALERT_WEBHOOK_URL to post it)" in logged and result.run_id in logged


def test_a_mart_is_reported_stale_once_when_its_freshness_turns_fail(alert_env, monkeypatch, failed_run):
    assert newly_failed({"marts/customer_scores": "PASS"}, {"marts/customer_scores": "FAIL"}) == [
        "marts/customer_scores"
    ]
    assert newly_failed({"marts/customer_scores": "FAIL"}, {"marts/customer_scores": "FAIL"}) == []

    instance, _ = failed_run
    states = {CUSTOMER_SCORES: SimpleNamespace(freshness_state=SimpleNamespace(value="FAIL"))}
    monkeypatch.setattr(instance, "get_freshness_state_records", lambda keys: states)
    first = stale_mart_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    stale_mart_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))

    [alert] = [r["json"] for r in alert_env.received]
    assert (alert["kind"], alert["asset"]) == ("stale_asset", "marts/customer_scores")
    assert alert["asset_url"] == f"{UI_URL}/assets/marts/customer_scores"
