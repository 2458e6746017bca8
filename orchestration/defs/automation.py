"""Declarative automation and freshness expectations.

Who starts what:
- People, the daily schedule (schedules.py) and the landing-file sensor (sensors.py) start runs of the whole
  graph: landing -> staging -> features, with the GX and dbt gates in between.
- The models and everything made from them (segments, CLV, scores, audiences and syncs, report) *follow their
  inputs*: when an input was updated by a run that did not also update the asset (customer_features rebuilt by
  hand after a dbt fix, a model re-evaluated from the UI), the asset is re-materialized, but only once every
  blocking check on its direct inputs has passed (gx_customer_features, the CLV model gate, the audience guards).
  A full refresh does not trigger it twice: `any_deps_updated` ignores updates made in the same run as the asset.
- Staging and features are deliberately not automated: they are dbt views/tables over the raw tables, and a
  view reads raw.orders whether or not its GX suite passed, so a partial cascade could carry a row that a
  blocking check rejected around the gate. Whole runs stop them at the gate instead.
- The condition is `AutomationCondition.eager() & all_deps_blocking_checks_passed()`. It is evaluated by the
  `segmint_automation` sensor in the Dagster daemon, which `make dev` (`dagster dev`) starts; `make run` alone
  never automates anything.

Freshness: each mart people read carries a `FreshnessPolicy` (Dagster 1.11+; the older freshness-check builders
are superseded in 1.13): WARN after MART_WARN_AGE without a refresh, FAIL after MART_MAX_AGE (the daily schedule
plus slack). The daemon's freshness evaluation shows the state in the UI (asset page, Lineage, Catalog), and
the `segmint_stale_mart_alert` sensor (sensors.py) posts an alert when a mart turns FAIL.
"""

from datetime import timedelta

import dagster as dg

from orchestration.lib import groups
from orchestration.lib.keys import (
    CUSTOMER_FEATURES,
    CUSTOMER_SCORES,
    SEGMENT_CARDS_VIEW,
    SEGMENT_MEMBERSHIP_HISTORY_VIEW,
)

AUTOMATED_GROUPS = (
    groups.SEGMENTS,
    groups.CLV,
    groups.SCORES,
    groups.AUDIENCES,
    groups.REPORTING,
    groups.REALTIME,
)
FOLLOW_INPUTS = (dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
    "eager_after_upstream_blocking_checks_pass"
)
AUTOMATION_INTERVAL_SECONDS = 60

FRESH_MARTS = [CUSTOMER_FEATURES, CUSTOMER_SCORES, SEGMENT_CARDS_VIEW, SEGMENT_MEMBERSHIP_HISTORY_VIEW]
MART_WARN_AGE = timedelta(hours=24)
MART_MAX_AGE = timedelta(hours=26)  # daily refresh + 2 h for a slow or queued run
MART_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=MART_MAX_AGE, warn_window=MART_WARN_AGE)


def with_automation_spec(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The same spec with the location's defaults: models and their products follow their inputs
    (FOLLOW_INPUTS), read marts get MART_FRESHNESS. Explicit settings made by the asset's own module win."""
    if spec.group_name in AUTOMATED_GROUPS and spec.automation_condition is None:
        spec = spec.replace_attributes(automation_condition=FOLLOW_INPUTS)
    if spec.key in FRESH_MARTS and spec.freshness_policy is None:
        spec = spec.replace_attributes(freshness_policy=MART_FRESHNESS)
    return spec


automation_sensor = dg.AutomationConditionSensorDefinition(
    "segmint_automation",
    target=dg.AssetSelection.groups(*AUTOMATED_GROUPS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
    run_tags={"segmint/trigger": "automation"},
    description="Retrains models and refreshes scores, audiences and the report once their inputs changed and passed their blocking checks.",
)

sensors = [automation_sensor]
