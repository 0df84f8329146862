"""Hostile and careless landing files, each among good files, on real PostgreSQL.

Every case asserts what issue 9 asks: the good files load, the bad file has a
``rejected`` ledger row (or its row is in ``ops.quarantine``) whose message
names the file and the cause, received = loaded + quarantined per file, and
what the run reports.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from corridor.demo import generate
from corridor.feeds import FEEDS
from corridor.ingest import LandingFolderMissing, Loader, discover, ingest_feed
from corridor.orchestration.tasks import fail_on_rejections
from tests.conftest import TEST_PII_KEY, scalar


@pytest.fixture(scope="module")
def good_landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("landing")
    generate(landing, seed=11, scale="city", start="2021-01", end="2021-01")
    return landing


@pytest.fixture
def landing(good_landing, tmp_path) -> Path:
    copy = tmp_path / "landing"
    shutil.copytree(good_landing, copy)
    return copy


def ledger_rows(url: str, feed: str) -> dict[str, tuple]:
    """file name -> (status, received, loaded, quarantined, message) of the feed's latest ledger rows."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("select file_name, status, rows_received, rows_loaded, rows_quarantined, message"
                            " from ops.load_ledger where feed = %s order by ledger_id", (feed,)).fetchall()
    return {r[0]: r[1:] for r in rows}


def quarantined(url: str, file_name: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select source_row, rule_code, message, record from ops.quarantine"
                            " where file_name = %s order by source_row", (file_name,)).fetchall()


def assert_good_files_loaded(url: str, landing: Path, feed: str, *bad: str) -> None:
    rows = ledger_rows(url, feed)
    for path in discover(landing, feed):
        if path.name in bad:
            continue
        status, received, loaded, quar, _ = rows[path.name]
        assert status == "loaded" and received == loaded + quar, path.name


def assert_reconciles(url: str) -> None:
    with psycopg.connect(url) as conn:
        bad = conn.execute("select file_name from ops.load_ledger where status = 'loaded'"
                           " and rows_received <> rows_loaded + rows_quarantined").fetchall()
        per_file = conn.execute(
            "select l.file_name from ops.load_ledger l left join ops.quarantine q using (ledger_id)"
            " where l.status = 'loaded' group by l.ledger_id, l.file_name, l.rows_quarantined"
            " having count(q.quarantine_id) <> l.rows_quarantined").fetchall()
    assert bad == [] and per_file == []


# -- building hostile files from good ones -------------------------------------------

def tech_file(landing: Path, name: str, rows: list[dict[str, str]]) -> Path:
    """A techmarket export whose rows are a real export's first row with ``rows``' changes."""
    source = discover(landing, "techmarket")[0]
    reader = csv.reader(io.StringIO(source.read_text(encoding="utf-8-sig"), newline=""))
    header, base = next(reader), next(reader)
    out = io.StringIO(newline="")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    for i, change in enumerate(rows):
        row = dict(zip(header, base, strict=True))
        row["合同登记号"] = f"99990000000{i:05d}"
        row.update(change)
        writer.writerow(list(row.values()))
    path = landing / "techmarket" / name
    path.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    return path


def talent_file(landing: Path, name: str, lines: list[str]) -> Path:
    path = landing / "hr" / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def talent_base(landing: Path) -> dict:
    first = discover(landing, "hr")[0].read_text(encoding="utf-8").splitlines()[0]
    return json.loads(first)


def talent_line(base: dict, record_id: str, **changes) -> str:
    return json.dumps({**base, "record_id": record_id, **changes}, ensure_ascii=False)


# -- 1. values the database cannot store -------------------------------------------------

def test_nul_byte_in_a_csv_field_quarantines_that_row_only(warehouse_url, landing):
    bad = tech_file(landing, "tech_contracts_20210130.csv",
                    [{}, {"合同名称": "智能\x00传感器开发"}, {}])
    summary = ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    assert not summary.rejected
    assert ledger_rows(warehouse_url, "techmarket")[bad.name][:4] == ("loaded", 3, 2, 1)
    [(row, rule, message, record)] = quarantined(warehouse_url, bad.name)
    assert (row, rule) == (3, "invalid_character")
    assert bad.name in message and "合同名称" in message and "NUL" in message
    assert record["合同名称"] == "智能\\u0000传感器开发"  # kept, escaped, readable
    assert_good_files_loaded(warehouse_url, landing, "techmarket", bad.name)
    assert_reconciles(warehouse_url)


