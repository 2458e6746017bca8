"""Rules file, serving bundle and durable log: formats, validation and failure modes."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.lookalike import design_matrix
from realtime.bundle import (
    CUSTOMERS_FILE,
    KEEP_BUNDLES,
    LookalikeScorer,
    bundles_dir,
    current_version,
    customers_table,
    load_bundle,
    lookalike_json,
    serving_customers,
    write_bundle,
)
from realtime.log import LogStats, LogWriter, read_events, read_transitions
from realtime.rules import DEFAULT_RULES_PATH, RulesError, load_rules, parse_rules, rules_path
from tests.realtime.helpers import build_bundle, customers_frame, lookalike_model


def test_shipped_rules_hold_the_documents_names_and_lists():
    rules = load_rules(DEFAULT_RULES_PATH)
    assert rules.premium_partners == {"luxury-partner"} and rules.affiliate_medium == "affiliate"
    assert rules.motivation_keywords == ("durability", "style")
    assert rules.session_timeout_seconds == 1800 and rules.cart_idle_seconds == 1800
    assert (rules.late_night_start_hour, rules.late_night_end_hour) == (22, 5)
    assert rules.min_product_views == 3 and "video_play" in rules.strong_signals and rules.requires_add_to_cart
    assert {"device:mobile", "device:desktop"} <= {s["name"] for s in rules.segment_catalogue()}


def test_rules_path_override_and_errors(tmp_path):
    assert rules_path({}) == DEFAULT_RULES_PATH
    custom = tmp_path / "rules.yaml"
    custom.write_text(DEFAULT_RULES_PATH.read_text().replace("luxury-partner]", "luxury-partner, maison-x]"))
    assert rules_path({"SEGMINT_REALTIME_RULES": str(custom)}) == custom
    assert "maison-x" in load_rules(custom).premium_partners
    with pytest.raises(RulesError, match="SEGMINT_REALTIME_RULES"):
        rules_path({"SEGMINT_REALTIME_RULES": str(tmp_path / "missing.yaml")})
    with pytest.raises(RulesError, match="session_timeout_minutes"):
        parse_rules("session_timeout_minutes: soon\nsegments: {}\n")
    with pytest.raises(RulesError, match="segments.vip_lounge"):
        parse_rules("segments: {vip_lounge: {}}\n")
    with pytest.raises(RulesError, match="keywords"):
        parse_rules("segments: {motivation: {keywords: durability}}\n")


def test_bundle_round_trip_without_pii(tmp_path):
    manifest = build_bundle(tmp_path)
    root = bundles_dir(tmp_path)
    assert current_version(root) == manifest["version"]
    schema = pq.read_schema(root / manifest["version"] / CUSTOMERS_FILE)
    assert schema.names == [
        "customer_id",
        "rfm_segment",
        "behavioral_segment",
        "recommended_action",
        "predicted_clv",
        "purchase_propensity",
    ]
    raw = b"".join(path.read_bytes() for path in (root / manifest["version"]).iterdir())
    for secret in (b"vip@example.com", b"+332", b"Bob"):
        assert secret not in raw
    bundle = load_bundle(root)
    assert len(bundle.customers) == 3 and manifest["known_customers"] == 3
    assert bundle.customers.get("C-0003") == {
        "rfm_segment": None,
        "behavioral_segment": "Researchers",
        "recommended_action": None,
        "predicted_clv": None,
        "purchase_propensity": 0.3,
    }
    assert manifest["bytes"] == sum(f["bytes"] for f in manifest["files"].values())


def test_lookalike_json_scores_like_the_fitted_pipeline():
    model = lookalike_model()
    scorer = LookalikeScorer.from_json(json.loads(json.dumps(lookalike_json(model))))
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({column: rng.uniform(0, 5, 20) for column in model.feature_columns})
    expected = model.estimator.predict_proba(design_matrix(frame, model.feature_columns))[:, 1]
    got = [scorer.score(row) for row in frame.to_dict("records")]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_serving_customers_takes_the_playbook_strategy_of_the_rfm_segment():
    scores = customers_frame().drop(columns=["recommended_action"])
    playbook = {"default": {"strategy": "Review"}, "segments": {"Champions": {"strategy": "Reward"}}}
    frame = serving_customers(scores, playbook)
    assert list(frame["recommended_action"]) == ["Review", "Reward", "Review"]
    assert "email" not in frame.columns


def test_serving_customers_gives_the_default_to_missing_and_unknown_segments_and_none_to_an_empty_strategy():
    playbook = {"segments": {"Champions": {"strategy": "reward"}, "Lost": {"channel": "email"}},
                "default": {"strategy": "nurture"}}  # fmt: skip
    scores = pd.DataFrame(
        {"customer_id": ["a", "b", "c", "d", "e"], "rfm_segment": ["Champions", None, "New", "Lost", "Champions"]}
    )
    frame = serving_customers(scores, playbook)
    # "Lost" has a playbook entry without a strategy: its customers get no action (missing), as the rule reads it.
    actions = frame["recommended_action"]
    assert actions.isna().tolist() == [False, False, False, True, False]
    assert actions.dropna().tolist() == ["reward", "nurture", "nurture", "reward"]


def test_current_moves_only_to_complete_bundles_and_old_ones_are_pruned(tmp_path):
    versions = []
    for second in range(KEEP_BUNDLES + 2):
        frame = customers_frame()
        frame["predicted_clv"] += second
        versions.append(
            build_bundle(tmp_path, customers=frame, now=pd.Timestamp(f"2026-11-26T10:00:0{second}Z").to_pydatetime())[
                "version"
            ]
        )
    root = bundles_dir(tmp_path)
    assert current_version(root) == versions[-1]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == versions[-KEEP_BUNDLES:]
    with pytest.raises(ValueError, match="duplicate"):
        write_bundle(
            root, pd.concat([customers_frame()] * 2), lookalike_json(lookalike_model()), DEFAULT_RULES_PATH.read_text()
        )
    with pytest.raises(RulesError):
        write_bundle(root, customers_frame(), lookalike_json(lookalike_model()), "segments: nope\n")
    assert current_version(root) == versions[-1], "a failed write leaves CURRENT alone"
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]


def test_log_writer_and_reader_with_a_torn_last_line(tmp_path):
    writer = LogWriter(tmp_path, "always")
    writer.append_sync([{"event_id": "e1"}, {"event_id": "e2"}], [{"id": "v", "segment": "general_interest"}])
    writer.close()
    with open(writer.events_path, "ab") as handle:  # what kill -9 in the middle of a write leaves
        handle.write(b'{"event_id": "e3", "anon')
    stats = LogStats()
    assert [e["event_id"] for e in read_events(tmp_path, stats)] == ["e1", "e2"]
    assert stats.torn_lines == 1 and stats.lines == 2 and stats.files == 1
    assert list(read_transitions(tmp_path)) == [{"id": "v", "segment": "general_interest"}]
    assert writer.events_path.name.startswith("events-") and writer.events_path.name.endswith(f"-{os.getpid()}.jsonl")
    assert writer.transitions_path.name == writer.events_path.name.replace("events-", "transitions-")


def test_policy_interval_answers_after_the_write_and_fsyncs_soon_after(tmp_path, monkeypatch):
    import realtime.log

    synced: list[int] = []
    real_fsync = realtime.log.os.fsync
    monkeypatch.setattr(realtime.log.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    writer = LogWriter(tmp_path, "interval")
    writer.append_sync([{"event_id": "e1"}], [])
    assert [e["event_id"] for e in read_events(tmp_path)] == ["e1"], "in the file (kernel) before the answer"
    deadline = time.monotonic() + 5
    while len(synced) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(synced) == 2, "both files fsynced within the interval"
    writer.close()


def test_customers_file_of_arrow_strings_is_the_one_of_python_strings():
    # Issue 18: DuckDB's Arrow-backed text columns go to the file through Arrow, not a Python object per row; the
    # table (values, nulls, dictionaries, order) must be the one the object path gives, sorted or not.
    objects = customers_frame().astype({"customer_id": object, "rfm_segment": object, "behavioral_segment": object})
    arrow = objects.astype({"customer_id": "str", "rfm_segment": "str", "behavioral_segment": "str"})
    assert isinstance(arrow["rfm_segment"].dtype, pd.StringDtype) and arrow["rfm_segment"].dtype.storage == "pyarrow"
    for frame_order in (slice(None), slice(None, None, -1)):
        expected = customers_table(objects.iloc[frame_order])
        got = customers_table(arrow.iloc[frame_order])
        assert got.equals(expected) and got.schema.equals(expected.schema)
        assert got.column("rfm_segment").null_count == 1
        assert got.column("customer_id").to_pylist() == sorted(objects["customer_id"])
