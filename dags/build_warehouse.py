"""
### Build the warehouse with dbt (staging → marts → KPI layer)

Scheduled on the four feed Assets: any newly loaded feed triggers a rebuild.
Rendered by astronomer-cosmos from the prebuilt `dbt_project/target/manifest.json`
(`LoadMode.DBT_MANIFEST`: dbt is never invoked at parse time; `corridor run`
and CI build the manifest with `dbt parse` first).

Execution: `ExecutionMode.WATCHER`: one `dbt build` of the whole project (one
dbt start-up, dbt's own threads) in the producer task, and one light task per
dbt node reporting that node's outcome, instead of one dbt process per node
(about 1 s each: cosmos issues #840, #1950). See
`corridor.orchestration.watcher` for why the node tasks follow the producer.

Connection: `dbt_project/profiles.yml` reads `CORRIDOR_PGHOST`, `CORRIDOR_PGPORT`,
`CORRIDOR_PGUSER`, `CORRIDOR_PGPASSWORD`, `CORRIDOR_PGDATABASE` from the
worker's environment. Publishes the `corridor_kpi` Asset when the build passed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pendulum
from airflow.sdk import task
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from corridor.orchestration import alerts
from corridor.orchestration.assets import FEED_ASSETS, WAREHOUSE_ASSET
from corridor.orchestration.watcher import consumers_after_producer

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"

with DbtDag(
    dag_id="build_warehouse",
    schedule=FEED_ASSETS["district"] | FEED_ASSETS["techmarket"] | FEED_ASSETS["bank"] | FEED_ASSETS["hr"],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["corridor", "dbt", "build"],
    default_args=alerts.default_args(retries=1, retry_delay=pendulum.duration(minutes=2)),
    doc_md=__doc__,
    project_config=ProjectConfig(
        dbt_project_path=DBT_PROJECT,
        manifest_path=DBT_PROJECT / "target" / "manifest.json",
        project_name="corridor",
    ),
    profile_config=ProfileConfig(
        profile_name="corridor", target_name="warehouse", profiles_yml_filepath=DBT_PROJECT / "profiles.yml"),
    execution_config=ExecutionConfig(
        execution_mode=ExecutionMode.WATCHER, invocation_mode=InvocationMode.SUBPROCESS,
        dbt_executable_path=Path(sys.executable).with_name("dbt")),
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.AFTER_EACH),
    # Per-node cosmos Assets would name the database by host, which a Unix
    # socket does not have; this DAG publishes one Asset of its own instead.
    operator_args={"install_deps": False, "emit_datasets": False},
) as build_warehouse:

    @task(outlets=[WAREHOUSE_ASSET])
    def warehouse_built() -> None:
        """Publish `corridor_kpi`: the marts and KPI layer are rebuilt and tested."""

    leaves = [t for t in build_warehouse.tasks if not t.downstream_task_ids]
    leaves >> warehouse_built()

consumers_after_producer(build_warehouse)
