"""The run's one Spark Connect server (orchestration/lib/spark_connect.py): its configuration, start, failure and stop.

A stand-in `spark-submit` (a small Python script that listens where it is told) keeps these tests fast; the real
server runs in tests/integration/test_spark_engine.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from orchestration.defs.resources import SparkEngine
from orchestration.lib import spark_connect
from orchestration.lib.settings import DBT_PROJECT_DIR

LISTENER = textwrap.dedent(
    """\
    #!{python}
    import socket, sys, time
    port = int(next(a.split("=")[1] for a in sys.argv if a.startswith("spark.connect.grpc.binding.port=")))
    print("INFO starting", flush=True)
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen()
    time.sleep(600)
    """
)
FAILING = "#!/bin/sh\necho 'INFO Spark starting'\necho 'ERROR SparkContext: cannot bind the port' >&2\nexit 3\n"


def fake_spark_home(tmp_path: Path, script: str) -> Path:
    home = tmp_path / "spark"
    (home / "bin").mkdir(parents=True)
    submit = home / "bin" / "spark-submit"
    submit.write_text(script.format(python=sys.executable))
    submit.chmod(0o755)
    return home


def _profile_parameters(target: str, warehouse: str) -> dict[str, str]:
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    parameters = profile["segmint"]["outputs"][target]["server_side_parameters"]
    return {
        key: re.sub(
            r"\{\{\s*env_var\('(\w+)'(?:,\s*'([^']*)')?\)\s*\}\}",
            lambda m: {"SEGMINT_SPARK_WAREHOUSE": warehouse}.get(m.group(1), m.group(2) or ""),
            str(value),
        )
        for key, value in parameters.items()
    }


def test_the_by_hand_dbt_target_repeats_the_server_configuration_exactly():
    assert _profile_parameters("spark_local", "/lake/wh") == spark_connect.spark_conf(Path("/lake/wh"), "local[2]")


def test_the_run_dbt_target_sets_only_session_settings_the_server_agrees_with():
    # pyspark refuses spark.master next to SPARK_REMOTE (CANNOT_CONFIGURE_SPARK_CONNECT_MASTER).
    session = _profile_parameters("spark", "/lake/wh")
    assert "spark.master" not in session
    assert session.items() <= spark_connect.spark_conf(Path("/lake/wh"), "local[2]").items()
    assert session["spark.sql.session.timeZone"] == "UTC"


def test_the_server_listens_on_loopback_only_at_the_given_port():
    command = spark_connect.server_command(Path("/spark"), {"spark.master": "local[2]"}, 15123)
    assert command[:3] == ["/spark/bin/spark-submit", "--class", spark_connect.SERVER_CLASS]
    assert "spark.connect.grpc.binding.address=127.0.0.1" in command
    assert "spark.connect.grpc.binding.port=15123" in command
    assert "spark.master=local[2]" in command


def test_a_started_server_gives_its_url_and_stops_with_its_pid_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_HOME", str(fake_spark_home(tmp_path, LISTENER)))
    server = spark_connect.start_server(tmp_path / "lake", "local[2]", timeout_s=30)
    try:
        assert re.fullmatch(r"sc://127\.0\.0\.1:\d+", server.url)
        assert (tmp_path / "lake" / spark_connect.PID_FILE).read_text() == str(server.process.pid)
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert not (tmp_path / "lake" / spark_connect.PID_FILE).exists()


def test_a_server_that_exits_fails_with_its_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_HOME", str(fake_spark_home(tmp_path, FAILING)))
    with pytest.raises(spark_connect.SparkConnectError, match=r"exited \(3\): ERROR SparkContext: cannot bind"):
        spark_connect.start_server(tmp_path / "lake", "local[2]", timeout_s=30)
    assert not (tmp_path / "lake" / spark_connect.PID_FILE).exists()


def test_a_stale_pid_file_of_another_program_kills_nothing(tmp_path):
    # Regression guard: a recycled pid belongs to someone else; only our server's command line is ended.
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    pid_file = tmp_path / spark_connect.PID_FILE
    pid_file.write_text(str(bystander.pid))
    try:
        spark_connect.end_stale_server(pid_file)
        assert bystander.poll() is None
        assert not pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_given_spark_remote_is_used_as_is_and_nothing_starts(monkeypatch):
    monkeypatch.setenv("SPARK_REMOTE", "sc://cluster.example:15002")
    monkeypatch.setattr(spark_connect, "start_server", lambda *a, **k: pytest.fail("started a server"))
    assert SparkEngine().remote() == "sc://cluster.example:15002"


def test_the_resource_starts_one_server_and_its_teardown_stops_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.setenv("SEGMINT_SPARK_WAREHOUSE", str(tmp_path / "lake"))
    monkeypatch.setenv("SPARK_HOME", str(fake_spark_home(tmp_path, LISTENER)))
    engine = SparkEngine()
    url = engine.remote()
    try:
        assert engine.remote() == url  # the second step reuses the server
        assert os.environ["SPARK_REMOTE"] == url  # what dbt, a child process, connects to
    finally:
        engine.teardown_after_execution(None)
    assert "SPARK_REMOTE" not in os.environ
