"""The build DAG under dag.test(): one cosmos `dbt build` task, dbt's profile derived from
CORRIDOR_WAREHOUSE_URL alone, a failed model shown as the failed task with dbt's message."""

from __future__ import annotations

import psycopg

from tests.conftest import ROOT

DBT_ENV = ("CORRIDOR_PGHOST", "CORRIDOR_PGPORT", "CORRIDOR_PGUSER", "CORRIDOR_PGPASSWORD", "CORRIDOR_PGDATABASE")


def _build_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags" / "build_warehouse.py"))
    assert not bag.import_errors
    dag = bag.get_dag("build_warehouse")
    for task in dag.tasks:
        task.retries = 0
    return dag


def test_failed_model_fails_the_build_task_with_dbts_message(airflow_db, warehouse_copy, tmp_path, monkeypatch,
                                                              capfd):
    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        conn.execute("drop table raw.hr_talents cascade")
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    for var in DBT_ENV:  # only the URL: the task derives dbt's profile from it
        monkeypatch.delenv(var, raising=False)
    run = _build_dag().test()

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states["dbt_build"] == "failed"
    log = "".join(capfd.readouterr())
    assert "dbt invocation completed with errors" in log
    assert "stg_hr__talents" in log and 'relation "raw.hr_talents" does not exist' in log


def test_build_dag_in_a_fresh_state_folder_writes_nothing_into_the_dbt_project(airflow_db, warehouse_copy,
                                                                               monkeypatch):
    before = sorted(p.relative_to(ROOT) for p in (ROOT / "dbt_project").rglob("*"))
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    for var in DBT_ENV:
        monkeypatch.delenv(var, raising=False)
    run = _build_dag().test()
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states == {"dbt_build": "success", "source_freshness": "success"}
    assert sorted(p.relative_to(ROOT) for p in (ROOT / "dbt_project").rglob("*")) == before
