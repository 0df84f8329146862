"""The ingest DAGs' schedules against the publish DAG's: a file that lands before the scorecards of the 12th
are due is loaded (and so built) before them, and no feed's file waits weeks for its next ingest run."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ROOT

SHANGHAI = ZoneInfo("Asia/Shanghai")
FEEDS = ("district", "techmarket", "bank", "hr")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


def _next_run(dag, after: datetime) -> datetime:
    """When the scheduler next runs ``dag`` (a cron timetable) at or after ``after``."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)  # the scheduler's own object
    timetable = getattr(timetable, "timetable", timetable)  # AssetOrTimeSchedule: its cron part
    info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(earliest=after, latest=None, catchup=True))
    return info.run_after.in_timezone("Asia/Shanghai")


def test_a_file_delivered_on_the_tenth_is_loaded_before_the_scorecards_of_the_twelfth(dagbag):
    """The publish DAG runs on the 12th at 09:00 "after the bank and talent files of the first ten days are in"
    (scorecards/editions.py): a bank or talent file that lands on the 10th after its morning run (or on the
    11th) must be loaded before that, or the month is published as provisional naming a source whose file
    is in the landing area, and the file waits for the 1st of the next month."""
    publish = dagbag.dags["publish_scorecards"]
    late = []
    for month in range(1, 13):
        for landed in (datetime(2027, month, 10, 18, 0, tzinfo=SHANGHAI),
                       datetime(2027, month, 11, 20, 0, tzinfo=SHANGHAI)):
            due = _next_run(publish, landed)
            assert (due.day, due.hour) == (12, 9)
            for feed in FEEDS:
                loaded = _next_run(dagbag.dags[f"ingest_{feed}"], landed)
                if loaded >= due:
                    late.append(f"{feed}: lands {landed:%m-%d %H:%M}, next load {loaded:%m-%d %H:%M}, "
                                f"scorecards {due:%m-%d %H:%M}")
    assert late == [], "\n".join(late)


def test_every_feed_is_looked_at_at_least_daily(dagbag):
    """A file that lands on any day is loaded within a day (a late report completes its provisional edition
    the next morning: scorecards.follow_up_provisional), whatever day of the month it lands."""
    slow = []
    for feed in FEEDS:
        dag = dagbag.dags[f"ingest_{feed}"]
        for day in range(365):
            landed = datetime(2027, 1, 1, 12, 0, tzinfo=SHANGHAI) + timedelta(days=day)
            loaded = _next_run(dag, landed)
            if loaded - landed > timedelta(days=1):
                slow.append(f"{feed}: lands {landed:%Y-%m-%d %H:%M}, next load {loaded:%Y-%m-%d %H:%M}")
    assert slow == [], f"{len(slow)} landing days wait more than a day, e.g.\n" + "\n".join(slow[:8])
