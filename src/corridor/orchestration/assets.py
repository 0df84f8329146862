"""The Assets the DAGs publish and schedule on (light: imported at DAG parse)."""

from airflow.sdk import Asset

FEED_ASSETS = {
    feed: Asset(name=f"corridor_raw_{feed}", uri=f"corridor://warehouse/raw/{feed}", group="corridor")
    for feed in ("district", "techmarket", "bank", "hr")
}
