"""What a publish run publishes, by its run type (the task logic behind backfills; the real backfill is in
test_scheduler.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from corridor.orchestration.tasks import editions_for_run
from tests.conftest import PASSED, awaits_advisory_lock, passed


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
    gate = passed(warehouse_copy)
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


def _a_dbt_table_swap(url: str, relation: str) -> None:
    """What dbt's table materialisation commits: the new table built beside the old, renamed into place, the old
    dropped (dbt-postgres' `create table … __dbt_tmp as …`, two renames, `drop … __dbt_backup`)."""
    import psycopg

    schema, name = relation.split(".")
    with psycopg.connect(url) as conn:
        conn.execute(f"create table {schema}.{name}__dbt_tmp as select * from {relation}")
        conn.execute(f"alter table {relation} rename to {name}__dbt_backup")
        conn.execute(f"alter table {schema}.{name}__dbt_tmp rename to {name}")
        conn.execute(f"drop table {schema}.{name}__dbt_backup")


def test_a_build_cannot_replace_tables_under_a_publication_reading_them(warehouse_copy, tmp_path, monkeypatch):
    """A publication reads in one snapshot, but a table that a build replaces after the snapshot was taken
    (dbt's table materialisation: a new table renamed into place) reads as empty in that snapshot: its
    scorecards went out without their KPIs. A dbt command that writes (here: the swap dbt commits, under
    the build lock as `corridor dbt build` and the build DAG hold it) now waits for the publication, and a
    publication waits for a running build."""
    import threading
    import time

    from corridor import transform
    from corridor.scorecards import data, publish
    from corridor.scorecards.data import load_scorecards

    url = warehouse_copy
    gate = passed(url)
    period = date(2022, 12, 1)
    expected = load_scorecards(url, "monthly", period, ["ALL"], gate)["ALL"].kpis
    assert expected and all(k.actual is not None for k in expected)

    reading, swapped = threading.Event(), threading.Event()
    read_kpis = data._kpis

    def kpis_read_once_a_build_swapped_or_waits(*args, **kwargs):  # the snapshot is taken: the areas were read
        reading.set()
        deadline = time.monotonic() + 60
        while not swapped.is_set() and not awaits_advisory_lock(url) and time.monotonic() < deadline:
            time.sleep(0.05)
        return read_kpis(*args, **kwargs)

    monkeypatch.setattr(data, "_kpis", kpis_read_once_a_build_swapped_or_waits)
    order = []

    def build() -> None:
        reading.wait(60)
        with transform.build_lock(url, ["build"], log=order.append):
            _a_dbt_table_swap(url, "kpi.kpi_values")
            order.append("swapped")
        swapped.set()

    builder = threading.Thread(target=build)
    builder.start()
    try:
        result = publish(url, tmp_path / "out", gate=gate, edition="monthly", period_start=period, areas=["ALL"],
                         send=False, workers=0)
    finally:
        builder.join(60)
    assert [(k.code, k.actual, k.status) for k in result.scorecards[0].scorecard.kpis] == [
        (k.code, k.actual, k.status) for k in expected]
    assert order[0].startswith("a reader is reading this warehouse (backend "), order  # named, with its pid
    assert "corridor publication (pid " in order[0] and order[0].endswith("this dbt command waits for it to finish")


def _await_reader(url: str, application: str, done) -> None:
    """Until a backend of ``application`` waits for the build lock (fails when ``done`` first: it never waited)."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if awaits_advisory_lock(url, application):
            return
        assert not done(), f"{application} finished without waiting for the dbt command writing the warehouse"
        time.sleep(0.05)
    raise AssertionError(f"{application} did not come to wait for the build lock in 120 s")


def test_publication_shows_what_a_gate_validated_of_the_build_it_reads(warehouse_copy, tmp_path, monkeypatch):
    """The gate validates one build's marts and KPIs; a build that ran after it (its own dbt tests passed, no
    gate has read what it wrote) must not be published on that gate. publish() refuses such a gate (and one
    that does not say which build it validated); the publish DAG's task waits for a running build, then
    runs the gate again itself and publishes what that gate validated; the gate waits for a running build."""
    import threading

    from corridor import transform
    from corridor.orchestration.tasks import publish_for_run
    from corridor.quality import quality_gate
    from corridor.scorecards import GateBlocked, publish, registry

    url = warehouse_copy
    out = tmp_path / "out"

    def a_later_build() -> None:  # what a successful `corridor dbt build` records, its own write taken back
        write_id, _ = transform.unverified_writes(url, ["build"])
        transform.record_build(url, transform.ledger_position(url), "digest", datetime.now(UTC), False, write_id)

    a_later_build()
    built = transform.last_build_id(url)  # the build a gate validated
    gate = {**PASSED, "build_id": built}
    a_later_build()
    december = {"edition": "monthly", "period_start": date(2022, 12, 1), "areas": ["ALL"], "send": False,
                "workers": 0}
    with pytest.raises(GateBlocked) as refused:
        publish(url, out, gate=gate, **december)
    assert str(refused.value) == (
        f"the warehouse was rebuilt after the quality gate validated it (the gate validated dbt build {built}, "
        f"the warehouse now holds dbt build {built + 1} of ops.dbt_builds): publication needs a gate of what it "
        "publishes; run the quality gate again")
    with pytest.raises(GateBlocked, match=r"^the quality gate's result does not say which dbt build it validated"):
        publish(url, out, gate={k: v for k, v in gate.items() if k != "build_id"}, **december)
    assert not out.exists() or not any(out.rglob("*.pdf"))

    # the publish DAG's scheduled run of 2023-01-12 … 2022-12-12: the monthly edition of 2022-11
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", url)
    monkeypatch.setenv("CORRIDOR_OUTPUT_DIR", str(out))
    results: list = []
    with transform.build_lock(url, ["build"]):  # a build is running when the publish task starts
        task = threading.Thread(target=lambda: results.append(
            publish_for_run(gate, "scheduled", datetime(2022, 12, 12, 1, 0, tzinfo=UTC))))
        task.start()
        _await_reader(url, "corridor publication", lambda: not task.is_alive())
        a_later_build()  # it succeeds
    task.join(300)
    [[result]] = results
    assert [s.status for s in result.scorecards] == ["published"] * 7
    with psycopg.connect(url) as conn:
        attested = {registry.latest_edition(conn, "monthly", date(2022, 11, 1), s.area_code).attestation["gate"]
                    ["build_id"] for s in result.scorecards}
    assert attested == {built + 2}  # the gate the task ran again validated the build that ran meanwhile

    # the gate itself waits for a running build, and says which build it validated
    reports: list = []
    with transform.build_lock(url, ["build"]):
        gate_run = threading.Thread(target=lambda: reports.append(quality_gate(url)))
        gate_run.start()
        _await_reader(url, "corridor quality gate", lambda: not gate_run.is_alive())
        a_later_build()
    gate_run.join(300)
    assert reports and reports[0]["build_id"] == built + 3


def test_corridor_scorecards_publish_waits_for_a_running_build_and_says_so(warehouse_copy, tmp_path):
    """`corridor scorecards publish` runs the gate and publishes under one read lock: it waits for a dbt command
    that is writing the warehouse, saying for whom, then validates and publishes what that command left."""
    from corridor import transform

    url = warehouse_copy
    out = tmp_path / "out"
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url, "CORRIDOR_OUTPUT_DIR": str(out)}
    corridor = str(Path(sys.executable).with_name("corridor"))
    with transform.build_lock(url, ["build"]):
        cli = subprocess.Popen([corridor, "scorecards", "publish", "--edition", "monthly", "--period", "2022-12-01",
                                "--area", "ALL", "--no-send"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        _await_reader(url, "corridor publication", lambda: cli.poll() is not None)
        assert not out.exists() or not any(out.rglob("*.pdf"))
    stdout, stderr = cli.communicate(timeout=300)
    assert cli.returncode == 0, stderr
    assert "a dbt command is writing this warehouse (backend " in stderr
    assert "corridor dbt build (pid " in stderr and "the publication waits for it to finish" in stderr
    assert len(list(out.rglob("*.pdf"))) == 1 and "published" in stdout


# -- the e-mail after the read lock ----------------------------------------------------------------------------

class _HeldInbox:
    """aiosmtpd handler: holds each message's DATA until ``release`` (a slow mail server), and refuses the
    recipients in ``refused`` (550) until ``refused`` is emptied."""

    def __init__(self) -> None:
        import threading

        from tests.mailbox import Inbox

        self.inbox, self.sending, self.release = Inbox(), threading.Event(), threading.Event()
        self.refused: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's hook)
        if address in self.refused:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        import asyncio
        import time

        self.sending.set()
        deadline = time.monotonic() + 120
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return await self.inbox.handle_DATA(server, session, envelope)


@pytest.fixture
def held_smtp(monkeypatch, tmp_path):
    """A real SMTP server (aiosmtpd) that holds every message until the test releases it; the Airflow
    connection's timeout is long enough for the hold. Recipients: ALL and LW."""
    import json

    from aiosmtpd.controller import Controller

    from tests.mailbox import free_port, smtp_connection_json

    handler, port = _HeldInbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    connection = json.loads(smtp_connection_json(port, "scorecards@corridor.example"))
    connection["extra"]["timeout"] = 120
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
    monkeypatch.delenv("CORRIDOR_SMTP_CONN_ID", raising=False)
    recipients = tmp_path / "recipients.yml"
    recipients.write_text("sender: 走廊数据平台 <platform@corridor.example>\n"
                          "recipients:\n  ALL: [office@corridor.example]\n  LW: [longwan@corridor.example]\n",
                          encoding="utf-8")
    monkeypatch.setenv("CORRIDOR_RECIPIENTS_FILE", str(recipients))
    try:
        yield handler
    finally:
        handler.release.set()
        controller.stop()


