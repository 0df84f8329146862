"""The loader on real PostgreSQL with real feed files from the demo generator."""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from corridor.demo import generate
from corridor.feeds import FEEDS
from corridor.ingest import discover, ingest_feed
from tests.conftest import TEST_PII_KEY, awaits_advisory_lock, data_rows, scalar


def ingest_all(url: str, landing: Path) -> dict:
    return {feed: ingest_feed(url, feed, landing, pii_key=TEST_PII_KEY) for feed in FEEDS}


def ledger(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select feed, file_name, status, rows_received, rows_loaded, rows_quarantined,"
                            " message from ops.load_ledger order by ledger_id").fetchall()


def raw_row_count(url: str) -> int:
    tables = ["district_returns", "district_platforms", "district_certifications", "district_projects",
              "techmarket_contracts", "bank_loans", "hr_talents"]
    return sum(scalar(url, f"select count(*) from raw.{t}") for t in tables)


def test_every_file_is_ledgered_and_reconciles(warehouse_url, landing):
    """Each of the ledger's three counts is checked against something the loader did not compute: received
    against the file's data rows counted without the loader, loaded against the raw rows carrying the file's
    ledger_id, quarantined against its rows in ops.quarantine (the sum alone holds for a loader that drops a
    row from both sides, or reports rows its COPY never wrote)."""
    summaries = ingest_all(warehouse_url, landing)
    rows = ledger(warehouse_url)
    files = sum(len(discover(landing, feed)) for feed in FEEDS)
    assert len(rows) == files
    assert all(status == "loaded" for _, _, status, *_ in rows)
    for feed, name, _, received, loaded, quarantined, _ in rows:
        assert received == loaded + quarantined, (feed, name)
    assert sum(s.rows_loaded for s in summaries.values()) > 1000
    assert sum(s.rows_quarantined for s in summaries.values()) > 0
    quarantined = scalar(warehouse_url, "select count(*) from ops.quarantine")
    assert quarantined == sum(r[5] for r in rows)
    tables = ["district_platforms", "district_certifications", "district_projects", "techmarket_contracts",
              "bank_loans", "hr_talents"]  # raw.district_returns holds a workbook's cover, not a data row
    held = " union all ".join(f"select ledger_id from raw.{t}" for t in tables)
    with psycopg.connect(warehouse_url) as conn:
        counted = conn.execute(
            f"select l.feed, l.file_name, l.rows_received, l.rows_loaded, l.rows_quarantined,"
            f" (select count(*) from ({held}) as r where r.ledger_id = l.ledger_id),"
            f" (select count(*) from ops.quarantine as q where q.ledger_id = l.ledger_id)"
            f" from ops.load_ledger as l order by l.ledger_id").fetchall()
    differ = [(feed, name, (received, loaded, quarantined), (data_rows(feed, landing / feed / name), raw, kept))
              for feed, name, received, loaded, quarantined, raw, kept in counted
              if (received, loaded, quarantined) != (data_rows(feed, landing / feed / name), raw, kept)]
    assert differ == [], differ[:10]  # (feed, file, the ledger's counts, the counts made without the loader)


def test_same_bytes_twice_load_once(warehouse_url, landing):
    ingest_all(warehouse_url, landing)
    before_rows, before_ledger = raw_row_count(warehouse_url), len(ledger(warehouse_url))
    second = ingest_all(warehouse_url, landing)
    assert raw_row_count(warehouse_url) == before_rows
    assert len(ledger(warehouse_url)) == before_ledger
    assert all(s.rows_loaded == 0 and s.count("unchanged") == len(s.files) for s in second.values())


def test_resent_file_under_its_own_name_is_a_noop(warehouse_url, landing):
    ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    rows = raw_row_count(warehouse_url)
    victim = sorted((landing / "bank").iterdir())[0]
    data = victim.read_bytes()
    victim.unlink()
    victim.write_bytes(data)  # the transfer is repeated: same name, same bytes
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert summary.rows_loaded == 0 and raw_row_count(warehouse_url) == rows


def test_identical_bytes_under_a_new_name_load_nothing_and_name_the_original(warehouse_url, landing):
    ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    rows = raw_row_count(warehouse_url)
    original = sorted((landing / "techmarket").iterdir())[0]
    shutil.copy(original, landing / "techmarket" / "tech_contracts_20210227.csv")
    summary = ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    assert summary.count("duplicate") == 1 and summary.rows_loaded == 0
    assert raw_row_count(warehouse_url) == rows
    dup = [r for r in ledger(warehouse_url) if r[1] == "tech_contracts_20210227.csv"]
    assert dup[0][2] == "loaded" and original.name in dup[0][6]


def test_a_later_district_version_with_an_earlier_versions_bytes_is_loaded_another_area_month_is_not(
        warehouse_url, landing):
    """A version replaces its area-month whatever it holds (spec §1): _v9 with _v1's bytes is loaded and names
    _v1; the same bytes under another area-month's name stay a no-op (its cover would contradict its name)."""
    ingest_feed(warehouse_url, "district", landing, pii_key=TEST_PII_KEY)
    original = sorted((landing / "district").glob("*_v1.xlsx"))[0]
    area, month = original.name.split("_")[:2]
    later = landing / "district" / f"{area}_{month}_v9.xlsx"
    elsewhere = landing / "district" / f"{area}_{int(month) - 100}_v1.xlsx"  # the same month a year before
    shutil.copy(original, later)
    shutil.copy(original, elsewhere)
    summary = ingest_feed(warehouse_url, "district", landing, pii_key=TEST_PII_KEY)
    outcomes = {f.file_name: f for f in summary.files if f.status != "unchanged"}
    assert set(outcomes) == {later.name, elsewhere.name}
    first = [r for r in ledger(warehouse_url) if r[1] == original.name][0]
    assert (outcomes[later.name].status, outcomes[later.name].rows_received) == ("loaded", first[3])
    assert original.name in outcomes[later.name].message and "restatement" in outcomes[later.name].message
    assert (outcomes[elsewhere.name].status, outcomes[elsewhere.name].rows_received) == ("duplicate", 0)
    assert scalar(warehouse_url, "select max(file_version) from raw.district_returns where area_code = %s"
                  " and report_month = %s", (area, f"{month[:4]}-{month[4:]}-01")) == 9


