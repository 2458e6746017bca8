"""What every run pays before its first step and after its last (issue 18): imports and the process exit.

Each case runs in a fresh interpreter: whether a module was imported can only be seen in a process of its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> subprocess.CompletedProcess:
    # cwd first on sys.path: this checkout's modules, whichever checkout the venv's editable install points to.
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_loading_the_definitions_imports_neither_great_expectations_nor_pyspark():
    done = run_python(
        "import sys, orchestration.definitions\n"
        "print(sorted(m for m in ('great_expectations', 'pyspark', 'altair') if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_great_expectations_validates_without_importing_pyspark_or_altair():
    done = run_python(
        "import sys\n"
        "import pandas as pd\n"
        "from expectations.suites import raw_orders_suite\n"
        "from expectations.validate import validate\n"
        "bad = pd.DataFrame({'order_id': ['o1', None], 'customer_id': ['c1', 'c2'], 'ordered_at': pd.to_datetime("
        "['2026-01-01', '2026-01-02']), 'order_total': [10.0, 5.0], 'fx_rate': [1.0, 1.0]})\n"
        "summary = validate(bad, raw_orders_suite())\n"
        "print(summary.passed, [f.column for f in summary.errors], 'pyspark' in sys.modules, 'altair' in sys.modules)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "False ['order_id'] False False"


def test_the_one_great_expectations_renderer_that_draws_charts_gets_the_real_altair_when_it_draws():
    done = run_python(
        "from expectations.gx import gx\n"
        "from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl\n"
        "chart = kl.alt.Chart\n"
        "import altair\n"
        "print(chart is altair.Chart)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_great_expectations_gets_pyspark_when_something_imported_it_before():
    done = run_python(
        "import sys, pyspark\n"
        "from expectations.gx import gx\n"
        "from great_expectations.compatibility import pyspark as compat\n"
        "print(compat.pyspark is sys.modules['pyspark'])"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_the_cli_exit_keeps_the_status_and_runs_every_exit_callback_after_the_threads():
    done = run_python(
        "import atexit, threading, time\n"
        "from orchestration.cli import exit_without_teardown\n"
        "atexit.register(print, 'exit callback', flush=True)\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done', flush=True))).start()\n"
        "print('main done', end=' ')\n"
        "exit_without_teardown(3)\n"
        "print('never')"
    )
    assert done.returncode == 3
    assert done.stdout.split() == ["main", "done", "thread", "done", "exit", "callback"]
