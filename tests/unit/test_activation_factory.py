"""Destinations built from config/audiences.yaml: dry-run without credentials, live with them."""

from pathlib import Path

from activation.audiences import load_audiences
from activation.destinations.factory import build_destination, required_env_vars
from activation.sync import sync_audience
from tests.servers.harness import FAST_POLICY, new_warehouse
from tests.servers.meta import FakeMeta

REPO_AUDIENCES = Path(__file__).resolve().parents[2] / "config" / "audiences.yaml"


def test_every_configured_destination_builds_in_dry_run_without_credentials(tmp_path):
    for audience in load_audiences(REPO_AUDIENCES):
        for config in audience.destinations:
            destination, dry_run = build_destination(config, audience, {}, tmp_path)
            assert dry_run
            assert destination.http.dry_run
            assert required_env_vars(config.type)


def test_a_destination_with_its_token_and_url_set_talks_http(tmp_path):
    audiences = {a.name: a for a in load_audiences(REPO_AUDIENCES)}
    audience = audiences["champions"]
    config = next(c for c in audience.destinations if c.type == "meta")
    server = FakeMeta(audience_id=str(config.settings["audience_id"])).start()
    try:
        env = {"SEGMINT_META_ACCESS_TOKEN": server.token, "SEGMINT_META_BASE_URL": server.url}
        destination, dry_run = build_destination(config, audience, env, tmp_path, policy=FAST_POLICY)
        assert not dry_run
        conn = new_warehouse(40)
        conn.execute("update marts.customer_scores set recency_score = 5")
        report = sync_audience(conn, audience, destination, "run-1", "model-1")
        assert report.added > 0 and len(server.members) == report.added
        assert not (tmp_path / audience.name).exists()
    finally:
        server.stop()