def test_changed_bytes_under_a_loaded_name_are_rejected(warehouse_url, landing):
    ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    victim = sorted((landing / "hr").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"\n")
    summary = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    assert [f.file_name for f in summary.rejected] == [victim.name]
    assert "never changed in place" in summary.rejected[0].message


def test_unreadable_files_are_rejected_and_the_others_still_load(warehouse_url, landing):
    (landing / "district" / "LW_202101_v9.xlsx").write_bytes(b"this is not a workbook")
    (landing / "bank" / "ICBC_202102.csv").write_bytes("贷款编号,借款人名称\n".encode("utf-16"))
    (landing / "hr" / "talents_2021.jsonl").write_text("{}\n", encoding="utf-8")
    summaries = ingest_all(warehouse_url, landing)
    rejected = {f.file_name: f.message for s in summaries.values() for f in s.rejected}
    assert set(rejected) == {"LW_202101_v9.xlsx", "ICBC_202102.csv", "talents_2021.jsonl"}
    assert "talent_{YYYYMM}.jsonl" in rejected["talents_2021.jsonl"]
    assert all(reason for reason in rejected.values())
    statuses = {(r[1], r[2]) for r in ledger(warehouse_url)}
    assert ("LW_202101_v9.xlsx", "rejected") in statuses
    loaded = [r for r in ledger(warehouse_url) if r[2] == "loaded"]
    assert len(loaded) == sum(len(discover(landing, f)) for f in FEEDS) - 3
    assert "ICBC_202102.csv" in summaries["bank"].rejection_message()


def _run_and_kill(url: str, landing: Path, feed: str, *, after_files: int, workers: int = 1) -> None:
    """Load ``feed`` in a child process and SIGKILL it once ``after_files`` files are committed,
    after the next file's first COPY and before its commit."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from corridor import ingest

        committed = 0
        load_file, copy_spool = ingest.Loader.load_file, ingest.Loader._copy_spool

        def counting_load_file(self, *args, **kwargs):
            global committed
            outcome = load_file(self, *args, **kwargs)
            committed += outcome.status == "loaded"
            return outcome

        def copy_then_die(self, *args, **kwargs):
            copy_spool(self, *args, **kwargs)
            if committed >= {after_files}:
                os.kill(os.getpid(), signal.SIGKILL)  # mid-file, before its commit

        ingest.Loader.load_file, ingest.Loader._copy_spool = counting_load_file, copy_then_die
        ingest.PARALLEL_MIN_BYTES = 0
        ingest.ingest_feed({url!r}, {feed!r}, Path({str(landing)!r}), pii_key={TEST_PII_KEY!r})
    """)
    env = {**os.environ, "CORRIDOR_INGEST_WORKERS": str(workers)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_a_file_killed_mid_load_leaves_nothing_and_loads_fully_next_run(warehouse_url, landing):
    _run_and_kill(warehouse_url, landing, "district", after_files=0)
    assert ledger(warehouse_url) == []
    assert raw_row_count(warehouse_url) == 0
    assert scalar(warehouse_url, "select count(*) from ops.quarantine") == 0

    summary = ingest_feed(warehouse_url, "district", landing, pii_key=TEST_PII_KEY)
    assert summary.count("loaded") + summary.count("duplicate") == len(discover(landing, "district"))
    assert summary.rows_received == summary.rows_loaded + summary.rows_quarantined > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_kill_mid_feed_keeps_every_file_committed_before_it(warehouse_url, landing, workers):
    files = discover(landing, "techmarket")
    _run_and_kill(warehouse_url, landing, "techmarket", after_files=5, workers=workers)
    committed = ledger(warehouse_url)
    assert [r[1] for r in committed] == [p.name for p in files[:5]]  # each file committed on its own
    assert all(r[2] == "loaded" and r[3] == r[4] + r[5] for r in committed)
    rows_before = scalar(warehouse_url, "select count(*) from raw.techmarket_contracts")
    assert rows_before == sum(r[4] for r in committed)

    rerun = ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    assert rerun.count("unchanged") == 5
    assert rerun.count("loaded") + rerun.count("duplicate") == len(files) - 5
    assert not rerun.rejected
    final = ledger(warehouse_url)
    assert len(final) == len(files) and len({r[1] for r in final}) == len(files)


def test_concurrent_loaders_never_load_a_file_twice(warehouse_url, landing):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        summaries = list(pool.map(lambda _: ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY),
                                  range(3)))
    files = discover(landing, "bank")
    loaded = [r for r in ledger(warehouse_url) if r[2] == "loaded"]
    assert sorted(r[1] for r in loaded) == sorted(p.name for p in files)
    assert sum(s.count("loaded") for s in summaries) == len(files)
    assert scalar(warehouse_url, "select count(*) from raw.bank_loans") == sum(r[4] for r in loaded)


