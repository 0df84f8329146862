"""The Assets the DAGs publish and schedule on (light: imported at DAG parse)."""

from airflow.sdk import Asset

FEED_ASSETS = {
    feed: Asset(name=f"corridor_raw_{feed}", uri=f"corridor://warehouse/raw/{feed}", group="corridor")
    for feed in ("district", "techmarket", "bank", "hr")
}

# Published when dbt has rebuilt marts and the KPI layer (and its tests passed).
WAREHOUSE_ASSET = Asset(name="corridor_kpi", uri="corridor://warehouse/kpi/kpi_values", group="corridor")
