"""`make run`'s exit status when the CLV activation gate holds the syncs back: tiny real Dagster runs, no warehouse.

The graph mirrors the real one's shape (evaluation -> gate with its blocking check -> syncs; scores beside it), with
the real asset and check names, so the events the CLI classifies are the ones Dagster really emits.
"""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration import cli
from orchestration.lib import keys

REASON = "no candidate passes: spearman 0.05 below the ranking floor 0.2"


def run_graph(
    gate_passes: bool, scores_fail: bool = False, other_check_fails: bool = False, warnings: list[str] | None = None
) -> dg.ExecuteInProcessResult:
    """The graph run in process; `warnings`: run with make run's console logger, which collects the steps'
    warnings into it."""

    @dg.asset(key=keys.CLV_MODEL_EVALUATION)
    def evaluation() -> None: ...

    @dg.asset(key=keys.CLV_ACTIVATION_GATE, deps=[evaluation])
    def gate() -> None: ...

    @dg.asset_check(asset=gate, name=keys.ACTIVATION_GATE_CHECK.name, blocking=True)
    def gate_check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=gate_passes,
            severity=dg.AssetCheckSeverity.ERROR,
            description="model passes the gate" if gate_passes else REASON,
        )

    @dg.asset(key=keys.CUSTOMER_SCORES, deps=[evaluation])
    def scores(context) -> None:  # unannotated: the module postpones annotations, Dagster reads them
        context.log.warning("orders.csv: a note of the landing")
        if scores_fail:
            raise dg.Failure(description="customer_scores broke")

    @dg.asset_check(asset=scores, name="gx_customer_scores", blocking=True)
    def scores_check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=not other_check_fails, severity=dg.AssetCheckSeverity.ERROR, description="bad rows"
        )

    @dg.asset(key=keys.sync("lookalike_seed", "meta"), deps=[gate, scores])
    def sync() -> None: ...

    @dg.asset(key=keys.AUDIENCE_LIFT, deps=[sync])
    def lift() -> None: ...

    defs = dg.Definitions(assets=[evaluation, gate, scores, sync, lift], asset_checks=[gate_check, scores_check])
    job = dg.define_asset_job("j", executor_def=dg.in_process_executor).resolve(asset_graph=defs.resolve_asset_graph())
    run_config = {}
    if warnings is not None:
        job = job.with_logger_defs({"concise": cli.concise_console_logger(warnings)})
        run_config = {"loggers": {"concise": {}}}
    with dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)


def exit_status(result: dg.ExecuteInProcessResult, capsys) -> int:
    capsys.readouterr()  # drop Dagster's own log lines: only what the CLI prints after the run is under test
    return cli.report_outcome("segmint_refresh", result.success, cli.run_outcome(result.all_events), 0.1, result.run_id)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_a_run_held_only_by_the_activation_gate_exits_0_with_one_warning_line(capsys):
    result = run_graph(gate_passes=False)
    assert not result.success  # Dagster records the failed check and the skipped syncs...
    assert "marts/customer_scores" in materialized(result) and "sync/lookalike_seed/meta" not in materialized(result)
    assert exit_status(result, capsys) == 0  # ...and `make run` treats it as the expected outcome
    err = capsys.readouterr().err.splitlines()
    assert err == [f"segmint: WARNING audiences not synced: {REASON}"]


def test_a_passing_gate_is_a_plain_success(capsys):
    result = run_graph(gate_passes=True)
    assert exit_status(result, capsys) == 0
    out = capsys.readouterr()
    assert "succeeded" in out.out and "WARNING" not in out.err


@pytest.mark.parametrize(("scores_fail", "other_check_fails"), [(True, False), (False, True)])
def test_any_other_failure_beside_the_gate_still_exits_1(capsys, scores_fail, other_check_fails):
    result = run_graph(gate_passes=False, scores_fail=scores_fail, other_check_fails=other_check_fails)
    assert exit_status(result, capsys) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "WARNING" not in err
    assert ("customer_scores broke" in err) if scores_fail else ("gx_customer_scores" in err)


def test_another_blocking_check_alone_still_exits_1(capsys):
    result = run_graph(gate_passes=True, other_check_fails=True)
    assert exit_status(result, capsys) == 1
    assert "check gx_customer_scores on marts/customer_scores: bad rows" in capsys.readouterr().err


def test_the_console_line_of_the_gate_step_says_blocked_not_crashed():
    result = run_graph(gate_passes=False)
    [failure] = result.get_step_failure_events()
    assert cli.describe(failure).startswith("blocked ")


def test_the_gate_reason_stays_on_one_line():
    outcome = cli.RunOutcome(
        failed_steps=[("gate_step", "1 blocking asset check failed")],
        failed_checks=[(cli.ACTIVATION_GATE_CHECK, "gate_step", "reason one; reason two")],
    )
    assert outcome.gate_warning() == "reason one; reason two"
    assert cli.RunOutcome([("other_step", "boom")], outcome.failed_checks).gate_warning() is None
    assert cli.RunOutcome([], []).gate_warning() is None


def test_the_summary_keeps_the_steps_warnings_not_dagsters_lines_about_steps_it_skipped(capsys):
    # The gate holds the syncs back: Dagster logs "Dependencies for step ... Not executing." (a warning) for each
    # skipped step; make run's summary already says why, so only the warning a step logged itself is kept.
    warnings: list[str] = []
    result = run_graph(gate_passes=False, warnings=warnings)
    assert warnings == ["marts__customer_scores: orders.csv: a note of the landing"]
    assert exit_status(result, capsys) == 0