def test_a_loader_that_waited_for_the_feeds_lock_sees_what_its_holder_committed(warehouse_url, landing, tmp_path):
    """The "loaded meanwhile?" check reads the ledger after the feed's lock is granted: a loader that waited while
    another committed the same bytes (under another name) loads nothing of them. (A statement's snapshot is taken
    when it starts: a check in the statement that waits for the lock would not see that commit.)"""
    import threading

    from corridor.ingest import sha256_of

    path = sorted(discover(landing, "bank"))[0]
    one = tmp_path / "one"
    shutil.copytree(landing, one)
    for other in discover(one, "bank"):
        if other.name != path.name:
            other.unlink()
    holder = psycopg.connect(warehouse_url)  # another loader, mid-file: the feed's lock and its ledger row
    holder.execute("select pg_advisory_xact_lock(hashtext('corridor.ingest.bank'))")
    holder.execute("insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at, finished_at,"
                   " rows_received, rows_loaded, rows_quarantined) values ('bank', %s, %s, %s, 'loaded', now(),"
                   " now(), 0, 0, 0)", ("renamed_" + path.name, sha256_of(path), path.stat().st_size))
    summaries = []
    waiter = threading.Thread(target=lambda: summaries.append(
        ingest_feed(warehouse_url, "bank", one, pii_key=TEST_PII_KEY)))
    waiter.start()
    try:
        for _ in range(600):  # the waiter reaches the lock (its ledger look-up found nothing committed yet)
            if scalar(warehouse_url, "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                                     " and database = (select oid from pg_database where datname = current_database())"):
                break
            waiter.join(0.05)
        else:
            pytest.fail("the second loader never waited for the feed's lock")
        holder.commit()
    finally:
        holder.close()
        waiter.join(60)
    (summary,) = summaries
    assert [(f.file_name, f.status, f.message) for f in summary.files] == [
        (path.name, "unchanged", "loaded meanwhile by another run")]
    assert scalar(warehouse_url, "select count(*) from raw.bank_loans") == 0
    assert [r[1] for r in ledger(warehouse_url)] == ["renamed_" + path.name]


def test_restated_workbook_keeps_both_versions_on_record(warehouse_url, landing):
    ingest_feed(warehouse_url, "district", landing, pii_key=TEST_PII_KEY)
    with psycopg.connect(warehouse_url) as conn:
        versions = conn.execute(
            "select area_code, report_month, array_agg(file_version order by file_version)"
            " from raw.district_returns group by 1, 2 having count(*) > 1").fetchall()
    assert versions, "the demo generator plants at least one restated area-month"
    for _, _, vs in versions:
        assert vs[0] == 1 and vs[-1] >= 2


def test_an_unchanged_file_is_not_reread_but_a_changed_one_is(warehouse_url, landing, monkeypatch):
    from corridor import ingest

    ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    hashed = []
    real = ingest.sha256_of
    monkeypatch.setattr(ingest, "sha256_of", lambda p: hashed.append(p.name) or real(p))
    again = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert hashed == [] and again.count("unchanged") == len(again.files) > 0  # name, size, mtime unchanged

    victim = sorted((landing / "bank").iterdir())[0]
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: re-read, same bytes
    touched = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert hashed == [victim.name] and touched.count("unchanged") == len(touched.files)
    ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert hashed == [victim.name]  # its new mtime is remembered


def test_a_file_parsed_by_a_worker_is_hashed_there_not_by_the_loader(warehouse_url, landing, monkeypatch):
    import hashlib

    from corridor import ingest

    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)  # parse in worker processes
    hashed = []
    real = ingest.sha256_of
    monkeypatch.setattr(ingest, "sha256_of", lambda p: hashed.append(p.name) or real(p))
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert summary.count("loaded") == len(summary.files) > 1
    assert hashed == []  # the workers hashed every file before parsing it
    with psycopg.connect(warehouse_url) as conn:
        ledger = dict(conn.execute("select file_name, sha256 from ops.load_ledger where feed = 'bank'").fetchall())
    assert ledger == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in discover(landing, "bank")}


def test_a_file_changed_after_its_parse_is_hashed_and_parsed_again(warehouse_url, landing, monkeypatch):
    import hashlib

    from corridor import ingest

    victim = discover(landing, "bank")[1]
    real_take = ingest.Prefetcher.take

    def take_then_change(self, path):
        spooled = real_take(self, path)
        if path.name == victim.name and spooled is not None:  # its last record gone, after the parse read it
            lines = victim.read_bytes().splitlines(keepends=True)
            victim.write_bytes(b"".join(lines[:-1]))
        return spooled

    monkeypatch.setattr(ingest.Prefetcher, "take", take_then_change)
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    outcome = next(f for f in summary.files if f.file_name == victim.name)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        columns = ingest.Loader(conn, "bank", pii_key=TEST_PII_KEY).raw_columns()
    now = ingest.spool_file("bank", victim, TEST_PII_KEY, columns)
    now.remove()
    assert outcome.status == "loaded"
    assert outcome.sha256 == hashlib.sha256(victim.read_bytes()).hexdigest()
    assert (outcome.rows_received, outcome.rows_loaded) == (now.rows_received, now.rows_loaded)
    assert scalar(warehouse_url, "select count(*) from raw.bank_loans where ledger_id = %s",
                  (outcome.ledger_id,)) == now.rows_loaded
    again = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert again.count("unchanged") == len(again.files)  # its size and mtime on record are the new ones


