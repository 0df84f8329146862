"""An ingest run publishes its feed's Asset only when it loaded a new file (real task runs, dag.test())."""

from __future__ import annotations

from corridor.demo import generate
from tests.conftest import ROOT, TEST_PII_KEY


def _asset_events(dag_id: str, run_id: str) -> list[str]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(
            select(AssetModel.name).join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)))


def test_an_ingest_run_that_loads_nothing_new_emits_no_asset_event(airflow_db, warehouse_url, tmp_path, monkeypatch):
    from corridor.orchestration.runner import run_dags

    landing = tmp_path / "landing"
    generate(landing, seed=11, scale="city", start="2022-12", end="2022-12")
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CORRIDOR_LANDING_DIR", str(landing))
    monkeypatch.setenv("CORRIDOR_PII_KEY", TEST_PII_KEY.decode())

    [first] = run_dags(["ingest_techmarket"], ROOT / "dags")
    assert first.state == "success"
    assert first.xcom("load")["files_loaded"] > 0
    assert _asset_events("ingest_techmarket", first.run_id) == ["corridor_raw_techmarket"]

    [again] = run_dags(["ingest_techmarket"], ROOT / "dags")  # the same files: nothing new
    assert again.state == "success"
    assert again.xcom("load")["files_loaded"] == 0
    assert _asset_events("ingest_techmarket", again.run_id) == []

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        states = dict(session.query(TaskInstance.task_id, TaskInstance.state)
                      .filter(TaskInstance.dag_id == "ingest_techmarket", TaskInstance.run_id == again.run_id))
    assert {k: str(getattr(v, "value", v)) for k, v in states.items()} == {
        "load": "success", "announce": "skipped", "check_rejections": "success"}