def _a_build_while_the_mail_is_held(url: str, handler: _HeldInbox, publishing) -> list[str]:
    """Once the mail server holds a message: a dbt command that writes takes the build lock, or times out (20 s)
    waiting for it while the message is still held. Returns what happened, in order."""
    import threading
    import time

    from corridor import transform

    events: list[str] = []
    deadline = time.monotonic() + 300
    while not handler.sending.wait(0.1):
        assert publishing(), "the publication ended before it sent an e-mail"
        assert time.monotonic() < deadline, "no e-mail was sent in 300 s"
    built = threading.Event()

    def build() -> None:
        with transform.build_lock(url, ["build"], log=events.append):
            events.append("built" + (" while the e-mail was held" if not handler.release.is_set() else ""))
            built.set()

    builder = threading.Thread(target=build)
    builder.start()
    if not built.wait(20):
        events.append("the build still waited after 20 s")
    handler.release.set()
    builder.join(120)
    return events


def test_a_slow_mail_server_does_not_keep_a_build_waiting(warehouse_copy, tmp_path, monkeypatch, held_smtp):
    """The publish DAG's task held the warehouse's read lock until its last e-mail was sent: a slow or
    unreachable mail server (the connection's timeout, retries) kept every build of the warehouse waiting. The
    e-mail now goes out once the scorecards are read, rendered and recorded, and the lock released."""
    import threading

    from corridor.orchestration.tasks import publish_for_run
    from corridor.scorecards import registry

    url = warehouse_copy
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", url)
    monkeypatch.setenv("CORRIDOR_OUTPUT_DIR", str(tmp_path / "out"))
    gate = passed(url)
    results, errors = [], []

    def task() -> None:
        try:
            results.append(publish_for_run(gate, "scheduled", datetime(2022, 12, 12, 1, 0, tzinfo=UTC)))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            errors.append(exc)

    publishing = threading.Thread(target=task)
    publishing.start()
    events = _a_build_while_the_mail_is_held(url, held_smtp, publishing.is_alive)
    publishing.join(300)
    assert not errors, errors
    assert events == ["built while the e-mail was held"], events
    [[result]] = results
    assert {s.area_code: s.emailed_to for s in result.scorecards if s.emailed_to} == {
        "ALL": ["office@corridor.example"], "LW": ["longwan@corridor.example"]}
    assert sorted(m["To"] for m in held_smtp.inbox.messages()) == ["longwan@corridor.example",
                                                                   "office@corridor.example"]
    with psycopg.connect(url) as conn:
        assert registry.delivered_to(conn, "monthly", date(2022, 11, 1), "LW", 1) == {"longwan@corridor.example"}


