"""The ingest DAGs as real Airflow task runs (dag.test()) on a small generated landing area."""

from __future__ import annotations

import os

import psycopg
import pytest

from corridor.demo import generate
from corridor.pipeline import INGEST_DAGS
from tests.conftest import ROOT, TEST_PII_KEY


@pytest.fixture
def airflow_run_env(airflow_db, warehouse_url, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    generate(landing, seed=11, scale="city", start="2022-11", end="2022-12")
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CORRIDOR_LANDING_DIR", str(landing))
    monkeypatch.setenv("CORRIDOR_PII_KEY", TEST_PII_KEY.decode())
    return warehouse_url, landing


def test_ingest_dags_load_every_feed_and_a_rerun_loads_nothing(airflow_run_env):
    from corridor.orchestration.runner import run_dags

    url, landing = airflow_run_env
    results = run_dags(INGEST_DAGS, ROOT / "dags")
    assert [(r.dag_id, r.state) for r in results] == [(d, "success") for d in INGEST_DAGS]
    with psycopg.connect(url) as conn:
        per_feed = dict(conn.execute(
            "select feed, sum(rows_loaded) from ops.load_ledger where status = 'loaded' group by feed").fetchall())
        assert set(per_feed) == {"district", "techmarket", "bank", "hr"}
        assert all(n > 0 for n in per_feed.values())
        ledger_rows = conn.execute("select count(*) from ops.load_ledger").fetchone()[0]

    again = run_dags(INGEST_DAGS, ROOT / "dags")
    assert all(r.state == "success" for r in again)
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from ops.load_ledger").fetchone()[0] == ledger_rows


def test_a_rejected_file_fails_its_dag_after_the_good_files_load(airflow_run_env):
    from corridor.orchestration.runner import run_dags

    url, landing = airflow_run_env
    (landing / "bank" / "CCB_202212.csv").write_bytes(b"\xff\xfe\x00garbage that is not GB18030 \x80\x80")
    [result] = run_dags(["ingest_bank"], ROOT / "dags")
    assert result.state == "failed"
    assert result.failed_tasks == ["check_rejections"]
    with psycopg.connect(url) as conn:
        rows = conn.execute("select file_name, status, message from ops.load_ledger where feed = 'bank'"
                            " order by ledger_id").fetchall()
    assert ("CCB_202212.csv", "rejected") in {(n, s) for n, s, _ in rows}
    assert sum(1 for _, s, _ in rows if s == "loaded") >= 6
    assert os.environ["CORRIDOR_LANDING_DIR"] == str(landing)


def test_build_dag_runs_dbt_through_cosmos_after_ingest(airflow_run_env, monkeypatch):
    from corridor.db import dbt_env
    from corridor.orchestration.runner import run_dags

    url, _ = airflow_run_env
    for var, value in dbt_env(url).items():
        monkeypatch.setenv(var, value)
    run_dags(INGEST_DAGS, ROOT / "dags")
    [build] = run_dags(["build_warehouse"], ROOT / "dags")
    assert (build.state, build.failed_tasks) == ("success", [])
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from kpi.kpi_values").fetchone()[0] > 0
        assert conn.execute("select count(*) from marts.fct_tech_contracts").fetchone()[0] > 0


def test_publish_dag_runs_to_success_under_dag_test_as_make_run_does(airflow_run_env, monkeypatch, tmp_path):
    """The publish DAG has a deadline alert; a successful dag.test() run of it must end in success."""
    from corridor.db import dbt_env
    from corridor.orchestration.runner import run_dags

    url, _ = airflow_run_env
    for var, value in dbt_env(url).items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("CORRIDOR_OUTPUT_DIR", str(tmp_path / "out"))
    run_dags(INGEST_DAGS, ROOT / "dags")
    run_dags(["build_warehouse"], ROOT / "dags")
    from airflow.dag_processing.dagbag import DagBag

    assert DagBag(str(ROOT / "dags" / "publish_scorecards.py")).get_dag("publish_scorecards").deadline
    [publish] = run_dags(["publish_scorecards"], ROOT / "dags")
    assert (publish.state, publish.failed_tasks) == ("success", [])
    assert publish.xcom("quality_gate")
