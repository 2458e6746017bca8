"""Alerts: JSON payloads for failed runs and failed checks, posted to one webhook (or logged when none is set).

Pure: no Dagster import; the sensors in orchestration/defs/sensors.py collect the facts and call these.
The payload carries a `text` line as well, so a Slack- or Teams-style "incoming webhook" shows it as is.
The webhook URL is a secret (its path usually is the token): it never appears in a log line or an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

WEBHOOK_ENV = "SEGMINT_ALERT_WEBHOOK_URL"
DAGSTER_URL_ENV = "SEGMINT_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
POST_TIMEOUT_SECONDS = 10.0
MAX_TEXT_CHARS = 1000  # an error message can be a whole stack trace; the link leads to the rest
SOURCE = "segmint"


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept an alert; the message names the host only, never the full URL."""


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go (None: log only) and the base URL of the Dagster UI that links point to."""

    webhook_url: str | None
    dagster_url: str


@dataclass(frozen=True)
class FailedCheck:
    """One failed asset-check evaluation: asset path ("raw/orders"), check name, severity and its description."""

    asset: str
    check: str
    severity: str
    description: str | None = None


def alert_config(env: Mapping[str, str] | None = None) -> AlertConfig:
    """Alert settings from SEGMINT_ALERT_WEBHOOK_URL and SEGMINT_DAGSTER_URL (read when called, not at import)."""
    env = os.environ if env is None else env
    webhook = env.get(WEBHOOK_ENV, "").strip() or None
    dagster_url = (env.get(DAGSTER_URL_ENV, "").strip() or DEFAULT_DAGSTER_URL).rstrip("/")
    return AlertConfig(webhook_url=webhook, dagster_url=dagster_url)


def run_url(dagster_url: str, run_id: str) -> str:
    """The run's page in the Dagster UI."""
    return f"{dagster_url.rstrip('/')}/runs/{quote(run_id)}"


def check_url(dagster_url: str, asset: str, check: str) -> str:
    """The check's page in the Dagster UI (asset page, Checks tab, this check opened)."""
    path = "/".join(quote(part, safe="") for part in asset.split("/"))
    return f"{dagster_url.rstrip('/')}/assets/{path}?view=checks&checkDetail={quote(check, safe='')}"


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def run_failure_payload(
    *,
    run_id: str,
    job: str,
    error: str | None,
    failed_steps: Sequence[str],
    failed_checks: Sequence[FailedCheck],
    dagster_url: str,
) -> dict[str, Any]:
    """The alert for a failed run; `asset`/`check` name the first failed check (the usual cause), if any."""
    first = failed_checks[0] if failed_checks else None
    link = run_url(dagster_url, run_id)
    cause = (
        f"check {first.check} on {first.asset} failed"
        if first
        else f"step(s) failed: {', '.join(failed_steps) or 'unknown'}"
    )
    return {
        "source": SOURCE,
        "kind": "run_failure",
        "run_id": run_id,
        "job": job,
        "asset": first.asset if first else None,
        "check": first.check if first else None,
        "severity": "ERROR",
        "description": _clip(error),
        "failed_steps": list(failed_steps),
        "failed_checks": [asdict(check) | {"description": _clip(check.description)} for check in failed_checks],
        "run_url": link,
        "check_url": check_url(dagster_url, first.asset, first.check) if first else None,
        "text": f"[segmint] run of {job} failed: {cause}. {link}",
    }


def check_failure_payload(*, run_id: str, job: str, check: FailedCheck, dagster_url: str) -> dict[str, Any]:
    """The alert for one failed asset check."""
    link = run_url(dagster_url, run_id)
    return {
        "source": SOURCE,
        "kind": "check_failure",
        "run_id": run_id,
        "job": job,
        "asset": check.asset,
        "check": check.check,
        "severity": check.severity,
        "description": _clip(check.description),
        "run_url": link,
        "check_url": check_url(dagster_url, check.asset, check.check),
        "text": f"[segmint] {check.severity} check {check.check} on {check.asset} failed in {job}: "
        f"{_clip(check.description) or 'no description'}. {link}",
    }


def asset_url(dagster_url: str, asset: str) -> str:
    """The asset's page in the Dagster UI."""
    path = "/".join(quote(part, safe="") for part in asset.split("/"))
    return f"{dagster_url.rstrip('/')}/assets/{path}"


def stale_asset_payload(*, asset: str, state: str, last_updated: str | None, dagster_url: str) -> dict[str, Any]:
    """The alert for an asset whose freshness policy turned FAIL (no run or check to blame: nothing ran)."""
    link = asset_url(dagster_url, asset)
    return {
        "source": SOURCE,
        "kind": "stale_asset",
        "run_id": None,
        "job": None,
        "asset": asset,
        "check": None,
        "severity": "ERROR" if state == "FAIL" else "WARN",
        "description": f"freshness {state}; last refreshed {last_updated or 'never'}",
        "asset_url": link,
        "text": f"[segmint] {asset} is stale (freshness {state}, last refreshed {last_updated or 'never'}). {link}",
    }


def webhook_host(url: str) -> str:
    """scheme://host[:port] of a webhook URL: the only part of it that may be logged."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or '?'}://{host}{port}"


def post_alert(
    payload: Mapping[str, Any], webhook_url: str, *, timeout: float = POST_TIMEOUT_SECONDS, session: Any = None
) -> None:
    """POST the payload as JSON; raises AlertDeliveryError (host only, no URL, no chained traceback) on failure."""
    host = webhook_host(webhook_url)
    poster = session or requests
    try:
        response = poster.post(webhook_url, json=dict(payload), timeout=timeout)
    except requests.RequestException as error:
        # requests puts the full URL (token included) in its messages: report the kind of error only.
        raise AlertDeliveryError(f"alert webhook at {host} unreachable ({type(error).__name__})") from None
    if response.status_code >= 300:
        raise AlertDeliveryError(f"alert webhook at {host} answered HTTP {response.status_code}")


def send_alert(payload: Mapping[str, Any], config: AlertConfig, log: Callable[[str], None]) -> bool:
    """Post the alert when a webhook is configured (True), else write it as one log line (False)."""
    if config.webhook_url is None:
        log(f"ALERT (set {WEBHOOK_ENV} to post it): {payload['text']}")
        return False
    post_alert(payload, config.webhook_url)
    subject = payload.get("run_id") or payload.get("asset")
    log(f"alert {payload['kind']} ({subject}) posted to {webhook_host(config.webhook_url)}")
    return True