def test_corridor_scorecards_publish_sends_after_its_read_lock_and_says_what_was_not_sent(
        warehouse_copy, tmp_path, held_smtp):
    """`corridor scorecards publish` runs the gate and publishes under one read lock; its e-mail goes out after
    it (a build does not wait for the mail server). A refused recipient: the scorecards stay published, the
    command fails naming the area, and running it again sends what is left."""
    url = warehouse_copy
    out = tmp_path / "out"
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url, "CORRIDOR_OUTPUT_DIR": str(out)}
    command = [str(Path(sys.executable).with_name("corridor")), "scorecards", "publish", "--edition", "monthly",
               "--period", "2022-12-01", "--area", "ALL", "--area", "LW"]
    held_smtp.refused.add("longwan@corridor.example")
    cli = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = _a_build_while_the_mail_is_held(url, held_smtp, lambda: cli.poll() is None)
    stdout, stderr = cli.communicate(timeout=300)
    assert events == ["built while the e-mail was held"], (events, stderr)
    assert cli.returncode == 1, (stdout, stderr)
    assert ("scorecards published but not all sent: LW: longwan@corridor.example refused by the mail server "
            "(550 5.1.1 <longwan@corridor.example>: mailbox unavailable)") in stderr, stderr
    assert "`corridor scorecards publish` again sends what is left" in stderr
    assert "e-mailed to office@corridor.example" in stdout and len(list(out.rglob("*.pdf"))) == 2, stdout
    assert [m["To"] for m in held_smtp.inbox.messages()] == ["office@corridor.example"]

    # the recipient takes mail again: the command finds the editions unchanged and sends the one not sent
    held_smtp.refused.clear()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(m["To"] for m in held_smtp.inbox.messages()) == ["longwan@corridor.example",
                                                                   "office@corridor.example"]


