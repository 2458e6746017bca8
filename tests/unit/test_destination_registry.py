"""A destination is one module in activation/destinations/: it registers its type, and the audiences file, the
factory, the credentials resource and the sync assets all find it. Rehearsed with a throwaway module."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

import activation.destinations
from activation.audiences import AudienceConfigError, parse_audiences
from activation.destinations import registry
from activation.destinations.factory import build_destination, required_env_vars
from activation.sync import sync_audience
from tests.servers.harness import FAST_POLICY, new_warehouse
from tests.servers.webhook import FakeWebhook

BUILT_IN = {"meta", "google_data_manager", "google_ads_offline", "klaviyo", "hubspot", "salesforce", "webhook"}

# What a contributor writes: a class (here the signed webhook with its own name, kind and variables) and a builder
# registered under the type name config/audiences.yaml uses.
THROWAWAY_MODULE = """
from activation.destinations.registry import BuildRequest, register
from activation.destinations.webhook import SignedWebhook


class Postbox(SignedWebhook):
    kind = "crm"


@register("postbox", env=("SEGMINT_POSTBOX_URL", "SEGMINT_POSTBOX_SECRET"))
def build(request: BuildRequest) -> Postbox:
    url = request.env.get("SEGMINT_POSTBOX_URL") or "https://example.invalid/postbox"
    return Postbox(url, request.secret("SEGMINT_POSTBOX_SECRET"), request.audience.name, **request.common)
"""


def audiences_with(destination_type: str):
    return parse_audiences(
        {
            "audiences": [
                {"name": "champions", "rule": "recency_score >= 4", "destinations": [{"type": destination_type}]}
            ]
        }
    )


@pytest.fixture
def postbox_module(tmp_path, monkeypatch):
    """activation/destinations/postbox.py, as if a contributor had added the file (removed afterwards)."""
    (tmp_path / "postbox.py").write_text(textwrap.dedent(THROWAWAY_MODULE))
    monkeypatch.setattr(activation.destinations, "__path__", [*activation.destinations.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_TYPES", dict(registry._TYPES))
    importlib.invalidate_caches()
    yield "postbox"
    sys.modules.pop("activation.destinations.postbox", None)


def test_every_built_in_destination_registers_from_its_own_module():
    types = registry.destination_types()
    assert set(types) == BUILT_IN
    assert {name: dtype.module for name, dtype in types.items()} == {
        name: f"activation.destinations.{name}" for name in BUILT_IN
    }
    assert all(
        name.startswith("SEGMINT_") for dtype in types.values() for name in (*dtype.env, dtype.base_url_env) if name
    )


def test_an_unknown_type_is_refused_with_the_registered_ones_listed():
    with pytest.raises(AudienceConfigError, match=r"'type' must be one of \['google_ads_offline', .*'webhook'\]"):
        audiences_with("carrier_pigeon")


def test_a_type_registered_by_two_modules_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("meta", env=("SEGMINT_X",))(lambda request: None)


def test_a_new_destination_module_is_found_by_the_config_the_factory_and_the_credentials(postbox_module, tmp_path):
    [audience] = audiences_with(postbox_module)
    [config] = audience.destinations
    assert required_env_vars("postbox") == ("SEGMINT_POSTBOX_URL", "SEGMINT_POSTBOX_SECRET")

    destination, dry_run = build_destination(config, audience, {}, tmp_path / "dry")
    assert dry_run and destination.http.dry_run and destination.kind == "crm"

    server = FakeWebhook().start()
    try:
        env = {"SEGMINT_POSTBOX_URL": server.url + server.path, "SEGMINT_POSTBOX_SECRET": server.secret}
        destination, dry_run = build_destination(config, audience, env, tmp_path / "dry", policy=FAST_POLICY)
        assert not dry_run
        report = sync_audience(new_warehouse(40), audience, destination, "run-1", "model-1")
        assert report.added > 0 and len(server.members) == report.added
    finally:
        server.stop()

    from orchestration.defs.audiences import build_audience_definitions
    from orchestration.defs.resources import ActivationCredentials
    from orchestration.lib import keys

    assert {"SEGMINT_POSTBOX_URL", "SEGMINT_POSTBOX_SECRET"} <= set(ActivationCredentials().values())
    assets, _ = build_audience_definitions([audience])
    sync_asset = next(a for a in assets if a.key == keys.sync("champions", "postbox"))
    assert "postbox" in sync_asset.specs_by_key[sync_asset.key].kinds
