"""
### Publish the scorecards, after the quality gate

Two triggers (Asia/Shanghai):

- the `corridor_kpi` Asset, which `build_warehouse` publishes when dbt has
  rebuilt and tested the marts and the KPI layer: the checks run at once, so
  a problem shows the day the data arrives; nothing is published then;
- the plan's rhythm, `0 9 12 * *` (the 12th at 09:00, after the banks' and the
  talent system's files of days 1-10): the 月度例会 edition of the previous
  month; in January, April, July and October also the 季度观摩 edition of the
  previous quarter; in January also the 年度比拼 edition of the previous year
  (`corridor.scorecards.editions_due`).

A manual run (`make publish`, `make run`) publishes every edition at its latest
complete period.

1. `quality_gate` runs the Great Expectations checkpoints `corridor_raw` →
   `corridor_marts` → `corridor_kpi` (file context in `expectations/`,
   validated in PostgreSQL). An **error**-level failure fails the task, and so
   the run, with a message naming each failed expectation, its table and
   sample offending rows: no scorecard is written. **Warnings** are reported in
   the log and do not block. Data docs: `expectations/uncommitted/data_docs/`.
2. `publish` writes the scorecards (`corridor.scorecards.publish`), with the
   gate's summary (this task's XCom) as their attestation; a month whose
   sources have not all delivered is published as provisional, naming who is
   missing.

The logic lives in `corridor.quality` and `corridor.scorecards`; this file is wiring only.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from corridor.orchestration.assets import WAREHOUSE_ASSET, WAREHOUSE_POOL


@dag(
    dag_id="publish_scorecards",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 9 12 * *", timezone="Asia/Shanghai"), assets=WAREHOUSE_ASSET),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["corridor", "quality", "publish"],
    default_args={"owner": "corridor-data", "retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    doc_md=__doc__,
)
def publish_scorecards():
    @task(pool=WAREHOUSE_POOL)  # never while dbt rebuilds the warehouse
    def quality_gate() -> dict:
        """Run the GX checkpoints; fail (no retry) on an error-level failure; return the gate summary."""
        from airflow.sdk.exceptions import AirflowFailException

        from corridor.quality import QualityGateFailed
        from corridor.quality import quality_gate as run_gate

        try:
            return run_gate()
        except QualityGateFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(pool=WAREHOUSE_POOL)
    def publish(gate: dict, dag_run=None, data_interval_end=None) -> None:
        """Write (and mail) the scorecards due, with the gate's attestation."""
        import logging

        from corridor import config, db
        from corridor.scorecards import editions_due, format_publish_result
        from corridor.scorecards import publish as publish_scorecards_files

        log = logging.getLogger(__name__)
        run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
        if run_type == "asset_triggered":
            log.info("warehouse rebuilt: checks passed; scorecards go out on the plan's rhythm")
            return
        settings = config.load()
        url = db.warehouse_url(settings)
        due = editions_due(data_interval_end) if run_type == "scheduled" else [(None, None)]
        for edition, period_start in due:
            result = publish_scorecards_files(url, settings.output_dir, gate=gate, edition=edition,
                                              period_start=period_start)
            log.info("%s", format_publish_result(result, settings.root))

    publish(quality_gate())


publish_scorecards()
