"""The Assets the DAGs publish and schedule on (light: imported at DAG parse)."""

from airflow.sdk import Asset

FEED_ASSETS = {
    feed: Asset(name=f"corridor_raw_{feed}", uri=f"corridor://warehouse/raw/{feed}", group="corridor")
    for feed in ("district", "techmarket", "bank", "hr")
}

# Published when dbt has rebuilt marts and the KPI layer (and its tests passed).
WAREHOUSE_ASSET = Asset(name="corridor_kpi", uri="corridor://warehouse/kpi/kpi_values", group="corridor")

# Build and publication never overlap: the dbt build and the publish DAG's
# tasks that read the warehouse run in this pool of one slot (created by
# `airflow-init` / `corridor stack up`). dbt rebuilds tables in place (drop and
# rename, views recreated), so a reader during a build can see a relation that
# does not exist for a moment; a pool is visible in the UI, needs no database
# session held across tasks, and queues (rather than fails) the waiting side.
WAREHOUSE_POOL = "corridor_warehouse"
WAREHOUSE_POOL_DESCRIPTION = "one slot: the dbt build and the readers of the warehouse never overlap"
