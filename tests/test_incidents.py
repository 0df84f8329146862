"""Incidents injected into real components: the warehouse's locks and timeouts under the loader (embedded
PostgreSQL), a mail relay that ends the session mid-delivery (aiosmtpd)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from corridor.ingest import discover, ingest_feed
from tests.conftest import TEST_PII_KEY, scalar


def _ledger(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select file_name, status, rows_received, rows_loaded, rows_quarantined"
                            " from ops.load_ledger order by ledger_id").fetchall()


@pytest.mark.parametrize(("setting", "error"), [
    ("lock_timeout", "LockNotAvailable: canceling statement due to lock timeout"),
    ("statement_timeout", "QueryCanceled: canceling statement due to statement timeout")])
def test_a_lock_timeout_stops_the_run_instead_of_rejecting_every_file(warehouse_url, landing, setting, error):
    """A raw table locked by another session and a lock_timeout on the warehouse (an operator's ALTER TABLE or
    VACUUM FULL, a BI session's LOCK): each file's COPY was cancelled after the timeout and the file recorded as
    `rejected`, "the database refused it", one after the other (every file waiting its timeout), and the files
    after a transient failure were committed before it, out of delivery order. The run now stops at the first
    such file, rejects nothing, says it is not the file's fault and what to do; the next run loads every file."""
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        database = conn.info.dbname
        conn.execute(sql.SQL("alter database {} set {} = '1s'").format(sql.Identifier(database),
                                                                        sql.Identifier(setting)))
    files = discover(landing, "bank")
    holder = psycopg.connect(warehouse_url)
    try:
        holder.execute("lock table raw.bank_loans in access exclusive mode")
        with pytest.raises(RuntimeError) as trouble:  # corridor.ingest.WarehouseTrouble
            ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    finally:
        holder.close()
    message = str(trouble.value)
    assert message.startswith(f"bank/{files[0].name}: the warehouse did not take the file ({error})"), message
    assert "not the file's fault" in message and "run the ingest again" in message, message
    assert _ledger(warehouse_url) == []  # no file blamed, none loaded past it

    rerun = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert rerun.count("loaded") == len(files) and not rerun.rejected
    ledger = _ledger(warehouse_url)
    assert [r[0] for r in ledger] == [p.name for p in files]
    assert scalar(warehouse_url, "select count(*) from raw.bank_loans") == sum(r[3] for r in ledger)



def test_a_loader_waiting_for_a_table_lock_says_who_holds_it(warehouse_url, landing, monkeypatch):
    """Without a timeout the loader waits as long as another session locks a raw table (or the ledger): the run
    hung with nothing in its log (only the waits for a dbt command were logged). Now the log says, while it waits,
    for how long, which backend holds the lock (application, user, state, query) and how to end it."""
    import logging
    import threading

    from corridor import ingest

    monkeypatch.setattr(ingest, "LOCK_WATCH_SECONDS", 0.5, raising=False)
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("corridor.ingest").addHandler(handler)
    holder = psycopg.connect(warehouse_url, application_name="a BI extract")
    box: dict = {}
    try:
        holder.execute("lock table raw.bank_loans in access exclusive mode")
        holder_pid = holder.info.backend_pid
        loader = threading.Thread(target=lambda: box.update(summary=ingest_feed(
            warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)), daemon=True)
        loader.start()
        deadline = time.monotonic() + 30
        while not any("waited" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loader.is_alive()  # still waiting: nothing failed
    finally:
        holder.close()
        logging.getLogger("corridor.ingest").removeHandler(handler)
    loader.join(60)
    waits = [line for line in lines if "waited" in line]
    assert waits, lines
    assert (f"for a lock held by backend {holder_pid} (a BI extract" in waits[0]
            and f"pg_terminate_backend({holder_pid})" in waits[0]), waits[0]
    assert box["summary"].count("loaded") == len(discover(landing, "bank"))


# -- a mail relay that ends the session mid-delivery ------------------------------------------------------------

class _SessionLimitedRelay:
    """aiosmtpd handler: takes ``per_session`` messages in an SMTP session, then answers the next MAIL FROM with
    421 and closes the connection (Exchange's and Postfix's limits on messages per connection do this)."""

    def __init__(self, per_session: int) -> None:
        from tests.mailbox import Inbox

        self.inbox, self.per_session, self.sessions = Inbox(), per_session, {}

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 (aiosmtpd's hook)
        import asyncio

        taken = self.sessions.setdefault(id(session), 0)
        if taken >= self.per_session:
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 too many messages in this session, closing"
        self.sessions[id(session)] = taken + 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        return await self.inbox.handle_DATA(server, session, envelope)

def _cards(tmp_path: Path, n: int) -> list:
    """``n`` scorecard mails, one address each (area0@…, area1@…), each with a PDF attached."""
    from corridor.scorecards import delivery

    attachment = tmp_path / "card.pdf"
    attachment.write_bytes(b"%PDF-1.7 not really")
    return [delivery.Message(None, [f"area{i}@corridor.example"], f"card {i}", f"<p>card {i}</p>", [attachment])
            for i in range(n)]



def test_a_relay_that_ends_the_session_after_some_messages_gets_the_others_on_a_new_one(monkeypatch, tmp_path):
    """`delivery.send` mails every scorecard over one SMTP session. A relay that takes a few messages per session
    and then answers 421 and hangs up made every following message fail ("please run connect() first"): with
    seven areas and up to three editions a publication, every run failed and a rerun sent only the next few. The
    session is now opened again: each message is sent once, none fails."""
    from aiosmtpd.controller import Controller

    from corridor.scorecards import delivery
    from tests.mailbox import free_port, smtp_connection_json

    relay, port = _SessionLimitedRelay(per_session=2), free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(port, "scorecards@corridor.example"))
        messages = _cards(tmp_path, 5)
        sent: list[str] = []
        failures = delivery.send(messages, "smtp_default", None, lambda m, accepted: sent.extend(accepted))
    finally:
        controller.stop()
    assert [(m.subject, delivery.describe_failure(exc)) for m, exc in failures] == []
    assert sent == [f"area{i}@corridor.example" for i in range(5)]
    assert [e.rcpt_tos for e in relay.inbox.envelopes] == [[f"area{i}@corridor.example"] for i in range(5)]
    assert len(relay.sessions) == 3


class _StallingRelay:
    """aiosmtpd handler: answers the end of the ``stall``-th message's DATA only after ``seconds`` (a relay that
    stalls past the client's timeout), the others at once."""

    def __init__(self, stall: int, seconds: float) -> None:
        from tests.mailbox import Inbox

        self.inbox, self.stall, self.seconds, self.seen = Inbox(), stall, seconds, 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        import asyncio

        self.seen += 1
        if self.seen == self.stall:
            await asyncio.sleep(self.seconds)
        return await self.inbox.handle_DATA(server, session, envelope)


def test_a_relay_that_times_out_on_one_message_gets_the_others_and_that_one_is_reported(monkeypatch, tmp_path):
    """The relay stalls past the connection's timeout on the second message: smtplib closes the session. That
    message is reported (the relay may have taken it: it is not sent again in this run, the rerun sends it unless
    it was recorded) and the messages after it go on a new session; they all failed before ("please run connect()
    first", after futile retries on the closed session)."""
    import json

    from aiosmtpd.controller import Controller

    from corridor.scorecards import delivery
    from tests.mailbox import free_port, smtp_connection_json

    relay, port = _StallingRelay(stall=2, seconds=4), free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        connection = json.loads(smtp_connection_json(port, "scorecards@corridor.example"))
        connection["extra"].update(timeout=1, retry_limit=2)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
        messages = _cards(tmp_path, 4)
        sent: list[str] = []
        failures = delivery.send(messages, "smtp_default", None, lambda m, accepted: sent.extend(accepted))
    finally:
        controller.stop()
    assert [(m.subject, type(exc).__name__) for m, exc in failures] == [("card 1", "SMTPServerDisconnected")]
    assert "timed out" in str(failures[0][1])
    assert sent == ["area0@corridor.example", "area2@corridor.example", "area3@corridor.example"]


# -- the output folder failing mid-publication ------------------------------------------------------------------

def test_a_write_failing_mid_edition_leaves_no_file_of_it_and_records_nothing(warehouse_copy, tmp_path, monkeypatch):
    """The scorecards' folder fails while an edition is written (a full disk, a folder not writable; here the
    XLSX's name is taken by a folder, so that the rename fails for root too): the edition is not recorded, as
    before, but its PDF stayed in the folder, named like a published edition (`_v1.pdf`, or `_v2.pdf` beside a
    recorded `_v1` after a --republish), which nothing had published or mailed. Now nothing of it stays, and the
    next run publishes it whole."""
    from datetime import date

    from corridor.scorecards import publish
    from corridor.scorecards.publish import edition_dir, file_stem
    from tests.conftest import passed

    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    monkeypatch.delenv("CORRIDOR_SMTP_CONN_ID", raising=False)
    url, out, december = warehouse_copy, tmp_path / "out", date(2022, 12, 1)
    folder = edition_dir(out, "monthly", december, "LW")
    obstacle = folder / f"{file_stem('monthly', december, 'LW', 1)}.xlsx"
    obstacle.mkdir(parents=True)
    with pytest.raises(OSError):
        publish(url, out, gate=passed(url), edition="monthly", period_start=december, areas=["LW"], workers=0)
    assert scalar(url, "select count(*) from ops.scorecard_editions") == 0
    assert sorted(p.name for p in folder.iterdir()) == [obstacle.name]  # no PDF, no temporary file left

    obstacle.rmdir()
    again = publish(url, out, gate=passed(url), edition="monthly", period_start=december, areas=["LW"], workers=0)
    assert [(s.status, s.edition_no) for s in again.scorecards] == [("published", 1)]
    assert sorted(p.suffix for p in folder.iterdir()) == [".html", ".pdf", ".xlsx"]
    assert scalar(url, "select count(*) from ops.scorecard_editions") == 3