def test_parsing_in_worker_processes_loads_exactly_what_one_process_loads(pg_admin_url, landing, monkeypatch):
    from corridor import ingest
    from tests.conftest import _new_database

    def load(workers: int) -> list[tuple]:
        url = _new_database(pg_admin_url)
        from corridor import db

        db.ensure_schema(url)
        monkeypatch.setenv("CORRIDOR_INGEST_WORKERS", str(workers))
        monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
        summaries = ingest_all(url, landing)
        assert all(not s.rejected for s in summaries.values())
        with psycopg.connect(url) as conn:
            led = conn.execute("select feed, file_name, status, rows_received, rows_loaded, rows_quarantined"
                               " from ops.load_ledger order by ledger_id").fetchall()
            raw = conn.execute("select md5(string_agg(t::text, '|' order by t::text)) from ("
                               " select registration_no, source_row, row_hash, l.file_name from raw.techmarket_contracts"
                               " join ops.load_ledger l using (ledger_id)) t").fetchone()
            quarantine = conn.execute("select feed, file_name, source_row, rule_code, message, record"
                                      " from ops.quarantine order by 1, 2, 3, 4").fetchall()
        return [led, raw, quarantine]

    assert load(2) == load(1)  # same ledger order, same rows, same quarantine


def test_quarantine_rows_inserted_equal_those_copied(pg_admin_url, landing, monkeypatch):
    """A file's few quarantined records are INSERTed in the pipeline that commits, many go by COPY: the same
    rows, in the same order."""
    from corridor import db, ingest
    from tests.conftest import _new_database

    victim = discover(landing, "techmarket")[2]
    lines = victim.read_bytes().decode("utf-8-sig").splitlines()
    bad = [lines[1].replace(lines[1].split(",")[0], f'"BAD{i}"', 1) for i in range(7)]  # not a registration number
    victim.write_bytes(("\ufeff" + "\r\n".join([*lines, *bad]) + "\r\n").encode("utf-8"))

    def load(insert_max: int) -> list[tuple]:
        url = _new_database(pg_admin_url)
        db.ensure_schema(url)
        monkeypatch.setattr(ingest, "QUARANTINE_INSERT_MAX", insert_max)
        for feed in ("techmarket", "bank", "hr"):
            ingest_feed(url, feed, landing, pii_key=TEST_PII_KEY)
        with psycopg.connect(url) as conn:
            return conn.execute(
                "select l.file_name, q.ledger_id - (select min(ledger_id) from ops.load_ledger), q.feed, q.file_name,"
                " q.sheet, q.source_row, q.rule_code, q.message, q.record::text"
                " from ops.quarantine q join ops.load_ledger l using (ledger_id) order by q.quarantine_id").fetchall()

    copied = load(-1)  # every file's quarantine by COPY
    per_file = [sum(r[0] == name for r in copied) for name in {r[0] for r in copied}]
    assert len(per_file) > 5 and max(per_file) > 3, per_file
    assert load(500) == copied


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ingest_shows_progress_on_a_terminal_and_logs_every_n_files(warehouse_url, landing, monkeypatch, caplog):
    from corridor import db, ingest

    monkeypatch.setattr(ingest, "PROGRESS_EVERY", 3)
    files = discover(landing, "bank")
    assert len(files) >= 6
    terminal = _Terminal()
    caplog.set_level(logging.INFO, logger="corridor.ingest")
    with db.connect(warehouse_url, autocommit=True) as conn:
        summary = ingest.Loader(conn, "bank", pii_key=TEST_PII_KEY, landing_dir=landing,
                                progress_stream=terminal).load_all(files)
    total = len(files)
    shown = terminal.getvalue()
    # the live line: files done / total, rows and their rate, time left; the last line the totals
    assert "\r" in shown and f"/{total} files" in shown and "rows (" in shown and " left" in shown
    assert shown.rstrip("\n").rsplit("\r\x1b[2K", 1)[-1].startswith(f"ingest bank  {total}/{total} files  100 %")
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest bank")]
    # a line every 3 files (and one every 30 s, should the machine be that slow)
    assert {m.split()[2] for m in logged} >= {f"{n}/{total}" for n in range(3, total + 1, 3)}
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("done: ingest bank")]
    assert len(done) == 1 and f"{total}/{total} files" in done[0]
    assert f"{summary.rows_received:,} rows" in done[0]


def test_a_contract_row_repeating_its_latest_registration_is_quarantined_naming_it(warehouse_url, tmp_path):
    """Across files only the latest state counts: a repeat of it is a duplicate, a return to an older one is news."""
    from tests.test_fast_path import contract, write_csv

    landing = tmp_path / "landing"
    (landing / "techmarket").mkdir(parents=True)
    folder = landing / "techmarket"
    write_csv(folder / "tech_contracts_20210302.csv", [contract(1), contract(2)])
    write_csv(folder / "tech_contracts_20210303.csv", [contract(1), contract(2, 登记状态="变更")])
    write_csv(folder / "tech_contracts_20210304.csv", [contract(2)])   # back to the state of 0301: news
    write_csv(folder / "tech_contracts_20210305.csv", [contract(2), contract(3)])  # the latest state again: a duplicate
    summary = ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    assert [(f.file_name[-12:], f.rows_loaded, f.rows_quarantined) for f in summary.files] == [
        ("20210302.csv", 2, 0), ("20210303.csv", 1, 1), ("20210304.csv", 1, 0), ("20210305.csv", 1, 1)]
    with psycopg.connect(warehouse_url) as conn:
        messages = [m for (m,) in conn.execute(
            "select message from ops.quarantine where rule_code = 'duplicate_row' order by quarantine_id")]
    assert messages == [
        "tech_contracts_20210303.csv row 2: 合同登记号 2021330300000001 repeats exactly its latest registration, "
        "tech_contracts_20210302.csv row 2",
        "tech_contracts_20210305.csv row 2: 合同登记号 2021330300000002 repeats exactly its latest registration, "
        "tech_contracts_20210304.csv row 2"]


