"""SEGMINT_ENGINE=spark: one Spark for the whole run, as a Spark Connect server every dbt step talks to.

Why: with dbt-spark's `method: session` each dbt step started its own JVM and Derby metastore (about 20 of the 23
minutes of a Spark demo run, README "Past one machine"). pyspark 4 ships Spark Connect: when `SPARK_REMOTE`
(`sc://host:port`) is set, `SparkSession.builder.getOrCreate()`, which is what dbt-spark's session method calls,
returns a thin gRPC client of a running server instead of starting a JVM. So a run starts one server (the
`spark-connect` jar inside the pyspark wheel, `spark-submit --class ...SparkConnectServer`) on first use, every
dbt step (and any Python step that wants Spark) connects to it, and the run stops it at the end. The Derby
metastore then has one JVM for the whole run, which is what it admits.

On a cluster nothing here runs: set `SPARK_REMOTE` to the cluster's Connect endpoint (`sc://driver:15002`, or
Databricks Connect's `sc://<workspace>:443/;token=...;x-databricks-cluster-id=...`) and the steps use it as is.

No pyspark import here: the server is a `spark-submit` child process, so this module stays importable without the
optional extra.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
SPARK_REMOTE_ENV = "SPARK_REMOTE"  # pyspark's own variable: a Connect URL makes every session a client of it
LOG_FILE = "spark-connect.log"  # in the Spark warehouse folder, beside the metastore it serves
PID_FILE = "spark-connect.pid"
START_TIMEOUT_S = 180.0  # a JVM start plus the metastore on a loaded 2-core machine took up to 40 s
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SparkConnectError(RuntimeError):
    """The Spark Connect server could not be started; the message says why in one line."""


def spark_conf(warehouse_dir: Path, master: str) -> dict[str, str]:
    """The Spark configuration of segmint's local engine (one owner; profiles.yml's `spark` target repeats it for
    `dbt` run by hand without a server, and a unit test keeps the two equal).

    Derby metastore beside the tables; JVM and session time zones UTC so naive timestamps read back unshifted;
    two shuffle partitions for a 2-core local master; timestamps as plain INT64 micros (INT96 is deprecated).
    """
    warehouse = str(warehouse_dir)
    return {
        "spark.master": master,
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": warehouse,
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={warehouse}/metastore_db;create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={warehouse} -Duser.timezone=UTC",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": "ERROR",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark wheel (its bin/ and jars/), without importing it."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkConnectError("SEGMINT_ENGINE=spark needs the optional extra: pip install -e '.[spark]'")
    return Path(os.environ.get("SPARK_HOME") or next(iter(spec.submodule_search_locations)))


def python_worker_env() -> dict[str, str]:
    """The server starts its Python workers (mapInArrow, orchestration/lib/spark_compute.py) with this interpreter
    and this checkout first on their path, so they import the same `ml` code as the step that sent the work."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYSPARK_PYTHON": sys.executable, "PYTHONPATH": path}


def free_port() -> int:
    """A port nobody listens on now (the server binds it a few seconds later; a clash fails the start loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(home: Path, conf: Mapping[str, str], port: int) -> list[str]:
    """`spark-submit` of the Connect server bound to 127.0.0.1:`port` (nothing outside the machine reaches it)."""
    command = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--name", "segmint-spark-connect"]
    settings = {**conf, "spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port)}
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return command


def _die_with_parent() -> None:
    # The JVM holds the Derby lock and the port: if the Dagster process dies without its teardown (kill -9), the
    # kernel ends the server too instead of leaving it to block the next run. spark-class execs java in place,
    # so the signal setting reaches the JVM. (The kernel sends it when the *thread* that started the server ends:
    # Dagster's in-process executor runs every step in the run's main thread.) Linux only; elsewhere the pid file
    # lets the next run clean up.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class ConnectServer:
    """A running Spark Connect server started by this process."""

    process: subprocess.Popen
    url: str
    log: Path
    pid_file: Path

    def stop(self, timeout_s: float = 60.0) -> None:
        """End the server and every process of its group (the JVM flushes the metastore on SIGTERM)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.pid_file.unlink(missing_ok=True)


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    errors = [line for line in lines if "ERROR" in line or "Exception" in line]
    return (errors or lines or ["no output"])[-1].strip()


def end_stale_server(pid_file: Path) -> None:
    """End a server that a previous run on this warehouse left behind (it would hold the Derby metastore lock)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    # Only a process that is still our server: a recycled pid is someone else's.
    if SERVER_CLASS in cmdline:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(60):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.5)
    pid_file.unlink(missing_ok=True)


def start_server(warehouse_dir: Path, master: str, timeout_s: float = START_TIMEOUT_S) -> ConnectServer:
    """Start a local Spark Connect server over `warehouse_dir` and wait until it accepts connections."""
    home = spark_home()
    if not (home / "bin" / "spark-submit").exists():
        raise SparkConnectError(f"no bin/spark-submit in the pyspark installation at {home}")
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    pid_file, log = warehouse_dir / PID_FILE, warehouse_dir / LOG_FILE
    end_stale_server(pid_file)
    port = free_port()
    env = {**os.environ, "SPARK_HOME": str(home), "TZ": "UTC", **python_worker_env()}
    env.pop(SPARK_REMOTE_ENV, None)
    with log.open("w") as out:
        process = subprocess.Popen(
            server_command(home, spark_conf(warehouse_dir, master), port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: stop() ends the launcher and the JVM together
            preexec_fn=_die_with_parent,
        )
    pid_file.write_text(str(process.pid))
    server = ConnectServer(process=process, url=f"sc://127.0.0.1:{port}", log=log, pid_file=pid_file)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pid_file.unlink(missing_ok=True)
            raise SparkConnectError(
                f"Spark Connect server exited ({process.returncode}): {_last_line(log)} (see {log})"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.5)
    server.stop()
    raise SparkConnectError(f"Spark Connect server not listening on port {port} after {timeout_s:.0f} s (see {log})")