def test_a_refused_address_of_an_area_is_not_recorded_as_delivered_and_a_rerun_sends_it_alone(
        warehouse_copy, tmp_path, held_smtp):
    """An area with two addresses, one refused (550): smtplib's sendmail reports a partly refused message in its
    return value and does not raise, and SmtpHook.send_email_smtp dropped it, so both addresses were recorded as
    delivered and nothing failed. Now only the accepted address is recorded, the refused one fails the delivery
    naming area, address and the server's reply, and a rerun sends the edition to it alone."""
    from corridor.scorecards import deliver, publish, registry

    url = warehouse_copy
    held_smtp.release.set()
    held_smtp.refused.add("lw2@corridor.example")
    Path(os.environ["CORRIDOR_RECIPIENTS_FILE"]).write_text(
        "sender: platform@corridor.example\nrecipients:\n  LW: [longwan@corridor.example, lw2@corridor.example]\n",
        encoding="utf-8")
    december = {"edition": "monthly", "period_start": date(2022, 12, 1), "areas": ["LW"], "send": False,
                "workers": 0}

    def delivered() -> set[str]:
        with psycopg.connect(url) as conn:
            return registry.delivered_to(conn, "monthly", date(2022, 12, 1), "LW", 1)

    first = publish(url, tmp_path / "out", gate=passed(url), **december)
    with pytest.raises(RuntimeError) as failed:
        deliver(url, first)
    assert str(failed.value) == (
        "scorecards published but not all sent: LW: lw2@corridor.example refused by the mail server "
        "(550 5.1.1 <lw2@corridor.example>: mailbox unavailable)")
    assert [e.rcpt_tos for e in held_smtp.inbox.envelopes] == [["longwan@corridor.example"]]
    assert delivered() == {"longwan@corridor.example"}
    assert first.scorecards[0].emailed_to == ["longwan@corridor.example"] and first.emails_sent == 1

    # the address takes mail again: the rerun sends the edition to it, and only to it
    held_smtp.refused.clear()
    second = publish(url, tmp_path / "out", gate=passed(url), **december)
    deliver(url, second)
    assert [s.status for s in second.scorecards] == ["unchanged"]
    assert [e.rcpt_tos for e in held_smtp.inbox.envelopes] == [["longwan@corridor.example"],
                                                               ["lw2@corridor.example"]]
    assert held_smtp.inbox.messages()[1]["To"] == "lw2@corridor.example"
    assert delivered() == {"longwan@corridor.example", "lw2@corridor.example"}
    third = publish(url, tmp_path / "out", gate=passed(url), **december)
    deliver(url, third)
    assert third.emails_sent == 0 and len(held_smtp.inbox.envelopes) == 2


