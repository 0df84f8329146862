"""
### Publish the scorecards, after the quality gate

Scheduled on the `corridor_kpi` Asset, which `build_warehouse` publishes when
dbt has rebuilt and tested the marts and the KPI layer.

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
from airflow.sdk import dag, task

from corridor.orchestration.assets import WAREHOUSE_ASSET


@dag(
    dag_id="publish_scorecards",
    schedule=WAREHOUSE_ASSET,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["corridor", "quality", "publish"],
    default_args={"owner": "corridor-data", "retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    doc_md=__doc__,
)
def publish_scorecards():
    @task
    def quality_gate() -> dict:
        """Run the GX checkpoints; fail (no retry) on an error-level failure; return the gate summary."""
        from airflow.sdk.exceptions import AirflowFailException

        from corridor.quality import QualityGateFailed
        from corridor.quality import quality_gate as run_gate

        try:
            return run_gate()
        except QualityGateFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def publish(gate: dict) -> None:
        """Write the scorecards with the gate's attestation."""
        import logging

        from corridor import config, db
        from corridor.scorecards import format_publish_result
        from corridor.scorecards import publish as publish_scorecards_files

        settings = config.load()
        result = publish_scorecards_files(db.warehouse_url(settings), settings.output_dir, gate=gate)
        logging.getLogger(__name__).info("%s", format_publish_result(result, settings.root))

    publish(quality_gate())


publish_scorecards()
