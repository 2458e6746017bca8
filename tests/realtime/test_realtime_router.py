"""Two real service instances (`python -m realtime.cli serve`, each with its own data folder) behind the hash
router (`python -m realtime.router`) on loopback: every visitor's events and reads reach one instance only."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest
import requests

from realtime.log import log_dir, read_events
from realtime.router import instance_for
from tests.realtime.helpers import PROJECT_ROOT, Server, at, build_bundle, free_port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    instances = []
    for name in ("a", "b"):
        data = tmp_path_factory.mktemp(f"instance-{name}") / "data"
        build_bundle(data)
        instances.append(Server(data).start())
    port = free_port()
    router = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime.router",
            "--port",
            str(port),
            "--instances",
            ",".join(server.url for server in instances),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert router.poll() is None and time.monotonic() < deadline, "the router did not start"
        time.sleep(0.1)
    yield url, instances
    router.terminate()
    router.wait(timeout=10)
    for server in instances:
        server.stop()


def test_the_placement_is_stable_balanced_and_moves_few_visitors_when_an_instance_joins():
    two, three = (
        ["http://127.0.0.1:8701", "http://127.0.0.1:8702"],
        ["http://127.0.0.1:8701", "http://127.0.0.1:8702", "http://127.0.0.1:8703"],
    )
    visitors = [f"v{i}" for i in range(6000)]
    placed = [instance_for(v, two) for v in visitors]
    assert placed == [instance_for(v, list(reversed(two))) for v in visitors]  # order of the list is irrelevant
    assert 0.45 < Counter(placed)[two[0]] / len(visitors) < 0.55
    moved = sum(instance_for(v, two) != instance_for(v, three) for v in visitors)
    assert 0.25 < moved / len(visitors) < 0.42  # about 1/3 move, all of them to the new instance
    assert all(instance_for(v, three) == three[2] for v in visitors if instance_for(v, two) != instance_for(v, three))


def test_two_instances_behind_the_router_each_hold_their_own_visitors(cluster):
    url, instances = cluster
    by_url = {server.url: server for server in instances}
    session = requests.Session()
    visitors = [f"v-{i}" for i in range(40)]
    # A mixed batch: the router splits it by instance and answers in request order.
    batch = [
        {
            "anonymous_id": v,
            "event_type": "product_view",
            "product_id": f"s{n}",
            "category": "shoes",
            "occurred_at": at(n),
            "event_id": f"{v}-{n}",
        }
        for n in range(3)
        for v in visitors
    ]
    answer = session.post(url + "/v1/events", json={"events": batch}, timeout=10)
    assert answer.status_code == 200
    assert [r["event_id"] for r in answer.json()["results"]] == [e["event_id"] for e in batch]
    # Session state lives on one instance: the add to cart completes the intent built by the batch above.
    for v in visitors:
        single = session.post(
            url + "/v1/events",
            json={
                "anonymous_id": v,
                "event_type": "add_to_cart",
                "product_id": "s2",
                "category": "shoes",
                "occurred_at": at(5),
            },
            timeout=10,
        ).json()
        assert single["id"] == v and "high_intent:shoes" in single["entered"]
        profile = session.get(f"{url}/v1/profiles/{v}", timeout=10)
        assert profile.status_code == 200 and profile.json()["cart"] == ["s2"]

    owners = {v: instance_for(v, [server.url for server in instances]) for v in visitors}
    assert set(owners.values()) == set(by_url)  # both instances took a share
    for server in instances:
        logged = Counter(event["anonymous_id"] for event in read_events(log_dir(server.data_dir)))
        mine = {v for v, owner in owners.items() if owner == server.url}
        assert set(logged) == mine and all(count == 4 for count in logged.values())
        # The other instance never saw these visitors.
        other = next(s for s in instances if s is not server)
        assert all(other.get(f"/v1/profiles/{v}").status_code == 404 for v in list(mine)[:5])

    health = session.get(url + "/healthz", timeout=10).json()
    assert health["status"] == "ok" and set(health["instances"]) == set(by_url)
    assert session.get(url + "/v1/segments", timeout=10).json()["segments"]


def test_a_bad_event_rejects_the_whole_batch_before_any_instance_sees_it(cluster):
    url, instances = cluster
    before = [sum(1 for _ in read_events(log_dir(server.data_dir))) for server in instances]
    bad = [{"anonymous_id": f"w-{i}", "event_type": "page_view"} for i in range(10)]
    bad[7] = {"anonymous_id": "w-7", "event_type": "page_view", "occurred_at": "yesterday"}
    answer = requests.post(url + "/v1/events", json={"events": bad}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["index"] == 7 and answer.json()["field"] == "occurred_at"
    assert [sum(1 for _ in read_events(log_dir(server.data_dir))) for server in instances] == before
    assert requests.post(url + "/v1/events", data=b"{nope", timeout=10).status_code == 400