def test_nul_byte_in_a_gb18030_bank_file_quarantines_that_row(warehouse_url, landing):
    source = discover(landing, "bank")[0]
    lines = source.read_bytes().split(b"\r\n" if b"\r\n" in source.read_bytes() else b"\n")
    lines[1] = lines[1].replace(b",", b"\x00,", 1)
    bad = landing / "bank" / source.name.replace("202101", "202102")
    bad.write_bytes(b"\n".join(lines).replace(b"2021-01", b"2021-02"))
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert bad.name not in {f.file_name for f in summary.rejected}
    rules = {rule for _, rule, _, _ in quarantined(warehouse_url, bad.name)}
    assert "invalid_character" in rules
    assert_reconciles(warehouse_url)


@pytest.mark.parametrize(("field", "raw", "rule", "words"), [
    ("title", '"高级\\u0000工程师"', "invalid_character", "NUL"),
    ("title", '"\\ud800"', "invalid_character", "surrogate U+D800"),
    ("team_id", "NaN", "invalid_json", "NaN is not a valid JSON value"),
    ("team_id", "Infinity", "invalid_json", "Infinity is not a valid JSON value"),
    ("title", "-Infinity", "invalid_json", "-Infinity is not a valid JSON value"),
])
def test_unstorable_json_values_quarantine_the_line(warehouse_url, landing, field, raw, rule, words):
    base = talent_base(landing)
    good = talent_line(base, "T-GOOD-1")
    hostile = talent_line(base, "T-BAD-1")
    hostile = hostile.replace(f'"{field}": ' + json.dumps(base[field], ensure_ascii=False), f'"{field}": {raw}') \
        if field in base else hostile[:-1] + f', "{field}": {raw}}}'
    assert raw in hostile
    bad = talent_file(landing, "talent_202102.jsonl", [good, hostile])
    summary = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    assert not summary.rejected
    assert ledger_rows(warehouse_url, "hr")[bad.name][:4] == ("loaded", 2, 1, 1)
    [(line, got_rule, message, record)] = quarantined(warehouse_url, bad.name)
    assert (line, got_rule) == (2, rule)
    assert bad.name in message and words in message
    assert json.dumps(record)  # the record is valid jsonb, read back
    with psycopg.connect(warehouse_url) as conn:
        teams = conn.execute("select team_id from raw.hr_talents where team_id in ('nan', 'NaN', 'inf')").fetchall()
    assert teams == []  # a NaN never becomes a team
    assert_good_files_loaded(warehouse_url, landing, "hr", bad.name)


def test_a_database_error_inside_copy_rejects_that_file_only_naming_it(warehouse_url, landing):
    from corridor.feeds import techmarket

    victim = discover(landing, "techmarket")[2].name

    def parse(path, *, pii_key, sink=None):
        if path.name != victim:
            return techmarket.parse(path, pii_key=pii_key, sink=sink)

        class Corrupting:  # a parser bug: a value the column's type refuses
            def add(self, table, row):
                sink.add(table, {**row, "registration_date": "not a date"})

            def quarantine(self, entry):
                sink.quarantine(entry)

        return techmarket.parse(path, pii_key=pii_key, sink=Corrupting())

    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        summary = Loader(conn, "techmarket", pii_key=TEST_PII_KEY, parse=parse,
                         landing_dir=landing).load_all(discover(landing, "techmarket"))
    assert [f.file_name for f in summary.rejected] == [victim]
    message = summary.rejected[0].message
    assert victim in message and "database refused it" in message and "date" in message.lower()
    rows = ledger_rows(warehouse_url, "techmarket")
    assert rows[victim][0] == "rejected" and rows[victim][4] == message
    assert sum(r[0] == "loaded" for r in rows.values()) == len(discover(landing, "techmarket")) - 1
    assert scalar(warehouse_url, "select count(*) from raw.techmarket_contracts c join ops.load_ledger l"
                                 " using (ledger_id) where l.file_name = %s", (victim,)) == 0
    with pytest.raises(Exception, match=victim):  # the task then fails naming the file
        fail_on_rejections(summary.as_dict())


