"""The DAGs as real Airflow task runs (dag.test()) on a small generated landing area: the ingest DAGs, and
the whole main job (`corridor run`, what `make run` runs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("setting", [{"CORRIDOR_LANDING_DIR": "nowhere"}, {"CORRIDOR_MAX_FILE_BYTES": "abc"}],
                         ids=["a missing landing folder", "a number that is not one"])
def test_a_missing_landing_folder_fails_the_ingest_at_once(airflow_run_env, monkeypatch, tmp_path, setting):
    """A landing folder that is not there, or another setting that cannot be used, is the configuration's
    fault: the load fails on its first try (the DAG's two retries, 5 and 10 minutes later, would meet it again;
    `corridor ingest` and `make run` waited those 10 minutes). The error names it (tests/test_hostile_files.py)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from corridor.orchestration.runner import run_dags

    for name, value in setting.items():
        monkeypatch.setenv(name, str(tmp_path / value) if name == "CORRIDOR_LANDING_DIR" else value)
    [result] = run_dags(["ingest_hr"], ROOT / "dags")
    assert result.state == "failed" and "load" in result.failed_tasks
    with create_session() as session:
        load = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == "ingest_hr", TaskInstance.run_id == result.run_id,
            TaskInstance.task_id == "load")).one()
    assert (load.state, load.try_number) == ("failed", 1)


def _feeds_new_files(stdout: str) -> dict[str, int]:
    """The ingest summary's "new" column per feed (pipeline.format_ingest_summary: feed, files, new, …)."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(district|techmarket|bank|hr)\s+\d+\s+(\d+)\s", stdout, re.M)}


def test_the_main_job_runs_every_dag_and_a_second_run_loads_builds_and_publishes_nothing(airflow_db, tmp_path,
                                                                                         warehouse_url):
    """`corridor run`, what `make run` runs, in a process and state folder of its own (Airflow's metadata
    migrated there), twice on a small landing area: the first loads, builds (dbt through cosmos), checks and
    writes the scorecards it lists; the second loads no file, does not run dbt and records no new scorecard
    edition. Every DAG runs under dag.test() and ends in success, the publish DAG with its deadline alert."""
    from airflow.dag_processing.dagbag import DagBag

    assert DagBag(str(ROOT / "dags" / "publish_scorecards.py")).get_dag("publish_scorecards").deadline
    landing = tmp_path / "landing"
    generate(landing, seed=11, scale="city", start="2022-11", end="2022-12")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CORRIDOR_"))}
    env.update({"CORRIDOR_STATE_DIR": str(tmp_path / "state"), "CORRIDOR_OUTPUT_DIR": str(tmp_path / "out"),
                "CORRIDOR_LANDING_DIR": str(landing), "CORRIDOR_WAREHOUSE_URL": warehouse_url,
                "CORRIDOR_PII_KEY": TEST_PII_KEY.decode()})
    corridor = str(Path(sys.executable).with_name("corridor"))

    def run() -> str:
        proc = subprocess.run([corridor, "run"], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        for dag in (*INGEST_DAGS, "build_warehouse", "publish_scorecards"):
            assert re.search(rf"^DAG {dag}: success ", proc.stdout, re.M), proc.stdout[-4000:]
        assert "gate: passed" in proc.stdout, proc.stdout[-4000:]
        assert "corridor (ALL), year-end 2022, KPI values against the action plan's targets:" in proc.stdout
        return proc.stdout

    first = run()
    assert set(_feeds_new_files(first)) == {"district", "techmarket", "bank", "hr"}, first
    assert all(n > 0 for n in _feeds_new_files(first).values()), first
    assert "dbt did not run" not in first
    listed = re.findall(r"^  (\S+)\s+(pdf|xlsx|html)\s+\d+ KB  v\d+(?: provisional)?  (\S+)$", first, re.M)
    assert {fmt for area, fmt, _ in listed if area == "ALL"} == {"pdf", "xlsx", "html"}, first
    assert all(Path(path).is_file() and Path(path).stat().st_size > 0 for _, _, path in listed), listed
    with psycopg.connect(warehouse_url) as conn:
        ledger, editions, built = conn.execute(
            "select (select count(*) from ops.load_ledger), (select count(*) from ops.scorecard_editions),"
            " (select count(*) from ops.dbt_builds)").fetchone()
        assert conn.execute("select count(*) from kpi.kpi_values").fetchone()[0] > 0
        assert conn.execute("select count(*) from marts.fct_tech_contracts").fetchone()[0] > 0
    assert ledger > 0 and editions >= len(listed) and built == 1

    second = run()
    assert _feeds_new_files(second) == dict.fromkeys(("district", "techmarket", "bank", "hr"), 0), second
    assert "nothing loaded and dbt_project unchanged since the last successful build: dbt did not run" in second
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute(
            "select (select count(*) from ops.load_ledger), (select count(*) from ops.scorecard_editions),"
            " (select count(*) from ops.dbt_builds)").fetchone() == (ledger, editions, built)


def test_the_ingest_summary_keeps_its_columns_apart_at_national_scale():
    """Counts of a national run (hundreds of millions of rows) stay in their columns, a space between each."""
    from corridor.pipeline import FeedReport, format_ingest_summary

    reports = {"district": FeedReport("district", files_new=301, files_duplicate=4, rows_received=3_505_457,
                                      rows_loaded=3_482_831, rows_quarantined=22_626),
               "techmarket": FeedReport("techmarket", files_new=972, rows_received=565_685_421,
                                        rows_loaded=565_609_546, rows_quarantined=75_875)}
    text = format_ingest_summary(reports, {"district": 305, "techmarket": 972})
    head, _, district, techmarket, _, total = text.splitlines()
    assert head.split() == ["feed", "files", "new", "dup", "rej", "received", "loaded", "quarantined"]
    assert total.split() == ["total", "1277", "1273", "4", "0", "569,190,878", "569,092,377", "98,501"]
    assert techmarket.split() == ["techmarket", "972", "972", "0", "0", "565,685,421", "565,609,546", "75,875"]
    assert len({len(line) for line in (head, district, techmarket, total)}) == 1
