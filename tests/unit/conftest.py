"""Fixtures shared by the unit tests: destinations built without a server (nothing is sent)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_sync_golden_requests import DESTINATIONS


class UnstartedServer:
    """The attributes a destination's client reads from its fake server to be built; no server runs."""

    url = "http://127.0.0.1:9"
    audience_id = account_id = list_id = customer_id = "1234567890"
    token = developer_token = api_key = secret = "t"
    path = "/hook"
    user_list = "customers/1/userLists/2"


@pytest.fixture
def unstarted_server() -> UnstartedServer:
    return UnstartedServer()


@pytest.fixture
def every_destination(unstarted_server: UnstartedServer) -> list[Any]:
    """One client of every destination kind in the golden requests (named after it), plus Meta without
    MATCHABLE_SQL ("meta_without_sql": a destination whose records are counted by building them)."""
    destinations = []
    for name, (_, make_destination, _) in sorted(DESTINATIONS.items()):
        destination = make_destination(unstarted_server)
        destination.name = name
        destinations.append(destination)
    plain = DESTINATIONS["meta"][1](unstarted_server)
    plain.name, plain.MATCHABLE_SQL = "meta_without_sql", None
    destinations.append(plain)
    return destinations
