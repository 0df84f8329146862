"""
### Build the warehouse with dbt (staging → marts → KPI layer)

Scheduled on the four feed Assets: any newly loaded feed triggers a rebuild.
And every day at 08:00 Asia/Shanghai (`0 8 * * *`, after the morning ingest
runs): `source_freshness` must run when nothing is delivered, which is when it
has something to say (a run only a new file starts never sees the loads stop).
The daily run checks freshness only and skips `dbt_build`: builds follow the
feeds' Asset events, i.e. the ingest runs that loaded a delivery (a build of
whatever was loaded at 08:00 would publish a delivery half loaded).

- `changes_since_last_build`: skips `dbt_build` (short circuit) when nothing
  was loaded since the last successful build and the dbt project is the same:
  each successful build records the load ledger's position it started from
  (highest ledger_id, number of files) and the project's digest in
  `ops.dbt_builds`. A run with nothing new costs a query, not a build.
  Trigger with the param `force` (conf `{"force": true}`, or the checkbox in
  the trigger form) to build regardless, e.g. after repairing a table by hand.

- `dbt_build`: one `dbt build` of the whole project through astronomer-cosmos
  (`DbtBuildLocalOperator`, dbt in-process, dbt's own threads): every model,
  seed, data test and unit test. A failed model fails this task, and its error
  names each failed node with dbt's message; the log counts every node's
  status. Runs in the pool `corridor_warehouse` (one slot), which the publish
  DAG's readers share: publication never reads a warehouse dbt is rebuilding.
  Publishes the `corridor_kpi` Asset when the build passed.
- `source_freshness`: `dbt source freshness` of every feed, alongside the
  build. An error-level result (e.g. no file loaded for a week) fails the
  run, naming the feed that stopped; warnings (a feed late) are logged.

**Why one build task, not one task per dbt node.** Under a real executor every
task instance pays 6-12 s of start-up. With cosmos's watcher mode (one
producer `dbt build`, one consumer task per node) that was 86 task instances:
109-197 s under Celery against ~30 s for the build itself. Cosmos 1.15's
consumers are deferrable, but they still start on a worker before deferring
to the triggerer, so the start-ups remain; node groups (a task per layer) pay
a dbt start-up and a task start-up per group, serially. One coarse task costs
one start-up over a plain `dbt build`; the per-node view is dbt's own (task
log, `run_results.json`, `corridor dbt docs`). No serial-runner workaround is
needed any more: the DAG runs the same under `dag.test()` and under Celery.

Connection: `CORRIDOR_WAREHOUSE_URL`, the one setting of every component;
`corridor.orchestration.build` derives dbt's profile variables from it on the
worker. Nothing is parsed or read at import time (no manifest needed).
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from cosmos import ProfileConfig
from cosmos.constants import InvocationMode

from corridor.orchestration import alerts
from corridor.orchestration.assets import FEED_ASSETS, WAREHOUSE_ASSET, WAREHOUSE_POOL
from corridor.orchestration.build import WarehouseBuildOperator

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


@dag(
    dag_id="build_warehouse",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 8 * * *", timezone="Asia/Shanghai"),
        assets=FEED_ASSETS["district"] | FEED_ASSETS["techmarket"] | FEED_ASSETS["bank"] | FEED_ASSETS["hr"]),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["corridor", "dbt", "build"],
    default_args=alerts.default_args(retries=1, retry_delay=pendulum.duration(minutes=2)),
    **alerts.DAG_CALLBACKS,
    params={"force": Param(False, type="boolean", title="Build even if nothing new was loaded",
                           description="Run dbt build although nothing was loaded since the last good build.")},
    doc_md=__doc__,
)
def build_warehouse():
    @task.short_circuit(retries=0)
    def changes_since_last_build(params=None, dag_run=None) -> bool:
        """Skip the build when nothing was loaded (and dbt_project is unchanged) since the last good one, and
        in the daily run (freshness only)."""
        from corridor.orchestration.build import changes_since_last_build as changed

        scheduled = str(getattr(dag_run.run_type, "value", dag_run.run_type)) == "scheduled" if dag_run else False
        return changed(DBT_PROJECT, force=bool((params or {}).get("force")), scheduled=scheduled)

    build = WarehouseBuildOperator(
        task_id="dbt_build",
        project_dir=DBT_PROJECT,
        profile_config=ProfileConfig(
            profile_name="corridor", target_name="warehouse", profiles_yml_filepath=DBT_PROJECT / "profiles.yml"),
        invocation_mode=InvocationMode.DBT_RUNNER,
        install_deps=False,
        # Per-node cosmos Assets would name the database by host, which a Unix
        # socket does not have; this task publishes one Asset of its own instead.
        emit_datasets=False,
        outlets=[WAREHOUSE_ASSET],
        pool=WAREHOUSE_POOL,
    )
    changes_since_last_build() >> build

    @task(retries=0)
    def source_freshness() -> dict:
        """`dbt source freshness`: fail naming the feed that stopped; report the late ones."""
        from airflow.sdk.exceptions import AirflowFailException

        from corridor.orchestration.build import FreshnessFailed
        from corridor.orchestration.build import source_freshness as check

        try:
            return check()
        except FreshnessFailed as exc:
            raise AirflowFailException(str(exc)) from exc

    source_freshness()


build_warehouse()