# -- 2. links, devices, FIFOs, folders ---------------------------------------------------

def all_text_in_database(url: str) -> str:
    with psycopg.connect(url) as conn:
        tables = conn.execute("select table_schema, table_name from information_schema.tables"
                              " where table_schema in ('raw', 'ops') and table_type = 'BASE TABLE'").fetchall()
        return "\n".join(conn.execute(f'select coalesce(string_agg(t::text, \'\n\'), \'\') from "{s}"."{n}" t')
                         .fetchone()[0] for s, n in tables)


def test_a_symlink_to_a_file_outside_the_landing_folder_is_rejected_unread(warehouse_url, landing, tmp_path):
    secret = tmp_path / "pii.key"
    secret.write_text("SECRET-KEY-7f3a9c\n")
    link = landing / "hr" / "talent_202102.jsonl"
    link.symlink_to(secret)
    summary = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    [rejected] = summary.rejected
    assert rejected.file_name == link.name and "symbolic link" in rejected.message
    assert ledger_rows(warehouse_url, "hr")[link.name][0] == "rejected"
    assert "SECRET-KEY-7f3a9c" not in all_text_in_database(warehouse_url)
    assert_good_files_loaded(warehouse_url, landing, "hr", link.name)


def test_a_symlink_inside_the_landing_folder_is_not_followed_either(warehouse_url, landing):
    target = discover(landing, "bank")[0]
    link = landing / "bank" / target.name.replace("202101", "202102")
    link.symlink_to(target)
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert [f.file_name for f in summary.rejected] == [link.name]
    assert "symbolic link" in summary.rejected[0].message


def test_fifo_and_folder_named_like_feed_files_are_rejected_saying_what_they_are(warehouse_url, landing):
    fifo = landing / "hr" / "talent_202102.jsonl"
    os.mkfifo(fifo)  # opening it would block the loader forever
    folder = landing / "hr" / "talent_202103.jsonl"
    folder.mkdir()
    summary = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    reasons = {f.file_name: f.message for f in summary.rejected}
    assert set(reasons) == {fifo.name, folder.name}
    assert "named pipe (FIFO)" in reasons[fifo.name] and "directory" in reasons[folder.name]
    assert_good_files_loaded(warehouse_url, landing, "hr", fifo.name, folder.name)


# -- 3. missing, wrong and silent landing folders ---------------------------------------------

def test_a_missing_landing_folder_fails_naming_the_path(warehouse_url, landing):
    shutil.rmtree(landing / "hr")
    with pytest.raises(LandingFolderMissing, match=rf"{landing / 'hr'}: .*does not exist"):
        ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)


def test_a_landing_folder_that_is_a_file_fails_naming_the_path(warehouse_url, landing):
    shutil.rmtree(landing / "bank")
    (landing / "bank").write_text("oops")
    with pytest.raises(LandingFolderMissing, match="is not a folder"):
        ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)


def test_an_empty_or_silent_feed_is_a_warning_in_the_summary(warehouse_url, landing):
    for p in (landing / "hr").iterdir():
        p.unlink()
    empty = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    assert empty.files == [] and empty.warnings == ["hr: nothing has ever been loaded from this feed"]
    assert empty.as_dict()["warnings"] == empty.warnings

    ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    fresh = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert fresh.warnings == []
    later = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY,
                        as_of=datetime.now(UTC) + timedelta(days=60))
    [warning] = later.warnings
    assert warning.startswith("bank: nothing new received for 60 days")


# -- 4. size limits -------------------------------------------------------------------------

def test_an_over_long_csv_record_is_quarantined_with_its_head_and_length(warehouse_url, landing, monkeypatch):
    monkeypatch.setenv("CORRIDOR_MAX_RECORD_BYTES", "4096")
    monkeypatch.setenv("CORRIDOR_MAX_FIELD_CHARS", "200000")
    bad = tech_file(landing, "tech_contracts_20210130.csv", [{}, {"合同名称": "长" * 100_000}, {}])
    summary = ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    assert not summary.rejected
    assert ledger_rows(warehouse_url, "techmarket")[bad.name][:4] == ("loaded", 3, 2, 1)
    [(row, rule, message, record)] = quarantined(warehouse_url, bad.name)
    assert (row, rule) == (3, "record_too_long")
    assert "CORRIDOR_MAX_RECORD_BYTES" in message and bad.name in message
    assert record["record_bytes"] > 300_000 and len(record["record_head"].encode()) <= 4096