def _techmarket_loaded(admin_url: str, monkeypatch, runs: list, landing: Path, by: str) -> tuple[list, list]:
    """Runs of techmarket files (day, rows) loaded into a new warehouse, each run by one ingest, the cross-file
    repeats decided ``by`` the loader (the SQL check then fails the test) or by the SQL rule (no contract keys
    read from the spools); (the quarantine, the loaded rows' file, source row and hash)."""
    from corridor import db, ingest
    from tests.conftest import _new_database
    from tests.test_fast_path import write_csv

    def no_sql(self, ledger_id, file_name):
        raise AssertionError(f"{file_name}: the SQL check ran where the loader decides")

    folder = landing / "techmarket"
    folder.mkdir(parents=True)
    url = _new_database(admin_url)
    db.ensure_schema(url)
    with monkeypatch.context() as m:
        if by == "loader":
            m.setattr(ingest.Loader, "_quarantine_cross_file_duplicates", no_sql)
        else:
            m.setattr(ingest, "_with_keys", lambda feed, spooled, carried=None, ints=None: spooled)
        for files in runs:
            for day, rows in files:
                write_csv(folder / f"tech_contracts_{day}.csv", rows)
            ingest_feed(url, "techmarket", landing, pii_key=TEST_PII_KEY)
    with psycopg.connect(url) as conn:
        return (conn.execute("select file_name, source_row, rule_code, message, record from ops.quarantine"
                             " order by quarantine_id").fetchall(),
                conn.execute("select l.file_name, c.source_row, c.row_hash from raw.techmarket_contracts as c"
                             " inner join ops.load_ledger as l using (ledger_id) order by 1, 2").fetchall())


def test_cross_file_duplicates_decided_by_the_loader_equal_the_sql_rule(pg_admin_url, tmp_path, monkeypatch):
    """The loader's memory of each contract's latest row (ingest.ContractDuplicates) quarantines exactly the
    rows, with exactly the messages and records, that the SQL statement of the rule does: within a run (the
    memory), across runs (contracts looked up), with odd values (escapes, amounts, a late export date)."""
    from tests.test_fast_path import contract

    odd = {"合同名称": "tab\there, back\\slash", "合同成交额（万元）": "1,234.50", "技术交易额（万元）": "1234.5"}
    first_run = [
        ("20210302", [contract(1), contract(2, odd), contract(3)]),
        ("20210303", [contract(1), contract(2, odd, 登记状态="变更"), contract(2, odd)]),
    ]
    second_run = [
        ("20210304", [contract(1), contract(2, odd), contract(3), contract(4)]),
        # delivered late: its export date is not the latest (nor, the next file shows, its state)
        ("20210301", [contract(4, 登记日期="2021-03-01"), contract(5, 登记日期="2021-03-01")]),
        ("20210305", [contract(4), contract(5), contract(2, odd)]),
    ]

    by_loader = _techmarket_loaded(pg_admin_url, monkeypatch, [first_run, second_run], tmp_path / "loader", "loader")
    by_sql = _techmarket_loaded(pg_admin_url, monkeypatch, [first_run, second_run], tmp_path / "sql", "sql")
    assert by_loader == by_sql
    assert sum(1 for q in by_loader[0] if "repeats exactly its latest registration" in q[3]) >= 4


def _contract_histories(rng) -> list[list[tuple[str, list[list[str]]]]]:
    """Runs of techmarket files over a few contracts: each row a contract in some state, its values in forms
    the rule takes as the same row (amounts 100.5 / 100.50 / １００.５ …) or not, files delivered late."""
    from tests.test_fast_path import contract, uscc

    def values(n: int) -> dict[str, str]:
        r = rng.random()
        if r < 0.4:
            return {}
        if r < 0.55:
            return {"合同成交额（万元）": rng.choice(["100.50", "100.5", "100.500", " 100.5", "１００.５", "100.51"])}
        if r < 0.65:
            return {"合同名称": rng.choice([f"合同{n}", f" 合同{n}", f"合同{n}\u3000", f"合同{n}\\x", f"合同\t{n}"])}
        if r < 0.75:
            return {"登记状态": rng.choice(["有效", "变更", "撤销", " 有效", "有 效"])}
        if r < 0.85:
            return {"卖方统一社会信用代码": rng.choice([uscc("91330300MA2AB12C3"), uscc("91330300MA2AB12C3").lower(),
                                                 uscc("91330300MA2AB12C4")])}
        return {"技术交易额（万元）": rng.choice(["100.5", "200", "0", ""])}

    contracts = rng.randrange(3, 12)
    files = []
    for day in rng.sample(range(1, 29), rng.randrange(3, 10)):
        rows = []
        for _ in range(rng.randrange(1, 15)):
            n = rng.randrange(1, contracts + 1)
            rows.append(contract(n, values(n), 登记日期=f"2021-03-{rng.randrange(1, day + 1):02d}"))
        files.append((f"202103{day:02d}", rows))
    cuts = sorted(rng.sample(range(1, len(files)), rng.randrange(0, min(3, len(files) - 1) + 1)))
    return [files[a:b] for a, b in zip([0, *cuts], [*cuts, len(files)], strict=True)]


def test_cross_file_duplicates_decided_by_the_loader_equal_the_sql_rule_on_random_histories(pg_admin_url, tmp_path,
                                                                                             monkeypatch):
    """As above, on seeded random contract histories (a fuzz of 477 rounds found no difference; 8 run here)."""
    import random

    rng = random.Random(20261207)
    repeats = 0
    for round_no in range(8):
        runs = _contract_histories(rng)
        results = [_techmarket_loaded(pg_admin_url, monkeypatch, runs, tmp_path / f"{round_no}-{by}", by)
                   for by in ("loader", "sql")]
        assert results[0] == results[1], f"round {round_no} of seed 20261207: the loader and the SQL rule differ"
        repeats += sum(1 for q in results[1][0] if "repeats exactly its latest registration" in q[3])
    assert repeats >= 5  # the histories held repeats for the rule to find