def test_an_edition_not_delivered_is_mailed_after_its_data_changed(warehouse_copy, tmp_path, monkeypatch,
                                                                   held_smtp):
    """The audit's case: the 2022-11 monthly LW edition published while the mail server was down (the run
    failed: not all sent), then its data changed (a rebuilt restatement), then the server back and the run
    again: it found the edition `restated`, skipped it in the mail step and succeeded, and edition 1 was never
    delivered. The published edition is what is owed: it is mailed (its files, its as-of and completeness), and
    the restatement is still reported."""
    import hashlib

    from corridor.scorecards import format_publish_result, publish, registry
    from tests.mailbox import body_text, free_port, smtp_connection_json

    url = warehouse_copy
    out = tmp_path / "out"
    november = {"edition": "monthly", "period_start": date(2022, 11, 1), "areas": ["LW"], "workers": 0}
    server = os.environ["AIRFLOW_CONN_SMTP_DEFAULT"]
    held_smtp.release.set()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(free_port()))  # nothing listens there
    with pytest.raises(RuntimeError, match="^scorecards published but not all sent: LW: the mail server of "
                                           "connection smtp_default cannot be reached"):
        publish(url, out, gate=passed(url), **november)
    published = {p: p.read_bytes() for p in out.rglob("*_v1.*")}
    assert len(published) == 3
    with psycopg.connect(url) as conn:
        changed = conn.execute("update kpi.kpi_values set actual_value = actual_value + 7 where kpi_code = 'K04'"
                               " and area_code = 'LW' and grain = 'month' and period_start = '2022-11-01'")
        assert changed.rowcount == 1
        recorded = registry.latest_edition(conn, "monthly", date(2022, 11, 1), "LW")

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server)
    again = publish(url, out, gate=passed(url), **november)
    assert [(s.area_code, s.status, s.edition_no) for s in again.scorecards] == [("LW", "restated", 1)]
    assert (again.emails_sent, again.send_failures) == (1, [])
    [message] = held_smtp.inbox.messages()
    assert message["To"] == "longwan@corridor.example" and "第1版" in message["Subject"]
    attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert {name: hashlib.sha256(content).hexdigest() for name, content in attachments.items()} == {
        path.name: sha for fmt, (path, sha) in recorded.files.items() if fmt in ("pdf", "xlsx")}
    assert all(published[path] == path.read_bytes() for path in published)  # the edition's files, untouched
    body = body_text(message)
    assert f"数据指纹 {recorded.data_sha256[:12]}" in body and "指标状态" not in body  # not the changed data's
    with psycopg.connect(url) as conn:
        assert registry.delivered_to(conn, "monthly", date(2022, 11, 1), "LW", 1) == {"longwan@corridor.example"}
    assert "DATA RESTATED since publication" in format_publish_result(again)
    third = publish(url, out, gate=passed(url), **november)
    assert third.emails_sent == 0 and len(held_smtp.inbox.envelopes) == 1