def test_an_over_long_field_quarantines_the_row_not_the_file(warehouse_url, landing):
    bad = tech_file(landing, "tech_contracts_20210130.csv", [{}, {"合同名称": "x" * 140_000}])
    summary = ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    assert not summary.rejected
    [(row, rule, message, record)] = quarantined(warehouse_url, bad.name)
    assert (row, rule) == (3, "field_too_long") and "CORRIDOR_MAX_FIELD_CHARS" in message
    assert len(json.dumps(record)) < 20_000
    assert ledger_rows(warehouse_url, "techmarket")[bad.name][:4] == ("loaded", 2, 1, 1)


def test_a_record_with_too_many_fields_is_quarantined_small(warehouse_url, landing):
    bad = tech_file(landing, "tech_contracts_20210130.csv", [{}])
    with bad.open("ab") as fh:
        fh.write(b",".join([b'"a"'] * 5000) + b"\r\n")
    ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    [(row, rule, message, record)] = quarantined(warehouse_url, bad.name)
    assert (row, rule) == (3, "too_many_fields") and "5,000 fields" in message
    assert len(json.dumps(record)) < 20_000


def test_an_over_long_json_line_keeps_its_head_masked(warehouse_url, landing, monkeypatch):
    monkeypatch.setenv("CORRIDOR_MAX_RECORD_BYTES", "8192")
    base = talent_base(landing)
    id_number = base["id_number"]
    long_line = talent_line(base, "T-LONG", title="教授" * 20_000)
    bad = talent_file(landing, "talent_202102.jsonl", [talent_line(base, "T-OK"), long_line])
    ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    [(line, rule, _, record)] = quarantined(warehouse_url, bad.name)
    assert (line, rule) == (2, "record_too_long")
    assert record["record_bytes"] == len(long_line.encode()) + 1
    assert id_number not in json.dumps(record, ensure_ascii=False)
    assert ledger_rows(warehouse_url, "hr")[bad.name][:4] == ("loaded", 2, 1, 1)


def test_a_file_over_the_size_limit_is_rejected_unread(warehouse_url, landing, monkeypatch):
    monkeypatch.setenv("CORRIDOR_MAX_FILE_BYTES", "2000")
    summary = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    big = [p.name for p in discover(landing, "bank") if p.stat().st_size > 2000]
    assert big and sorted(f.file_name for f in summary.rejected) == sorted(big)
    assert all("CORRIDOR_MAX_FILE_BYTES" in f.message for f in summary.rejected)


# -- 5. names and connections ------------------------------------------------------------------

def test_file_names_with_non_ascii_digits_are_rejected(warehouse_url, landing):
    source = discover(landing, "techmarket")[0]
    fake = landing / "techmarket" / "tech_contracts_２０２１０１３０.csv"
    shutil.copy(source, fake)
    trailing = landing / "techmarket" / "tech_contracts_20210131.csv\n"
    shutil.copy(source, trailing)
    summary = ingest_feed(warehouse_url, "techmarket", landing, pii_key=TEST_PII_KEY)
    assert {f.file_name for f in summary.rejected} == {fake.name, trailing.name}
    assert all("does not match tech_contracts_{YYYYMMDD}.csv" in f.message for f in summary.rejected)


def corridor_cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url}
    return subprocess.run([sys.executable, "-m", "corridor.cli", *args], capture_output=True, text=True, env=env)


def test_an_unreachable_warehouse_is_one_line_without_the_password():
    proc = corridor_cli("db", "url", url="postgresql://etl:s3cr3t-pw@127.0.0.1:1/corridor")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "127.0.0.1:1/corridor" in lines[0] and "refused" in lines[0].lower()
    assert "s3cr3t-pw" not in proc.stderr + proc.stdout