def test_a_file_committed_by_another_loader_meanwhile_sends_the_next_files_to_the_sql_check(warehouse_url, tmp_path,
                                                                                            monkeypatch):
    """The loader's memory of loaded contracts holds only while no other loader adds contracts: when one commits a
    file between two of this loader's, the statement adding the next file's ledger row sees it: that file is decided
    by the SQL statement of the rule, every later one looks all its contracts up (the same quarantine)."""
    from datetime import UTC, datetime

    from corridor import ingest
    from tests.test_fast_path import contract, write_csv

    folder = tmp_path / "landing" / "techmarket"
    folder.mkdir(parents=True)
    for day in ("02", "03", "04"):
        write_csv(folder / f"tech_contracts_202103{day}.csv", [contract(1), contract(int(day) + 10)])
    decided_by_sql: list[str] = []
    remembered: list[int] = []
    sql_check = ingest.Loader._quarantine_cross_file_duplicates
    remember = ingest.Loader._remember_contracts

    def counting_sql(self, ledger_id, file_name):
        decided_by_sql.append(file_name)
        return sql_check(self, ledger_id, file_name)

    def remember_then_another_loader_commits(self, contracts, repeats, ledger_id):
        remember(self, contracts, repeats, ledger_id)
        remembered.append(ledger_id)
        if len(remembered) == 1:  # after this loader's first file: another loader's file, committed
            now = datetime.now(UTC)
            with psycopg.connect(warehouse_url, autocommit=True) as other:
                other.execute(
                    "insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at, finished_at,"
                    " rows_received, rows_loaded, rows_quarantined) values ('techmarket', 'elsewhere.csv', 'x', 1,"
                    " 'loaded', %s, %s, 1, 1, 0)", (now, now))

    monkeypatch.setattr(ingest.Loader, "_quarantine_cross_file_duplicates", counting_sql)
    monkeypatch.setattr(ingest.Loader, "_remember_contracts", remember_then_another_loader_commits)
    summary = ingest_feed(warehouse_url, "techmarket", folder.parent, pii_key=TEST_PII_KEY)
    assert decided_by_sql == ["tech_contracts_20210303.csv"]
    assert [(f.rows_loaded, f.rows_quarantined) for f in summary.files] == [(2, 0), (1, 1), (1, 1)]
    assert scalar(warehouse_url, "select count(*) from ops.quarantine where rule_code = 'duplicate_row'") == 2


def test_the_loaded_contracts_bitmap_never_misses_a_member_and_rarely_claims_another():
    """ingest._Bitmap (16 MiB whatever the number of contracts) answers yes for every member it was given,
    over adds of many sizes, and for few others (each a needless look-up in the database, never a wrong
    quarantine); the keys of registration numbers are the numbers themselves; ContractDuplicates then looks up
    only contracts loaded before."""
    import random

    import numpy as np

    from corridor import ingest

    rng = random.Random(7)
    members: set[int] = set()
    found = ingest._Bitmap()
    assert not found.contains(np.array([1, 2, 3], dtype=np.int64)).any()
    for size in [1, 5, 3, 200, 2, 2, 1000, 7, 0, 64, 64, 64, 50000, 1]:
        batch = [rng.randrange(0, 10**16) for _ in range(size)] + rng.sample(sorted(members), min(3, len(members)))
        found.add(np.array(batch, dtype=np.int64))
        members.update(batch)
        probe = rng.sample(sorted(members), min(500, len(members)))
        assert found.contains(np.array(probe, dtype=np.int64)).all()
    others = np.array([x for x in (rng.randrange(0, 10**16) for _ in range(100000)) if x not in members])
    claimed = found.contains(others).mean()
    assert 0 < claimed < 3 * len(members) / 2**ingest._Bitmap.BITS  # about members / bits
    # consecutive registration numbers (as a feed issues them) spread over the bitmap alike
    run = np.arange(2021330300000001, 2021330300000001 + 50000, dtype=np.int64)
    dense = ingest._Bitmap()
    dense.add(run)
    assert dense.contains(run).all() and dense.contains(run + 50000).mean() < 3 * 50000 / 2**ingest._Bitmap.BITS

    # keys sharing a byte of the bitmap, added in one call (with a repeat): every one of them is found
    pool = np.array([rng.randrange(0, 10**16) for _ in range(2_000_000)], dtype=np.int64)
    where, mask = dense.slots(pool)
    byte, counts = np.unique(where, return_counts=True)
    crowded = np.isin(where, byte[counts >= 3])
    crowd = pool[crowded][np.argsort(where[crowded], kind="stable")][:300]  # whole groups, one after the other
    assert len(crowd) >= 30 and len(set(dense.slots(crowd)[0].tolist())) < len(crowd) / 2
    shared = ingest._Bitmap()
    shared.add(np.concatenate([crowd, crowd[:5]]))
    assert shared.contains(crowd).all() and len(shared) == len(crowd) + 5

    keys = ingest._contract_keys(["2021330300000001", "0000000000000001", "2021-33", "２０２１"])
    assert keys.tolist()[:2] == [2021330300000001, 1] and min(keys.tolist()[2:]) < 0
    assert ingest._contract_keys([]).tolist() == []

    tracker = ingest.ContractDuplicates.__new__(ingest.ContractDuplicates)
    tracker.empty, tracker.loaded, tracker._keys, tracker._slots, tracker._maybe = True, ingest._Bitmap(), None, None, None
    tracker.remember(["2021330300000001", "2021330300000002"])
    assert tracker.candidates(["2021330300000003", "2021330300000002", "2021330300000002"]) == ["2021330300000002"]
    tracker.reset(5)  # after an SQL-decided file, or another loader: every contract is looked up
    assert tracker.candidates(["2021330300000003", "2021330300000002"]) == ["2021330300000002", "2021330300000003"]


