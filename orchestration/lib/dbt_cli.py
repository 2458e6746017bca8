"""The dbt CLI resource, without the fixed costs dagster-dbt pays on every run that segmint has no use for.

dagster-dbt's `DbtCliResource.cli()` does two things before it starts dbt (dagster-dbt 0.29):
- it learns dbt's version by running `dbt --version` in a subprocess, once per resource instance (once per run):
  a whole dbt start (~2 s of CPU) that also asks pypi.org for the latest dbt-core and each adapter (three HTTP
  requests of up to 1 s each; measured 8.7-12 s wall here). A local-first pipeline should not call the internet
  on every run, and the dbt next to this Python is the one the package metadata names;
- it builds a dbt adapter inside the Dagster process (profile, project and every macro loaded: ~0.5 s of CPU per
  dbt step, ~1.5 s for the first) for `fetch_row_counts()` / `fetch_column_metadata()`. segmint uses neither: it
  counts rows with its own short DuckDB connection once dbt has exited (orchestration/defs/dbt_models.py), because
  a second in-process DuckDB connection blocks every later step.

Both are private hooks of dagster-dbt, so tests/orchestration/test_dbt_fixed_costs.py fails if an upgrade renames
them (the cost would silently come back) and checks the version matches the installed dbt.

**dbt in this process** (issue 18, the fixed cost of a dbt step). dagster-dbt starts every dbt command as a new
Python process: interpreter, dbt's and the adapter's imports, the project and profile loaded, the partial-parse
state read (~2.5-3 s of CPU per dbt step before any SQL; a daily run has two). On DuckDB the resource runs the
same command with dbt's documented programmatic entry point, `dbtRunner`, inside the step's process instead: the
imports are paid once per run (dagster-dbt has most of them loaded already), the rest is the same dbt command with
the same arguments, environment (applied to this process for the call, then restored), working directory, target
folder, log file and artifacts. dagster-dbt still turns the events into Dagster events: dbt's events reach it as
the JSON lines its subprocess would have printed (`dbt_common`'s own `msg_to_dict`, the lines at dbt's default
`info` level), through a stand-in for `subprocess.Popen` given to dagster-dbt for the call (`_InProcessDbt`).

The warehouse's single-writer rule holds: dbt opens the file only after the step has closed its own connection
(as before), and the resource closes dbt-duckdb's connection when the command ends, as the subprocess's exit did,
so the next step opens the file as before. An interrupt (a terminated run) is re-raised, not reported as a dbt
failure. Spark (`--target spark`, SEGMINT_ENGINE=spark) and `SEGMINT_DBT_IN_PROCESS=0` keep the subprocess.

**The adapter's behaviour flags, in process** (issue 18). Each dbt command builds its adapter, and dbt_common names
the module that declared each behaviour flag with `inspect.stack()`: the source of every frame on the stack is read
and each frame's module looked up among all loaded modules (~4,600 in a Dagster step, against a few hundred in a dbt
process), for a name that only goes into a behaviour-change warning. Inside a step the stack is Dagster's and
dagster-dbt's: measured 0.33 s of CPU (1.2 s wall under load) per run at any shop size. For the call, the resource
takes the same name from the frames' own module names (`_flag_source`: the first frame outside dbt_common's
behaviour-flag module, as dbt_common does; a unit test pins the two equal).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from importlib.metadata import version as package_version
from typing import Any

import orjson
from dagster_dbt import DbtCliResource
from dagster_dbt.core import dbt_cli_invocation
from packaging import version

IN_PROCESS_ENV = "SEGMINT_DBT_IN_PROCESS"
# dbt's JSON log on stdout shows these levels by default (log level `info`); dagster-dbt reads those lines.
SHOWN_LEVELS = frozenset({"info", "warn", "error"})


def dbt_in_process(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether DuckDB dbt steps run dbt in the step's process (default) or, with SEGMINT_DBT_IN_PROCESS=0, as a
    subprocess the way dagster-dbt does."""
    return (environ.get(IN_PROCESS_ENV) or "1").strip().lower() not in {"0", "false", "no", "off"}


@contextlib.contextmanager
def _process_state(env: Mapping[str, str] | None, cwd: str | os.PathLike | None) -> Iterator[None]:
    """This process's environment and working directory as dagster-dbt would give its dbt subprocess, for a call."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    try:
        if env is not None:
            for name in set(os.environ) - set(env):
                del os.environ[name]
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        for name in set(os.environ) - set(saved_env):
            del os.environ[name]
        os.environ.update(saved_env)


def _close_dbt_duckdb() -> None:
    """Close dbt-duckdb's database connection, which it keeps open for the process's next dbt command: the step's
    own connection and the next step must find the file as a finished dbt process leaves it."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter: nothing of dbt-duckdb's is open
        return
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


