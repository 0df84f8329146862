"""
### Publish the scorecards, after the quality gate

Two triggers (Asia/Shanghai):

- the `corridor_kpi` Asset, which `build_warehouse` publishes when dbt has
  rebuilt and tested the marts and the KPI layer: the checks run at once, so
  a problem shows the day the data arrives; no edition is due then, but a
  scorecard published as provisional (a report missing) whose period the
  build completed gets its final edition (n + 1, mailed:
  `corridor.scorecards.follow_up_provisional`);
- the plan's rhythm, `0 9 12 * *` (the 12th at 09:00, after the banks' and the
  talent system's files of days 1-10, loaded by their daily ingest runs up to the
  12th 07:30): the 月度例会 edition of the previous
  month; in January, April, July and October also the 季度观摩 edition of the
  previous quarter; in January also the 年度比拼 edition of the previous year
  (`corridor.scorecards.editions_due`).

A manual run (`make publish`, `make run`) publishes every edition at its latest
complete period. A backfill run (`airflow backfill create`) publishes what the
scheduled run of its date would have: backfill the 12th of month M+1 to
publish month M's edition if it is missing; an edition already published is
frozen, nothing new is recorded (see README, "Backfills and reruns").

Alerts: a failed task mails the data team (`corridor.orchestration.alerts`);
a **deadline alert** fires when the scheduled run of the 12th has not
succeeded by 12:00 Asia/Shanghai (the month's scorecards are late).

1. `quality_gate` fails in one line on a warehouse dbt has never built, or
   when a dbt command has written models since the last successful whole
   build (a build that failed, was killed or is still running, a partial
   one: the marts and KPIs may be half-rebuilt); else runs the Great Expectations checkpoints `corridor_raw` →
   `corridor_marts` → `corridor_kpi` (file context in `expectations/`,
   validated in PostgreSQL). An **error**-level failure fails the task, and so
   the run, with a message naming each failed expectation, its table and
   sample offending rows: no scorecard is written. **Warnings** are reported in
   the log and do not block. The raw tables' checks cover the files no passing
   gate has validated yet; a run that publishes a quarterly or year-end edition
   validates every loaded file's rows again (`CORRIDOR_GATE_FULL=1`: any run).
   Data docs: `CORRIDOR_STATE_DIR/gx/uncommitted/data_docs/` (`.corridor/gx/` by
   default: the state folder's working copy of `expectations/`).
2. `publish` writes the scorecards (`corridor.scorecards.publish`), with the
   gate's summary (this task's XCom) as their attestation; a month whose
   sources have not all delivered is published as provisional, naming who is
   missing. When a build ran after the gate task (the gate names the build it
   validated), this task runs the gate again first: scorecards show only what
   a gate validated.

Both tasks hold the warehouse's build lock shared while they read
(`corridor.transform.warehouse_read`): no dbt command writes meanwhile (a
table dbt replaces reads as empty in an earlier snapshot), and one that is
running is waited for. The e-mail goes out after the lock is released: a slow
mail server does not keep a build waiting.

The logic lives in `corridor.quality` and `corridor.scorecards`; this file is wiring only.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from corridor.orchestration import alerts
from corridor.orchestration.assets import WAREHOUSE_ASSET, WAREHOUSE_POOL


@dag(
    dag_id="publish_scorecards",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 9 12 * *", timezone="Asia/Shanghai"), assets=WAREHOUSE_ASSET),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["corridor", "quality", "publish"],
    default_args=alerts.default_args(retries=1, retry_delay=pendulum.duration(minutes=2)),
    **alerts.DAG_CALLBACKS,
    deadline=alerts.scorecards_deadline(),
    doc_md=__doc__,
)
def publish_scorecards():
    @task(pool=WAREHOUSE_POOL)  # never while dbt rebuilds the warehouse
    def quality_gate(dag_run=None, data_interval_end=None) -> dict:
        """One line on a never-built warehouse; else the GX checkpoints; fail (no retry) on an error-level failure."""
        from corridor.orchestration.tasks import run_quality_gate

        return run_quality_gate(str(getattr(dag_run.run_type, "value", dag_run.run_type)), data_interval_end)

    @task(pool=WAREHOUSE_POOL)
    def publish(gate: dict, dag_run=None, data_interval_end=None) -> None:
        """Write (and mail) the scorecards the run is due, with the gate's attestation."""
        from corridor.orchestration.tasks import publish_for_run

        publish_for_run(gate, str(getattr(dag_run.run_type, "value", dag_run.run_type)), data_interval_end)

    publish(quality_gate())


publish_scorecards()