def test_a_parse_thread_runs_with_a_short_switch_interval_and_gives_it_back(warehouse_url, landing, monkeypatch):
    """The loader waits for the GIL after each round trip: while a thread parses ahead, the interpreter hands it
    over every PARSE_THREAD_SWITCH seconds, and the interval is what it was once the feed is loaded."""
    from corridor import db, ingest

    monkeypatch.setattr(ingest, "BATCH_BYTES", 4096)  # several batches: a parse thread (the files are small)
    seen = []
    spool_batch = ingest.spool_batch

    def recording(*args, **kwargs):
        seen.append(sys.getswitchinterval())
        return spool_batch(*args, **kwargs)

    monkeypatch.setattr(ingest, "spool_batch", recording)
    before = sys.getswitchinterval()
    assert before > ingest.PARSE_THREAD_SWITCH
    with db.connect(warehouse_url, autocommit=True) as conn:
        summary = ingest.Loader(conn, "bank", pii_key=TEST_PII_KEY, landing_dir=landing).load_all(
            discover(landing, "bank"))
    assert summary.count("loaded") == len(summary.files) and len(seen) > 1
    assert set(seen) == {ingest.PARSE_THREAD_SWITCH}
    assert sys.getswitchinterval() == before


def test_ops_quarantine_is_analyzed_when_a_run_adds_many_rows_to_it(warehouse_url, landing):
    """As autovacuum would: over 50 rows + 10 % of the rows its statistics count (never analyzed: always)."""
    from corridor.ingest import worth_analyzing

    assert worth_analyzing(0, -1) and worth_analyzing(51, 0) and worth_analyzing(1051, 10_000)
    assert not worth_analyzing(50, 0) and not worth_analyzing(1050, 10_000)

    def counted() -> tuple[float, int]:
        with psycopg.connect(warehouse_url) as conn:
            return conn.execute("select (select reltuples from pg_class where oid = 'ops.quarantine'::regclass),"
                                " (select count(*) from ops.quarantine)").fetchone()

    assert counted()[0] < 0  # never analyzed
    ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    tuples, rows = counted()
    assert rows > 0 and tuples == rows  # analyzed
    with psycopg.connect(warehouse_url, autocommit=True) as conn:  # statistics counting many more rows
        conn.execute("update pg_class set reltuples = %s where oid = 'ops.quarantine'::regclass", (rows * 100,))
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert 0 < summary.rows_quarantined and not worth_analyzing(summary.rows_quarantined, rows * 100)
    assert counted() == (rows * 100, rows + summary.rows_quarantined)  # not analyzed: too few new rows


def test_the_loader_leaves_the_raw_tables_statistics_to_the_build(warehouse_url, landing):
    """The raw tables are analyzed by the dbt build (dbt_project/macros/analyze_raw_tables.sql), not after each
    feed; the load ledger still is. Autovacuum is off for the raw table: only an ANALYZE sets its reltuples."""
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("alter table raw.bank_loans set (autovacuum_enabled = off)")
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert summary.rows_loaded > 0
    assert scalar(warehouse_url, "select reltuples from pg_class where oid = 'raw.bank_loans'::regclass") < 0
    assert scalar(warehouse_url, "select reltuples from pg_class where oid = 'ops.load_ledger'::regclass") == len(
        summary.files)


def test_quarantine_json_of_text_cells_is_the_escaped_records():
    """quarantine_json skips escape_unstorable for a record of text cells without an unstorable character:
    the same JSON as escaping it first, for any record."""
    import json
    from datetime import date
    from decimal import Decimal

    from corridor.feeds._rows import escape_unstorable
    from corridor.ingest import _jsonable, quarantine_json

    records = [{"合同名称": "智能传感器", "买方": None, "c": ""}, {"a": "x\x00y"}, {"a\x00": "x"}, {"a": "\ud800"},
               {"a": 1.5, "b": "x"}, {"a": float("nan")}, {1: "x"}, {True: "x"}, {"a": ["x", "\x00"]},
               {"a": {"b": "\x00"}}, ["x", "\x00", None], {"d": date(2021, 3, 1), "n": Decimal("1.50")}, {}]
    for record in records:
        expected = json.dumps(escape_unstorable(record), ensure_ascii=False, allow_nan=False, default=_jsonable)
        assert quarantine_json(record) == expected, record