class _InProcessDbt:
    """What dagster-dbt's `DbtCliInvocation` uses of `subprocess.Popen` (args, stdout, wait, returncode, poll,
    send_signal), with the dbt command run by `dbtRunner` in this process when it is made."""

    def __init__(self, args: Sequence[str], stdout=None, stderr=None, env=None, cwd=None) -> None:
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_dict

        self.args = list(args)
        lines: list[bytes] = []

        def collect(message) -> None:
            if message.info.level in SHOWN_LEVELS:
                lines.append(orjson.dumps(msg_to_dict(message)))

        # dbt prints nothing itself (DBT_QUIET: errors only); dagster-dbt echoes the lines it reads, as it does a
        # subprocess's.
        with _process_state({**(env if env is not None else os.environ), "DBT_QUIET": "true"}, cwd):
            try:
                # args[0] is the dbt executable dagster-dbt would have started; the rest is the dbt command.
                result = dbtRunner(callbacks=[collect]).invoke(self.args[1:])
            finally:
                _close_dbt_duckdb()
        error = result.exception
        if isinstance(error, KeyboardInterrupt) or type(error).__name__ == "DagsterExecutionInterruptedError":
            raise error
        if error is not None:
            # dbt's CLI prints an unhandled error as its last line and exits 2; dagster-dbt reads error lines.
            message = f"{type(error).__name__}: {error}"
            lines.append(
                orjson.dumps({"info": {"name": "SegmintDbtError", "level": "error", "msg": message}, "data": {}})
            )
        self.returncode = 0 if result.success else (2 if error is not None else 1)
        self.stdout = io.BytesIO(b"".join(line + b"\n" for line in lines))

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def poll(self) -> int:
        return self.returncode

    def send_signal(self, signal: int) -> None:  # the command has finished when dagster-dbt holds this object
        return None


@contextlib.contextmanager
def _dbt_in_this_process() -> Iterator[None]:
    """dagster-dbt's invocation starts dbt with `subprocess.Popen` from its module; for one `cli()` call it gets
    `_InProcessDbt` instead (the rest of its `subprocess` use is the constants). dbt_common's behaviour flags name
    their module with `_flag_source` meanwhile (module docstring)."""
    from dbt_common.behavior_flags import BehaviorFlagRendered

    real = dbt_cli_invocation.subprocess
    shim = types.SimpleNamespace(**{name: getattr(real, name) for name in dir(real) if not name.startswith("__")})
    shim.Popen = _InProcessDbt
    real_source = BehaviorFlagRendered.__dict__["_default_source"]
    dbt_cli_invocation.subprocess = shim
    BehaviorFlagRendered._default_source = staticmethod(_flag_source)
    try:
        yield
    finally:
        dbt_cli_invocation.subprocess = real
        BehaviorFlagRendered._default_source = real_source


FLAG_MODULE = "dbt_common.behavior_flags"


def _flag_source() -> str:
    """dbt_common's `BehaviorFlagRendered._default_source` without `inspect.stack()`: the name of the first module
    on the stack that is not dbt_common's behaviour-flag module (the adapter that declared the flag), read from each
    frame's globals instead of from its source file."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name and name != FLAG_MODULE:
            return name
        frame = frame.f_back
    return "Unknown"


class SegmintDbtCliResource(DbtCliResource):
    """`DbtCliResource` that reads dbt's version from the installed package, builds no in-process adapter and, on
    DuckDB, runs dbt in the step's process."""

    @cached_property
    def _cli_version(self) -> version.Version:
        # The dbt executable is the one installed next to this Python (orchestration/defs/resources.py): its
        # version is the dbt-core package's. No subprocess, no request to pypi.org.
        return version.parse(package_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        # Only fetch_row_counts()/fetch_column_metadata() use the adapter; without one they are unavailable, and
        # segmint never calls them (dagster-dbt checks `adapter is None`).
        return None

    def runs_in_process(self, args: Sequence[str]) -> bool:
        """On the default (DuckDB) target and unless SEGMINT_DBT_IN_PROCESS=0: Spark keeps its subprocess."""
        return dbt_in_process() and self.target is None and "--target" not in args

    def cli(self, args: Sequence[str], **kwargs: Any):  # type: ignore[override]
        if not self.runs_in_process(args):
            return super().cli(args, **kwargs)
        with _dbt_in_this_process():
            return super().cli(args, **kwargs)
