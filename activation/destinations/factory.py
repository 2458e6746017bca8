"""Build a destination from its audiences.yaml entry plus credentials the orchestrator resolved (dg.EnvVar).

A destination runs live when every variable it needs has a value, else in dry-run (request files only), so a
fresh checkout syncs nothing but still shows exactly what it would send. This module never reads the
environment itself: the caller passes the values (see ENV_VARS for the names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from activation.audiences import Audience, DestinationConfig
from activation.destinations.base import Destination
from activation.destinations.google_ads_offline import GoogleAdsOfflineJobAudience
from activation.destinations.google_data_manager import GoogleDataManagerAudience
from activation.destinations.hubspot import HubSpotList
from activation.destinations.klaviyo import KlaviyoList
from activation.destinations.meta import MetaCustomAudience
from activation.destinations.salesforce import SalesforceContacts
from activation.destinations.webhook import SignedWebhook
from activation.http import RetryPolicy

# Per destination type: (required variables, optional base-URL variable). Secrets only ever come from here.
ENV_VARS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "meta": (("SEGMINT_META_ACCESS_TOKEN",), "SEGMINT_META_BASE_URL"),
    "google_data_manager": (("SEGMINT_GOOGLE_ACCESS_TOKEN",), "SEGMINT_GOOGLE_DATA_MANAGER_BASE_URL"),
    "google_ads_offline": (("SEGMINT_GOOGLE_ACCESS_TOKEN", "SEGMINT_GOOGLE_ADS_DEVELOPER_TOKEN"),
                           "SEGMINT_GOOGLE_ADS_BASE_URL"),
    "klaviyo": (("SEGMINT_KLAVIYO_API_KEY",), "SEGMINT_KLAVIYO_BASE_URL"),
    "hubspot": (("SEGMINT_HUBSPOT_ACCESS_TOKEN",), "SEGMINT_HUBSPOT_BASE_URL"),
    "salesforce": (("SEGMINT_SALESFORCE_ACCESS_TOKEN", "SEGMINT_SALESFORCE_INSTANCE_URL"), None),
    "webhook": (("SEGMINT_WEBHOOK_URL", "SEGMINT_WEBHOOK_SECRET"), None),
}
DRY_RUN_PLACEHOLDER = "dry-run"


def required_env_vars(destination_type: str) -> tuple[str, ...]:
    """Names of the variables a destination type needs to run live."""
    return ENV_VARS[destination_type][0]


def build_destination(config: DestinationConfig, audience: Audience, env: Mapping[str, str | None],
                      dry_run_dir: str | Path, policy: RetryPolicy | None = None,
                      sleep: Callable[[float], None] | None = None) -> tuple[Destination, bool]:
    """(destination, dry_run): live when every required variable is set, else writing requests to dry_run_dir."""
    required, base_url_var = ENV_VARS[config.type]
    values = {name: env.get(name) for name in required}
    dry_run = not all(values.values())
    secret = {name: (value or DRY_RUN_PLACEHOLDER) for name, value in values.items()}
    settings: dict[str, Any] = dict(config.settings)
    common: dict[str, Any] = {"name": config.name, "policy": policy, "sleep": sleep,
                              "dry_run_dir": Path(dry_run_dir) / audience.name if dry_run else None}
    base_url = env.get(base_url_var) if base_url_var else None
    if base_url:
        common["base_url"] = base_url
    kind = config.type
    if kind == "meta":
        destination: Destination = MetaCustomAudience(
            secret["SEGMINT_META_ACCESS_TOKEN"], str(settings["audience_id"]),
            value_based=bool(settings.get("value_based", audience.value_column is not None)),
            **_pick(settings, "api_version"), **common)
    elif kind == "google_data_manager":
        destination = GoogleDataManagerAudience(
            secret["SEGMINT_GOOGLE_ACCESS_TOKEN"], str(settings["operating_account_id"]), str(settings["audience_id"]),
            **_pick(settings, "login_account_id"), **common)
    elif kind == "google_ads_offline":
        destination = GoogleAdsOfflineJobAudience(
            secret["SEGMINT_GOOGLE_ACCESS_TOKEN"], secret["SEGMINT_GOOGLE_ADS_DEVELOPER_TOKEN"],
            str(settings["customer_id"]), str(settings["user_list_id"]),
            **_pick(settings, "login_customer_id", "api_version"), **common)
    elif kind == "klaviyo":
        destination = KlaviyoList(secret["SEGMINT_KLAVIYO_API_KEY"], str(settings["list_id"]),
                                  **_pick(settings, "revision"), **common)
    elif kind == "hubspot":
        destination = HubSpotList(secret["SEGMINT_HUBSPOT_ACCESS_TOKEN"], str(settings["list_id"]),
                                  **_pick(settings, "api_version"), **common)
    elif kind == "salesforce":
        common.pop("base_url", None)
        instance_url = env.get("SEGMINT_SALESFORCE_INSTANCE_URL") or "https://example.my.salesforce.com"
        destination = SalesforceContacts(
            secret["SEGMINT_SALESFORCE_ACCESS_TOKEN"], instance_url, audience.name,
            **_pick(settings, "api_version", "external_id_field", "membership_field"),
            **({"object_name": settings["object"]} if "object" in settings else {}), **common)
    else:  # webhook
        common.pop("base_url", None)
        url = env.get("SEGMINT_WEBHOOK_URL") or "https://example.invalid/segmint-webhook"
        destination = SignedWebhook(url, secret["SEGMINT_WEBHOOK_SECRET"], audience.name, **common)
    return destination, dry_run


def _pick(settings: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: settings[name] for name in names if settings.get(name) is not None}