def _worker_pids(pool) -> set[int]:
    return {p.pid for p in pool._processes.values()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_feeds_of_a_process_share_one_pool_of_parse_workers_closed_at_the_end(warehouse_url, landing,
                                                                                     monkeypatch):
    """The first feed that parses in workers starts them; the following feeds of the process parse in the same
    (warm) workers, whatever they have to parse; close_parse_pool ends them."""
    import time

    from corridor import ingest

    monkeypatch.setenv("CORRIDOR_INGEST_WORKERS", "2")
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    ingest.close_parse_pool()
    started: list = []
    real_get = ingest._PARSE_POOL.get
    monkeypatch.setattr(ingest._PARSE_POOL, "get", lambda workers: started.append(workers) or real_get(workers))
    try:
        ingest_feed(warehouse_url, "district", landing, pii_key=TEST_PII_KEY)
        pool = ingest._PARSE_POOL.pool
        assert pool is not None and ingest._PARSE_POOL.warm(2)
        pids = _worker_pids(pool)
        assert len(pids) == 2
        monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 10**12)  # too little to start workers for...
        for feed in ("techmarket", "bank", "hr"):
            summary = ingest_feed(warehouse_url, feed, landing, pii_key=TEST_PII_KEY)
            assert summary.count("loaded") and not summary.rejected
        # ...but they were warm: the same pool, the same two processes, used by every feed
        assert started == [2, 2, 2, 2] and ingest._PARSE_POOL.pool is pool and _worker_pids(pool) == pids
    finally:
        ingest.close_parse_pool()
    assert ingest._PARSE_POOL.pool is None
    deadline = time.monotonic() + 30  # a bound on waiting, not a speed assertion
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), f"workers {pids} outlived close_parse_pool"


def test_a_broken_pool_of_parse_workers_costs_no_file_and_the_next_feed_gets_a_new_one(pg_admin_url, landing,
                                                                                          monkeypatch):
    """A worker killed mid-feed: the loader parses the remaining batches itself (the same ledger, rows and
    quarantine as a load without workers); the broken pool is dropped and the next feed starts a new one."""
    from corridor import db, ingest
    from tests.conftest import _new_database

    def load(kill: bool) -> list:
        url = _new_database(pg_admin_url)
        db.ensure_schema(url)
        killed = []
        real_take = ingest.Prefetcher.take

        def take_then_kill(self, path):
            if kill and not killed and self.shared and self.pool is not None:
                killed.append(self.pool)
                os.kill(next(iter(_worker_pids(self.pool))), signal.SIGKILL)
            return real_take(self, path)

        monkeypatch.setattr(ingest.Prefetcher, "take", take_then_kill)
        summary = ingest_feed(url, "techmarket", landing, pii_key=TEST_PII_KEY)
        assert summary.count("loaded") + summary.count("duplicate") == len(summary.files) and not summary.rejected
        if kill:
            assert killed and ingest._PARSE_POOL.pool is not killed[0]
            ingest_feed(url, "bank", landing, pii_key=TEST_PII_KEY)
            assert ingest._PARSE_POOL.pool not in (None, killed[0])  # a new pool for the next feed
        with psycopg.connect(url) as conn:
            return [conn.execute("select feed, file_name, status, rows_received, rows_loaded, rows_quarantined"
                                 " from ops.load_ledger where feed = 'techmarket' order by ledger_id").fetchall(),
                    conn.execute("select md5(string_agg(t::text, '|' order by t::text)) from raw.techmarket_contracts"
                                 " as t").fetchone(),
                    conn.execute("select file_name, source_row, rule_code, message, record from ops.quarantine"
                                 " where feed = 'techmarket' order by 1, 2, 3").fetchall()]

    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    try:
        monkeypatch.setenv("CORRIDOR_INGEST_WORKERS", "2")
        broken = load(kill=True)
        monkeypatch.setenv("CORRIDOR_INGEST_WORKERS", "1")
        assert broken == load(kill=False)
    finally:
        ingest.close_parse_pool()


def test_files_wait_while_a_dbt_command_writes_and_the_log_says_so(warehouse_url, tmp_path, caplog):
    """A dbt command that writes holds the load ledger's lock (db.LEDGER_LOCK): no file is committed while it runs
    (it must not read a file whose ledger id is below one it has read already); the loader waits, then says how
    long."""
    import threading
    import time

    from corridor import transform

    generate(tmp_path / "landing", seed=11, scale="city", start="2021-01", end="2021-01", feeds=("bank",))
    files = discover(tmp_path / "landing", "bank")
    outcome: list = []
    caplog.set_level(logging.INFO, logger="corridor.ingest")
    with transform.build_lock(warehouse_url, ["build"]):
        loading = threading.Thread(target=lambda: outcome.append(
            ingest_feed(warehouse_url, "bank", tmp_path / "landing", pii_key=TEST_PII_KEY)))
        loading.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if awaits_advisory_lock(warehouse_url):
                break
            assert loading.is_alive(), "the files were loaded while a dbt command was writing the warehouse"
            time.sleep(0.05)
        else:
            raise AssertionError("the loader did not come to wait in 120 s")
        time.sleep(0.5)
        assert scalar(warehouse_url, "select count(*) from ops.load_ledger") == 0
        said = [r.getMessage() for r in caplog.records if "dbt command" in r.getMessage()]
        assert said == [f"bank/{files[0].name}: a dbt command is writing the warehouse: the file waits for it"
                        " (loading pauses while one runs)"]  # said before it waits
    loading.join(120)
    assert outcome and outcome[0].count("loaded") == len(files)
    said = [r.getMessage() for r in caplog.records if "dbt command" in r.getMessage()]
    assert len(said) == 2 and said[1].startswith(f"bank/{files[0].name}: waited ") and said[1].endswith(
        " s for the dbt command"), said


def test_a_warehouse_made_when_the_platform_category_was_required_takes_it_optional(warehouse_url):
    """A 撤销 or 更新 may name a platform by its 平台编号 alone (spec §1): raw.district_platforms of a warehouse
    made before held 平台类别 not null, and would refuse such a row's file; the schema's set-up drops that."""
    from corridor import db

    def required() -> bool:
        return scalar(warehouse_url, "select attnotnull from pg_attribute where attrelid ="
                      " 'raw.district_platforms'::regclass and attname = 'platform_category'")

    assert not required()
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("alter table raw.district_platforms alter column platform_category set not null")
    assert required()
    db.ensure_schema(warehouse_url)
    assert not required()