def test_two_publications_of_an_edition_mail_it_once(warehouse_copy, tmp_path, held_smtp):
    """The publish DAG's run and `corridor scorecards publish` (say) deliver the same edition at the same time:
    the message is claimed before it is sent, so the second leaves it to the first instead of mailing it again."""
    import threading

    from corridor.scorecards import deliver, publish

    url = warehouse_copy
    gate = passed(url)
    december = {"edition": "monthly", "period_start": date(2022, 12, 1), "areas": ["ALL"], "send": False,
                "workers": 0}
    first = publish(url, tmp_path / "out", gate=gate, **december)
    second = publish(url, tmp_path / "out", gate=gate, **december)  # the edition as recorded: not sent yet
    assert [s.status for s in first.scorecards + second.scorecards] == ["published", "unchanged"]
    threads = [threading.Thread(target=deliver, args=(url, first))]
    threads[0].start()
    assert held_smtp.sending.wait(120), "the first delivery sent nothing"
    threads.append(threading.Thread(target=deliver, args=(url, second)))
    threads[1].start()
    threads[1].join(20)  # it leaves the message to the first; before, it sent it too (held like the first)
    held_smtp.release.set()
    for thread in threads:
        thread.join(120)
    assert [m["To"] for m in held_smtp.inbox.messages()] == ["office@corridor.example"]
    assert (first.emails_sent, second.emails_sent) == (1, 0)


