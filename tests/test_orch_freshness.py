"""`dbt source freshness` is the build DAG's check that a feed stopped delivering ("no file loaded for a week"
is its error). It must run when nothing is delivered, which is when it has something to say: a DAG run that
only an Asset event (a file just loaded) starts never sees the loads stop."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.conftest import ROOT, point_dbt_at

SHANGHAI = ZoneInfo("Asia/Shanghai")
FEEDS = ("district", "techmarket", "bank", "hr")


@pytest.fixture(scope="module")
def build_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags" / "build_warehouse.py"))
    assert not bag.import_errors
    return bag.get_dag("build_warehouse")


def test_the_freshness_check_runs_every_day_even_when_no_feed_delivers(build_dag):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    assert "source_freshness" in build_dag.task_ids
    timetable = coerce_to_core_timetable(build_dag.timetable)
    cron = getattr(timetable, "timetable", None)  # AssetOrTimeSchedule: its time part
    assert cron is not None, (f"build_warehouse runs only on Asset events ({type(timetable).__name__}): when "
                              "every feed stops, no file is loaded, nothing runs the freshness check")
    for day in range(0, 365, 7):
        for hour in (0, 9, 18):
            now = datetime(2027, 1, 1, hour, tzinfo=SHANGHAI) + timedelta(days=day)
            info = cron.next_dagrun_info(last_automated_data_interval=None,
                                         restriction=TimeRestriction(earliest=now, latest=None, catchup=True))
            assert info.run_after - now <= timedelta(days=1), now
    # and any feed's new file still starts a build at once
    condition = build_dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny"
    assert {a.name for a in condition.objects} == {f"corridor_raw_{feed}" for feed in FEEDS}


def test_no_load_for_a_week_fails_the_freshness_check_naming_the_load_ledger(warehouse_copy, monkeypatch):
    """What the daily run then finds on a warehouse whose loads stopped: an error, not a warning."""
    from corridor.orchestration.build import FreshnessFailed, source_freshness

    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    point_dbt_at(monkeypatch, warehouse_copy)
    with psycopg.connect(warehouse_copy) as conn:
        conn.execute("update ops.load_ledger set finished_at = now() - interval '8 days'")
    with pytest.raises(FreshnessFailed) as failed:
        source_freshness()
    print(failed.value)
    assert "ops.load_ledger" in str(failed.value) and "stopped" in str(failed.value)


def test_rejected_files_do_not_count_as_deliveries(warehouse_copy, monkeypatch):
    """A week of files that were all rejected (a feed sending a broken export every day) is a feed that
    stopped delivering: the ledger's rejected rows are no sign of fresh data."""
    from corridor.orchestration.build import FreshnessFailed, source_freshness

    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    point_dbt_at(monkeypatch, warehouse_copy)
    with psycopg.connect(warehouse_copy) as conn:
        conn.execute("update ops.load_ledger set finished_at = now() - interval '8 days'")
        conn.execute("insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at, finished_at,"
                     " message) values ('techmarket', 'tech_contracts_20270101.csv', repeat('0', 64), 10, 'rejected',"
                     " now(), now(), 'tech_contracts_20270101.csv: not a CSV')")
    with pytest.raises(FreshnessFailed) as failed:
        source_freshness()
    assert "ops.load_ledger" in str(failed.value)


def test_the_daily_run_checks_freshness_and_never_builds_a_delivery_half_loaded(warehouse_copy, monkeypatch):
    """New files loaded since the last build: the feeds' Asset run builds them, the daily (scheduled) run
    does not (it would build and publish whatever part of a delivery was loaded by 08:00); force still does."""
    from corridor.orchestration.build import changes_since_last_build

    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    point_dbt_at(monkeypatch, warehouse_copy)
    with psycopg.connect(warehouse_copy) as conn:  # a file loaded since the last build
        conn.execute("delete from ops.dbt_builds where build_id = (select max(build_id) from ops.dbt_builds)")
    project = ROOT / "dbt_project"
    assert changes_since_last_build(project) is True
    assert changes_since_last_build(project, scheduled=True) is False
    assert changes_since_last_build(project, scheduled=True, force=True) is True
