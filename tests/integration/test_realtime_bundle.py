"""The serving bundle of a real `make run` (the shared operated deployment) serves real customers without PII."""

from __future__ import annotations

import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from realtime.bundle import CUSTOMERS_FILE, bundles_dir, current_version, load_bundle
from tests.realtime.helpers import Server

pytestmark = pytest.mark.slow


def test_make_run_writes_a_serving_bundle_the_service_serves(operated, tmp_path):
    root = bundles_dir(operated.data_dir)
    version = current_version(root)
    assert version, "make run wrote no realtime/bundles/CURRENT"
    with duckdb.connect(str(operated.warehouse), read_only=True) as conn:
        scores = dict(conn.execute("select customer_id, rfm_segment from marts.customer_scores").fetchall())
        emails = [
            row[0]
            for row in conn.execute("select email from raw.customers where email is not null limit 50").fetchall()
        ]
        prospects = conn.execute("select * from marts.prospect_features order by prospect_id").df()
        prospect_scores = conn.execute("select lookalike_score from ml.prospect_scores order by prospect_id").df()
    bundle = load_bundle(root)
    # the service scores visitors with exactly the model that scored ml.prospect_scores
    rescored = [bundle.lookalike.score(row) for row in prospects.fillna(0).to_dict("records")]
    assert rescored == pytest.approx(list(prospect_scores["lookalike_score"]), abs=1e-9)
    assert len(bundle.customers) == len(scores) and bundle.manifest["known_customers"] == len(scores)
    assert bundle.lookalike.method in {"logistic_regression", "base_rate"}
    table = pq.read_table(root / version / CUSTOMERS_FILE)
    assert "email" not in table.column_names and "phone" not in table.column_names
    raw = (root / version / CUSTOMERS_FILE).read_bytes()
    assert emails and not any(email.encode() in raw for email in emails)

    # serve a copy (the service's log must not land in the shared deployment's data folder)
    data = tmp_path / "data"
    shutil.copytree(root, bundles_dir(data))
    server = Server(data).start()
    try:
        customer_id, rfm_segment = next(iter(scores.items()))
        answer = server.post({"customer_id": customer_id, "event_type": "page_view"}).json()
        assert answer["id"] == customer_id
        profile = server.get(f"/v1/profiles/{customer_id}").json()
        assert profile["known_customer"] is True and profile["rfm_segment"] == rfm_segment
        assert profile["predicted_clv"] is not None and profile["recommended_action"]
        assert server.get("/healthz").json()["bundle_version"] == version
    finally:
        server.stop()