def test_a_missing_database_is_one_line_naming_it(pg_admin_url):
    from corridor.db import with_database

    proc = corridor_cli("ingest", "bank", url=with_database(pg_admin_url, "no_such_db"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no_such_db" in lines[0] and "does not exist" in lines[0]



def test_a_setting_that_cannot_be_used_is_one_line_naming_it(tmp_path):
    """A bad environment variable stops any command before it starts, in one line naming the variable (not a
    traceback); a connection string that is not a URL is not echoed (it may hold a password)."""
    cases = [
        (["ingest", "hr"], {"CORRIDOR_MAX_FILE_BYTES": "abc"}, "CORRIDOR_MAX_FILE_BYTES='abc' is not a whole number"),
        (["ingest"], {"CORRIDOR_MAX_FIELDS": "-3"}, "CORRIDOR_MAX_FIELDS='-3' must be positive"),
        (["run"], {"CORRIDOR_DEMO_SCALE": "huge"}, "CORRIDOR_DEMO_SCALE='huge' is not one of city, province, national"),
        (["run"], {"CORRIDOR_DEMO_SEED": "seven"}, "CORRIDOR_DEMO_SEED='seven' is not a whole number"),
        (["ingest", "bank"], {"CORRIDOR_WAREHOUSE_URL": "host=db password=s3cr3t-pw"},
         "CORRIDOR_WAREHOUSE_URL is not a PostgreSQL URL"),
    ]
    for args, settings, expected in cases:
        env = {**os.environ, "CORRIDOR_STATE_DIR": str(tmp_path / "state"),
               "CORRIDOR_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/none", **settings}
        proc = subprocess.run([sys.executable, "-m", "corridor.cli", *args], capture_output=True, text=True, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"Error: {expected}"), \
            (args, settings, proc.stderr[-2000:])
        assert "s3cr3t-pw" not in proc.stdout + proc.stderr


def test_an_unknown_feed_is_refused_by_the_command_line_naming_the_feeds():
    proc = corridor_cli("ingest", "hr", "nosuchfeed", url="postgresql://nobody@127.0.0.1:1/none")
    assert proc.returncode == 2, proc.stderr
    assert "'nosuchfeed' is not one of 'district', 'techmarket', 'bank', 'hr'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_command_line_imports_the_scorecards_only_for_their_commands(tmp_path):
    """`corridor dbt build` and `corridor ingest` do not pay for WeasyPrint and the renderers (issue 11:
    ~0.3-0.5 s of every command's start-up); `corridor scorecards …` still finds its commands."""
    probe = "import sys, corridor.cli; print(sorted(m for m in sys.modules if m.startswith('corridor.scorecards')))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    listed = corridor_cli("--help", url="postgresql://nobody@127.0.0.1:1/none")
    assert listed.returncode == 0 and "scorecards  Scorecards of the plan's rhythm" in listed.stdout
    scorecards = corridor_cli("scorecards", "--help", url="postgresql://nobody@127.0.0.1:1/none")
    assert scorecards.returncode == 0, scorecards.stderr
    assert {"editions", "publish", "render"} <= set(scorecards.stdout.split())


def test_every_feed_parser_takes_a_sink():
    import inspect

    from corridor.feeds.base import parser_for

    for feed in FEEDS:
        assert "sink" in inspect.signature(parser_for(feed)).parameters, feed


def test_a_file_name_that_is_not_utf8_is_rejected_not_fatal(warehouse_url, landing):
    raw_name = os.fsencode(landing / "hr") + b"/talent_2021\xff\xfe.jsonl"
    with open(raw_name, "wb") as fh:
        fh.write(b"{}\n")
    summary = ingest_feed(warehouse_url, "hr", landing, pii_key=TEST_PII_KEY)
    [rejected] = summary.rejected
    assert "does not match talent_{YYYYMM}.jsonl" in rejected.message
    assert "talent_2021\\udcff\\udcfe.jsonl" in ledger_rows(warehouse_url, "hr")  # stored escaped, readable
    assert_good_files_loaded(warehouse_url, landing, "hr", rejected.file_name)


def test_a_number_setting_of_one_module_is_checked_where_it_is_read(monkeypatch):
    """Workers and ports are read where they are used, through config.env_int: the default when unset, the value
    when it is a whole number in range, else ConfigError naming the variable (one line on the command line)."""
    from corridor.config import ConfigError
    from corridor.ingest import ingest_workers
    from corridor.scorecards.publish import publish_workers

    for name, read, lowest in (("CORRIDOR_INGEST_WORKERS", ingest_workers, 1),
                               ("CORRIDOR_PUBLISH_WORKERS", publish_workers, 0)):
        monkeypatch.delenv(name, raising=False)
        assert read() >= lowest
        monkeypatch.setenv(name, "3")
        assert read() == 3
        monkeypatch.setenv(name, str(lowest))
        assert read() == lowest
        for bad, says in (("two", "is not a whole number"), (str(lowest - 1), f"must be {lowest} or more")):
            monkeypatch.setenv(name, bad)
            with pytest.raises(ConfigError, match=rf"^{name}='{bad}' {says}$"):
                read()


# Every on/off CORRIDOR_* switch, the value it has when unset, and how to read it (config.env_flag).
ON_OFF_SWITCHES = ("CORRIDOR_INGEST_FAST", "CORRIDOR_GATE_FULL", "CORRIDOR_DBT_KEEP_CONNECTIONS")
SWITCH_DEFAULTS = {"CORRIDOR_INGEST_FAST": True, "CORRIDOR_GATE_FULL": False, "CORRIDOR_DBT_KEEP_CONNECTIONS": True}


def switch_values(name: str, values: list[str | None]) -> list:
    """What the module reading switch ``name`` makes of each value (None: unset), or the ConfigError's message.
    The fast path reads its switch on import: a fresh interpreter reloads it for each value."""
    probe = f"""
import importlib, json, os, sys
from corridor.config import ConfigError
name, values = {name!r}, json.loads(sys.argv[1])

def read():
    if name == "CORRIDOR_INGEST_FAST":
        from corridor.feeds import _fast
        return importlib.reload(_fast).ENABLED
    if name == "CORRIDOR_GATE_FULL":
        from corridor.quality.gate import full_run
        return full_run()
    from dbt.adapters.postgres.connections import PostgresConnectionManager
    from corridor.transform import keep_dbt_connections
    keep_dbt_connections()
    return hasattr(PostgresConnectionManager, "_corridor_release")

out = []
for value in values:
    os.environ.pop(name, None)
    if value is not None:
        os.environ[name] = value
    try:
        out.append(read())
    except ConfigError as exc:
        out.append(str(exc))
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", probe, json.dumps(values)], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != name})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ON_OFF_SWITCHES)
def test_an_on_off_switch_takes_the_same_spellings_in_every_module(name):
    """1/true/yes/on and 0/false/no/off in any case (spaces around ignored); unset or blank: the switch's default.
    Before config.env_flag each module had its own: CORRIDOR_INGEST_FAST=off left the fast path on."""
    on, off = ["1", "true", "YES", "On", " on "], ["0", "false", "No", "OFF", " off "]
    default = SWITCH_DEFAULTS[name]
    values = [None, "", "  ", *on, *off]
    assert switch_values(name, values) == [default] * 3 + [True] * len(on) + [False] * len(off)


@pytest.mark.parametrize("name", ON_OFF_SWITCHES)
def test_a_wrong_on_off_value_is_a_config_error_naming_the_variable(name):
    for bad in ("maybe", "2", "enabled"):
        [message] = switch_values(name, [bad])
        assert message == f"{name}={bad!r} is not an on/off value (1/true/yes/on or 0/false/no/off)", message


def test_demo_verify_without_the_demos_manifest_or_warehouse_is_one_line(tmp_path):
    """`corridor demo verify` of a landing area the generator did not make names the manifest it lacks; with the
    manifest but no warehouse, it names the warehouse it cannot reach (each a traceback before)."""
    landing = tmp_path / "landing"
    landing.mkdir()
    env = {**os.environ, "CORRIDOR_STATE_DIR": str(tmp_path / "state"), "CORRIDOR_LANDING_DIR": str(landing),
           "CORRIDOR_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/none"}

    def verify() -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "corridor.cli", "demo", "verify"], capture_output=True,
                              text=True, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
        return lines

    [line] = verify()
    assert f"{landing / '_demo' / 'manifest.jsonl'} not found" in line and "corridor demo generate" in line
    (landing / "_demo").mkdir()
    (landing / "_demo" / "manifest.jsonl").write_text("", encoding="utf-8")
    [line] = verify()
    assert "cannot connect to the warehouse nobody@127.0.0.1:1/none" in line
