"""Incidents injected into real components: the warehouse's locks and timeouts under the loader (embedded
PostgreSQL), a mail relay that ends the session mid-delivery (aiosmtpd)."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from corridor.demo import generate
from corridor.ingest import discover, ingest_feed
from tests.conftest import TEST_PII_KEY, scalar


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("landing")
    generate(landing, seed=7, scale="city", start="2021-01", end="2021-02")
    return landing


@pytest.fixture
def landing(small_landing, tmp_path) -> Path:
    copy = tmp_path / "landing"
    shutil.copytree(small_landing, copy)
    return copy


def _ledger(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select file_name, status, rows_received, rows_loaded, rows_quarantined"
                            " from ops.load_ledger order by ledger_id").fetchall()


def test_a_lock_timeout_stops_the_run_instead_of_rejecting_every_file(warehouse_url, landing):
    """A raw table locked by another session and a lock_timeout on the warehouse (an operator's ALTER TABLE or
    VACUUM FULL, a BI session's LOCK): each file's COPY was cancelled after the timeout and the file recorded as
    `rejected`, "the database refused it", one after the other (every file waiting its timeout), and the files
    after a transient failure were committed before it, out of delivery order. The run now stops at the first
    such file, rejects nothing, says it is not the file's fault and what to do; the next run loads every file."""
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        database = conn.info.dbname
        conn.execute(sql.SQL("alter database {} set lock_timeout = '1s'").format(sql.Identifier(database)))
    files = discover(landing, "bank")
    holder = psycopg.connect(warehouse_url)
    try:
        holder.execute("lock table raw.bank_loans in access exclusive mode")
        with pytest.raises(RuntimeError) as trouble:  # corridor.ingest.WarehouseTrouble
            ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    finally:
        holder.close()
    message = str(trouble.value)
    assert message.startswith(f"bank/{files[0].name}: the warehouse did not take the file (LockNotAvailable: "
                              "canceling statement due to lock timeout)"), message
    assert "not the file's fault" in message and "run the ingest again" in message, message
    assert _ledger(warehouse_url) == []  # no file blamed, none loaded past it

    rerun = ingest_feed(warehouse_url, "bank", landing, pii_key=TEST_PII_KEY)
    assert rerun.count("loaded") == len(files) and not rerun.rejected
    ledger = _ledger(warehouse_url)
    assert [r[0] for r in ledger] == [p.name for p in files]
    assert scalar(warehouse_url, "select count(*) from raw.bank_loans") == sum(r[3] for r in ledger)
