"""What the gate has validated, recorded in the warehouse: ``ops.quality_gate_files``.

The raw tables are append-only and each row names its file (``ledger_id``). A
passing gate records every loaded file whose rows it validated; the next gate
validates the raw rows of the files loaded since (``catalog.due_ledger_ids_sql``:
loaded, not recorded), and the tables built from them (marts, KPIs) whole.
A gate that fails records nothing, so its files stay due and keep blocking
until they pass. A full run forgets the record first: every file is due, and
the raw suites read whole tables.

One gate at a time per warehouse: a session-level advisory lock, held for the run.
"""

from __future__ import annotations

from datetime import datetime

from corridor.quality.catalog import VALIDATED_FILES_TABLE, due_ledger_ids_sql

# pg_advisory_lock key: "corridor quality gate"
LOCK_KEY = 0x636F_7172_6761_7465 & 0x7FFF_FFFF_FFFF_FFFF

DDL = f"""
create table if not exists {VALIDATED_FILES_TABLE} (
    ledger_id    bigint primary key,   -- ops.load_ledger (no foreign key: the ledger's rows may be removed)
    validated_at timestamptz not null  -- the passing gate's checked_at
)
"""


def ensure_table(url_or_conn) -> None:
    """Create ``ops.quality_gate_files`` when missing and (re)define the ``@due`` views.

    Given a URL, under the gate's lock; given a connection, the caller holds it.
    """
    import psycopg

    if isinstance(url_or_conn, str):
        with psycopg.connect(url_or_conn, autocommit=True) as conn:
            lock(conn)
            try:
                _ensure(conn)
            finally:
                unlock(conn)
    else:
        _ensure(url_or_conn)


def _ensure(conn) -> None:
    """The record, and one view per incremental suite over the rows of its files not validated yet."""
    from psycopg import sql

    from corridor.quality import catalog

    exists = conn.execute("select to_regclass(%s) is not null", (VALIDATED_FILES_TABLE,)).fetchone()[0]
    if not exists:  # create table if not exists still takes a lock and may race: ask first
        conn.execute("create schema if not exists ops")
        conn.execute(DDL)
    for spec in catalog.all_suites():
        if spec.incremental:  # cheap, and keeps the view in step with the catalogue
            conn.execute(sql.SQL("create or replace view {} as {}").format(
                sql.Identifier(catalog.DUE_VIEW_SCHEMA, catalog.due_view(spec)), sql.SQL(catalog.due_rows_sql(spec))))


def lock(conn) -> None:
    conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))


def unlock(conn) -> None:
    conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))


def forget(conn) -> None:
    """A full run: no file counts as validated any more (until this run passes)."""
    conn.execute(f"delete from {VALIDATED_FILES_TABLE}")


def any_validated(conn) -> bool:
    """Has a passing gate recorded any file? (No: every loaded file is due, the raw tables are validated whole.)"""
    return conn.execute(f"select exists (select 1 from {VALIDATED_FILES_TABLE})").fetchone()[0]


def due_files(conn) -> list[tuple[int, str, str, int]]:
    """``(ledger_id, feed, file_name, rows_loaded)`` of every loaded file not validated yet."""
    return conn.execute(
        "select ledger_id, feed, file_name, rows_loaded from ops.load_ledger"
        f" where ledger_id in ({due_ledger_ids_sql()}) order by ledger_id").fetchall()


def has_rows(conn, schema: str, table: str, ledger_ids: list[int]) -> bool:
    """Has ``schema.table`` rows of these files?"""
    from psycopg import sql

    if not ledger_ids:
        return False
    query = sql.SQL("select exists (select 1 from {} where ledger_id = any(%s))").format(sql.Identifier(schema, table))
    return conn.execute(query, (ledger_ids,)).fetchone()[0]


def record(conn, ledger_ids: list[int], validated_at: datetime) -> None:
    """The passing gate's files: validated, not to be validated again unless a full run is asked for."""
    if ledger_ids:
        conn.execute(f"insert into {VALIDATED_FILES_TABLE} (ledger_id, validated_at)"
                     " select unnest(%s::bigint[]), %s on conflict (ledger_id) do nothing",
                     (ledger_ids, validated_at))
