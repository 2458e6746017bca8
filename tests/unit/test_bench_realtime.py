"""bench/realtime.py: the open-loop generator against a loopback server, and the BENCHMARKS.md section it writes."""

from __future__ import annotations

import bench.realtime as bench


def test_the_open_loop_generator_keeps_its_schedule_and_counts_every_request():
    row = bench.generator_self_test(rate=400, duration=1.5, workers=1, seed=1)
    assert row["sent"] == 600 and row["errors"] == 0
    assert 300 < row["achieved"] <= 401
    assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]


def test_the_section_states_the_targets_and_replaces_the_previous_one(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "BENCHMARKS_PATH", tmp_path / "BENCHMARKS.md")
    monkeypatch.setattr(bench, "RESULTS_MD", tmp_path / "realtime.md")
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n\nbatch figures\n")
    row = {
        "rate": 2000,
        "sent": 40000,
        "seconds": 20.0,
        "achieved": 2000.0,
        "p50_ms": 1.2,
        "p95_ms": 3.0,
        "p99_ms": 12.5,
        "max_ms": 40.0,
        "errors": 0,
        "error_kinds": {},
        "generator_lag_p99_ms": 0.4,
        "connections": 8,
        "rss_mib": 900.0,
        "load_average": 3.2,
    }
    meta = {
        "command": "make bench-realtime",
        "when": "2026-11-26 05:00 UTC",
        "duration": 20,
        "workers": 2,
        "sessions": 100_000,
        "customers": 1_000_000,
        "bundle_mib": 20.0,
        "load_s": 4.0,
        "rss_warm_mib": 800.0,
        "load_before": 3.0,
        "machine": "x86_64, 2 cores",
        "self_test": None,
        "fsync": "log fsync policy interval",
    }
    section = bench.render([row], meta)
    assert "| p99 <= 10 ms at 2,000 events/s | 12.5 ms | NO |" in section
    assert "| zero errors at 2,000 events/s | 0 | yes |" in section
    assert "200 ms" in section
    bench.write_report(section)
    bench.write_report(section.replace("12.5", "9.5"))
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert text.startswith("# Benchmarks\n\nbatch figures\n") and text.count("## Real-time segment service") == 1
    assert "| 9.5 | 40.0 |" in text