def test_an_unreachable_mail_server_fails_the_command_in_one_line_after_publishing(warehouse_copy, tmp_path,
                                                                                    monkeypatch):
    """No SMTP server listening where the connection points: the scorecards are published and recorded, the
    command fails in one line (no traceback) naming the connection and the areas not sent."""
    from tests.mailbox import free_port, smtp_connection_json

    url = warehouse_copy
    out = tmp_path / "out"
    recipients = tmp_path / "recipients.yml"
    recipients.write_text("sender: platform@corridor.example\nrecipients:\n  ALL: [office@corridor.example]\n"
                          "  LW: [longwan@corridor.example]\n", encoding="utf-8")
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url, "CORRIDOR_OUTPUT_DIR": str(out),
           "CORRIDOR_RECIPIENTS_FILE": str(recipients), "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection_json(free_port())}
    env.pop("CORRIDOR_SMTP_CONN_ID", None)
    cli = subprocess.run([str(Path(sys.executable).with_name("corridor")), "scorecards", "publish", "--edition",
                          "monthly", "--period", "2022-12-01", "--area", "ALL", "--area", "LW"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 1, (cli.stdout, cli.stderr)
    assert "Traceback" not in cli.stderr, cli.stderr
    unreachable = ("the mail server of connection smtp_default cannot be reached (ConnectionRefusedError: "
                   "[Errno 111] Connection refused)")
    assert f"scorecards published but not all sent: ALL: {unreachable}; LW: {unreachable}" in cli.stderr, cli.stderr
    assert len(list(out.rglob("*.pdf"))) == 2 and cli.stdout.count("published") >= 2, cli.stdout

    # a recipients file that is not YAML: one line naming the file and where, nothing sent
    recipients.write_text("recipients:\n  ALL: [office@corridor.example\n", encoding="utf-8")
    again = subprocess.run(cli.args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert f"scorecards published but not sent: {recipients}: not valid YAML (line 3, column 1): " in again.stderr, \
        again.stderr


def test_a_run_after_a_rebuild_publishes_and_mails_the_final_edition_of_a_provisional_one(
        warehouse_copy, tmp_path, monkeypatch, caplog):
    """The publish DAG's run after each build only ran the checks: a provisional scorecard (a return missing)
    stayed the last edition officials had after the late return was loaded and built. The run after the build
    that completes the period now publishes edition 2 and mails it; a run after the next build, nothing."""
    import logging

    from aiosmtpd.controller import Controller

    from corridor.orchestration.tasks import publish_for_run
    from corridor.scorecards import publish, registry
    from tests.mailbox import Inbox, body_text, free_port, smtp_connection_json
    from tests.test_scorecards import return_arrives, withhold_return

    url, out = warehouse_copy, tmp_path / "out"
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(port, "scorecards@corridor.example"))
        monkeypatch.delenv("CORRIDOR_SMTP_CONN_ID", raising=False)
        recipients = tmp_path / "recipients.yml"
        recipients.write_text("sender: 走廊数据平台 <platform@corridor.example>\n"
                              "recipients:\n  YQ: [yueqing@corridor.example]\n", encoding="utf-8")
        monkeypatch.setenv("CORRIDOR_RECIPIENTS_FILE", str(recipients))
        monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", url)
        monkeypatch.setenv("CORRIDOR_OUTPUT_DIR", str(out))
        monkeypatch.setenv("CORRIDOR_PUBLISH_WORKERS", "0")
        november = date(2022, 11, 1)
        withhold_return(url, "YQ", november)
        first = publish(url, out, gate=passed(url), edition="monthly", period_start=november, areas=["YQ"])
        assert [(s.edition_no, s.provisional) for s in first.scorecards] == [(1, True)] and first.emails_sent == 1

        return_arrives(url, "YQ", november)
        caplog.set_level(logging.INFO, logger="corridor.orchestration.tasks")
        [result] = publish_for_run(passed(url), "asset_triggered", None)
        assert [(s.area_code, s.status, s.edition_no, s.provisional) for s in result.scorecards] == [
            ("YQ", "republished", 2, False)]
        assert result.emails_sent == 1 and result.send_failures == []
        assert "final edition of 1 provisional scorecard(s) whose period is complete now: monthly 2022-11-01 YQ v2" \
            in caplog.text
        second = inbox.messages()[1]
        assert second["To"] == "yueqing@corridor.example" and "第2版" in second["Subject"]
        assert "本版替代此前发送的第1版" in body_text(second)
        assert sorted(part.get_filename() for part in second.iter_attachments()) == [
            "corridor-scorecard_2022-11_monthly_YQ_v2.pdf", "corridor-scorecard_2022-11_monthly_YQ_v2.xlsx"]
        with psycopg.connect(url) as conn:
            rec = registry.latest_edition(conn, "monthly", november, "YQ")
            assert (rec.edition_no, rec.provisional) == (2, False)
            assert registry.delivered_to(conn, "monthly", november, "YQ", 2) == {"yueqing@corridor.example"}

        caplog.clear()
        assert publish_for_run(passed(url), "asset_triggered", None) == []
        assert "no provisional edition became complete" in caplog.text and len(inbox.envelopes) == 2
    finally:
        controller.stop()


def test_corridor_scorecards_publish_validates_every_row_when_corridor_gate_full_says_so(warehouse_copy, monkeypatch):
    """CORRIDOR_GATE_FULL=1 is how the README and the gate's own summary say to check every row again; the publish
    DAG's gate read it, `corridor scorecards publish`'s gate did not (it validated the new files only)."""
    from corridor.scorecards.cli import _quality_gate

    monkeypatch.delenv("CORRIDOR_GATE_FULL", raising=False)
    assert not _quality_gate(warehouse_copy)["blocking"]  # records every file as validated
    with psycopg.connect(warehouse_copy) as conn:  # a bad value put into a validated file's rows by hand
        conn.execute("update raw.bank_loans set loan_amount_yuan = -1"
                     " where ctid = (select min(ctid) from raw.bank_loans)")
    assert not _quality_gate(warehouse_copy)["blocking"]  # no new file: nothing of the raw rows is due
    monkeypatch.setenv("CORRIDOR_GATE_FULL", "1")
    gate = _quality_gate(warehouse_copy)
    assert gate["blocking"] and gate["failed"] >= 1, gate
