"""publish_scorecards under a real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor;
PostgreSQL metadata): the deadline alert fires on the triggerer and mails the data team; a backfill of a past
month publishes its edition once, and a second backfill records nothing new."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from tests.airflow_stack import AirflowStack
from tests.conftest import ROOT, TEST_PII_KEY
from tests.mailbox import Inbox, body_text, free_port, smtp_connection_json

SHANGHAI = ZoneInfo("Asia/Shanghai")
DATA_TEAM = "data-team@corridor.example"


def _create_database(admin_url: str, template: str | None = None) -> str:
    from corridor.db import libpq_params, with_database

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template:
            conn.execute(sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(libpq_params(template)["dbname"])))
        else:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


@pytest.fixture(scope="module")
def inbox():
    from aiosmtpd.controller import Controller

    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def stack(pg_admin_url, built_warehouse, inbox, tmp_path_factory):
    """The stack on a private copy of the built city warehouse, with only publish_scorecards in its DAG folder."""
    base = tmp_path_factory.mktemp("stack")
    dags = base / "dags"
    dags.mkdir()
    (dags / "publish_scorecards.py").symlink_to(ROOT / "dags" / "publish_scorecards.py")
    alerts_file = base / "alerts.yml"
    alerts_file.write_text(f"data_team: [{DATA_TEAM}]\n", encoding="utf-8")
    warehouse = _create_database(pg_admin_url, template=built_warehouse.url)
    stack = AirflowStack(base / "airflow", _create_database(pg_admin_url), dags, {
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection_json(inbox.port),
        "CORRIDOR_ALERTS_FILE": str(alerts_file),
        "CORRIDOR_WAREHOUSE_URL": warehouse,
        "CORRIDOR_OUTPUT_DIR": str(base / "out"),
        "CORRIDOR_PII_KEY": TEST_PII_KEY.decode(),
    })
    stack.warehouse_url = warehouse
    stack.out_dir = base / "out"
    stack.start()
    try:
        stack.wait_until("publish_scorecards to be parsed", lambda: stack.query(
            "select 1 from serialized_dag where dag_id = 'publish_scorecards'"), timeout=180)
        yield stack
    finally:
        stack.stop()


def _latest_scheduled_time(now: datetime) -> datetime:
    """The latest 12th 09:00 Asia/Shanghai before now: the run the scheduler creates on unpause."""
    local = now.astimezone(SHANGHAI)
    this_month = local.replace(day=12, hour=9, minute=0, second=0, microsecond=0)
    if this_month <= local:
        return this_month
    prev = (local.replace(day=1) - timedelta(days=1)).replace(day=12, hour=9, minute=0, second=0, microsecond=0)
    return prev


def test_the_deadline_alert_fires_on_the_triggerer_when_the_scorecards_are_late(stack, inbox):
    """Unpaused, the DAG's latest scheduled run (a past 12th) is created with its deadline already passed.

    (Between 09:00 and 12:00 on a 12th, Shanghai time, that deadline is still ahead and this test waits
    for it in vain: three hours a month.)
    """
    scheduled = _latest_scheduled_time(datetime.now(UTC))
    stack.airflow("dags", "unpause", "publish_scorecards")

    [late] = stack.wait_until("the LATE e-mail", lambda: inbox.wait_for(
        lambda m: m["Subject"].startswith("[corridor] LATE"), timeout=0), timeout=240)
    text = body_text(late)
    print(f"--- deadline alert ---\nTo: {late['To']}\nSubject: {late['Subject']}\n\n{text}")
    month = (scheduled.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    due = scheduled.replace(hour=12).strftime("%Y-%m-%d %H:%M")
    assert late["To"] == DATA_TEAM
    assert late["Subject"] == f"[corridor] LATE: {month} scorecards not published by the 12th 12:00"
    assert (f"Scorecards late: the {month} monthly scorecards (月度例会) were not published by {due} "
            f"Asia/Shanghai.") in text
    # the scheduler recorded the miss and the triggerer ran the callback
    [(run_type, logical_date, deadline_time, missed, callback_state)] = stack.query(
        "select r.run_type, r.logical_date, d.deadline_time, d.missed, c.state from deadline d"
        " join dag_run r on r.id = d.dagrun_id join callback c on c.id = d.callback_id"
        " where r.dag_id = 'publish_scorecards'")
    assert (run_type, logical_date, missed) == ("scheduled", scheduled, True)
    assert deadline_time == scheduled + timedelta(hours=3)
    stack.wait_until("the callback to be recorded done", lambda: stack.query(
        "select 1 from callback where state = 'success'"), timeout=60)
    print(f"deadline {deadline_time.astimezone(SHANGHAI)} missed; callback {callback_state} -> success")


def _editions(url: str, period: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        if conn.execute("select to_regclass('ops.scorecard_editions')").fetchone()[0] is None:
            return []  # created by the first publication
        return conn.execute(
            "select area_code, edition_no, format, sha256 from ops.scorecard_editions"
            " where edition = 'monthly' and period_start = %s order by area_code, format", (period,)).fetchall()


def _backfill(stack: AirflowStack, *extra: str) -> tuple[str, float]:
    """`airflow backfill create` of June 2022 (its 12th publishes May); wait for it; (run state, seconds)."""
    started = datetime.now(UTC)
    stack.airflow("backfill", "create", "--dag-id", "publish_scorecards", "--from-date", "2022-06-01",
                  "--to-date", "2022-06-30", *extra)
    [(backfill_id,)] = stack.query("select max(id) from backfill where dag_id = 'publish_scorecards'")
    stack.wait_until(f"backfill {backfill_id} to complete", lambda: stack.query(
        "select 1 from backfill where id = %s and completed_at is not null", (backfill_id,)), timeout=600, poll=2)
    [(state, end)] = stack.query(
        "select state, end_date from dag_run where dag_id = 'publish_scorecards' and run_type = 'backfill'")
    assert end > started
    return state, (end - started).total_seconds()


def test_a_backfill_publishes_a_past_months_missing_edition_and_a_second_records_nothing_new(stack, inbox):
    stack.airflow("dags", "unpause", "publish_scorecards")
    assert _editions(stack.warehouse_url, "2022-05-01") == []

    state, seconds = _backfill(stack)
    assert state == "success", stack.log("scheduler")[-3000:]
    first = _editions(stack.warehouse_url, "2022-05-01")
    print(f"first backfill: {state} in {seconds:.0f} s, {len(first)} edition files recorded")
    assert {(area, no) for area, no, _, _ in first} == {(a, 1) for a in ("ALL", "LW", "OH", "YQ", "RA", "ZN", "OJK")}
    assert {fmt for _, _, fmt, _ in first} == {"pdf", "xlsx", "html"}
    may = [m for m in inbox.messages() if "2022年5月月度例会" in m["Subject"]]
    assert len(may) == 7  # each area's scorecard mailed once (config/recipients.yml)

    # the same month again, re-running the completed run: the frozen edition stays, nothing is recorded or re-sent
    state, seconds = _backfill(stack, "--reprocess-behavior", "completed")
    assert state == "success"
    print(f"second backfill: {state} in {seconds:.0f} s, editions unchanged")
    assert _editions(stack.warehouse_url, "2022-05-01") == first
    assert len([m for m in inbox.messages() if "2022年5月月度例会" in m["Subject"]]) == 7
    # a backfill run is late by definition: its deadline passed and its callback ran, quietly
    assert stack.query(
        "select c.state from deadline d join dag_run r on r.id = d.dagrun_id join callback c on c.id = d.callback_id"
        " where r.run_type = 'backfill'") in ([("success",)], [("success",), ("success",)])
    assert not [m for m in inbox.messages() if m["Subject"].startswith("[corridor] LATE: 2022-05")]
