"""Each destination's client pointed at its fake server: one place, shared by the sync contract tests
(tests/unit/test_activation_sync_*.py) and the golden requests (tests/unit/test_sync_golden_requests.py).

`client(name, server, audience, **options)`: options are the client's own (max_batch, value_based, dry_run_dir...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activation.destinations.google_ads_offline import GoogleAdsOfflineJobAudience
from activation.destinations.google_data_manager import GoogleDataManagerAudience
from activation.destinations.hubspot import HubSpotList
from activation.destinations.klaviyo import KlaviyoList
from activation.destinations.meta import MetaCustomAudience
from activation.destinations.salesforce import SalesforceContacts
from activation.destinations.webhook import SignedWebhook
from tests.servers.harness import FAST_POLICY

CLIENTS: dict[str, Callable[..., Any]] = {
    "meta": lambda s, audience, **kw: MetaCustomAudience("meta-token", s.audience_id, base_url=s.url, **kw),
    "google_data_manager": lambda s, audience, **kw: GoogleDataManagerAudience(
        "google-token", s.account_id, s.audience_id, base_url=s.url, **kw
    ),
    "google_ads_offline": lambda s, audience, **kw: GoogleAdsOfflineJobAudience(
        s.token, s.developer_token, s.customer_id, s.user_list.rsplit("/", 1)[1], base_url=s.url, **kw
    ),
    "hubspot": lambda s, audience, **kw: HubSpotList("hubspot-token", s.list_id, base_url=s.url, **kw),
    "klaviyo": lambda s, audience, **kw: KlaviyoList(s.api_key, s.list_id, base_url=s.url, **kw),
    "salesforce": lambda s, audience, **kw: SalesforceContacts(s.token, s.url, audience, **kw),
    "webhook": lambda s, audience, **kw: SignedWebhook(s.url + s.path, s.secret, audience, **kw),
}


def client(name: str, server: Any, audience: str, **options: Any) -> Any:
    """The `name` destination's client for `server`, with the tests' fast retry policy unless one is given."""
    return CLIENTS[name](server, audience, **({"policy": FAST_POLICY} | options))


def client_factory(name: str, **fixed: Any) -> Callable[..., Any]:
    """A Spec-style factory (server, audience, **options) with `fixed` options (e.g. max_batch) applied."""
    return lambda server, audience, **options: client(name, server, audience, **(fixed | options))
