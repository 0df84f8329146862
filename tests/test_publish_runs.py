"""What a publish run publishes, by its run type (the task logic behind backfills; the real backfill is in
test_scheduler.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from corridor.orchestration.tasks import editions_for_run


def test_a_backfill_run_publishes_what_the_scheduled_run_of_its_date_would_have():
    june_12 = datetime(2022, 6, 12, 1, 0, tzinfo=UTC)  # 09:00 Asia/Shanghai
    assert editions_for_run("backfill", june_12) == [("monthly", date(2022, 5, 1))]
    assert editions_for_run("backfill", june_12) == editions_for_run("scheduled", june_12)
    jan_12 = datetime(2023, 1, 12, 1, 0, tzinfo=UTC)
    assert editions_for_run("backfill", jan_12) == [("monthly", date(2022, 12, 1)), ("quarterly", date(2022, 10, 1)),
                                                    ("year_end", date(2022, 1, 1))]


def test_a_check_run_publishes_nothing_and_a_manual_run_publishes_the_latest_periods():
    assert editions_for_run("asset_triggered", None) is None
    assert editions_for_run("manual", datetime(2022, 6, 12, tzinfo=UTC)) == [(None, None)]


def test_the_gate_validates_every_row_before_a_quarterly_or_year_end_edition_and_new_files_otherwise(monkeypatch):
    from corridor.orchestration.tasks import gate_validates_every_row

    monkeypatch.delenv("CORRIDOR_GATE_FULL", raising=False)
    for month, full in ((1, True), (2, False), (3, False), (4, True), (6, False), (7, True), (10, True), (12, False)):
        the_12th = datetime(2023, month, 12, 1, 0, tzinfo=UTC)  # 09:00 Asia/Shanghai
        assert gate_validates_every_row("scheduled", the_12th) is full, month
        assert gate_validates_every_row("backfill", the_12th) is full, month
    jan_12 = datetime(2023, 1, 12, 1, 0, tzinfo=UTC)
    assert gate_validates_every_row("asset_triggered", jan_12) is False   # after each build: the new files
    assert gate_validates_every_row("manual", jan_12) is False
    monkeypatch.setenv("CORRIDOR_GATE_FULL", "1")
    assert gate_validates_every_row("asset_triggered", None) is True


def test_a_backfill_run_without_a_data_interval_is_refused():
    with pytest.raises(ValueError, match="a backfill run without a data interval cannot name its month"):
        editions_for_run("backfill", None)


def test_a_scheduled_run_for_a_month_not_yet_in_the_warehouse_fails_in_one_line_without_retry(
        warehouse_copy, tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from corridor.orchestration.tasks import publish_for_run

    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    monkeypatch.setenv("CORRIDOR_OUTPUT_DIR", str(tmp_path / "out"))
    gate = {"blocking": False, "outcome": "passed", "suites": 9, "expectations": 120, "failed": 0, "warnings": 0,
            "data_docs": None}
    with pytest.raises(AirflowFailException) as failed:
        publish_for_run(gate, "scheduled", datetime(2026, 11, 12, 1, 0, tzinfo=UTC))  # month 2026-10: no data
    message = str(failed.value)
    assert message.startswith("scheduled run: 2026年10月 (month from 2026-10-01) is not complete in the warehouse")
    assert "--reprocess-behavior failed" in message and "\n" not in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pdf"))


def test_publication_waits_while_writes_no_successful_whole_build_tested_stand(warehouse_copy, tmp_path):
    """A dbt build that failed (a test failed: its downstream models were skipped), was killed or is still
    running, or a partial command, leaves the warehouse possibly half-rebuilt: the gate task and
    `corridor scorecards publish` refuse in one line, naming the command, until a successful whole build
    (transform.unverified_writes)."""
    from corridor import transform
    from corridor.orchestration.tasks import WarehouseNotBuilt, check_warehouse_built

    url = warehouse_copy
    check_warehouse_built(url)  # built by dbt (no such command recorded)
    transform.unverified_writes(url, ["build"])
    with pytest.raises(WarehouseNotBuilt) as refused:
        check_warehouse_built(url)
    message = str(refused.value)
    assert "`dbt build` (started " in message and "no whole dbt build has passed since" in message
    assert "\n" not in message and "the last of" not in message
    transform.unverified_writes(url, ["run", "--select", "kpi"])
    with pytest.raises(WarehouseNotBuilt, match=r"`dbt run --select kpi` .*, the last of 2 such commands\)"):
        check_warehouse_built(url)
    # `corridor scorecards publish` refuses the same, before its checks, and writes nothing
    out = tmp_path / "out"
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url, "CORRIDOR_OUTPUT_DIR": str(out)}
    corridor = str(Path(sys.executable).with_name("corridor"))
    refused_cli = subprocess.run([corridor, "scorecards", "publish", "--no-send"], env=env, capture_output=True,
                                 text=True)
    assert refused_cli.returncode == 1
    assert "not published: " in refused_cli.stderr and "`dbt run --select kpi` " in refused_cli.stderr
    assert not out.exists() or not any(out.rglob("*.pdf"))
    # the build after them passes: recorded, it takes every row up to its own
    whole, _ = transform.unverified_writes(url, ["build"])
    transform.record_build(url, transform.ledger_position(url), "digest", datetime.now(UTC), False, whole)
    check_warehouse_built(url)
