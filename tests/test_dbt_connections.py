"""A dbt node's connection serves its thread's next node (corridor.transform.keep_dbt_connections):
dbt-postgres's own connection manager on a real PostgreSQL, then whole builds counting the server's sessions."""

from __future__ import annotations

import multiprocessing
import os
import time
from types import SimpleNamespace

import psycopg
import pytest

from tests.conftest import ROOT


@pytest.fixture
def connections(warehouse_copy, monkeypatch):
    """dbt-postgres's connection manager for ``warehouse_copy``, as dbt makes one per invocation."""
    from dbt.adapters.postgres.connections import PostgresConnectionManager, PostgresCredentials

    from corridor.db import libpq_params

    params = libpq_params(warehouse_copy)
    credentials = PostgresCredentials(host=params["host"], port=int(params.get("port") or 5432), user=params["user"],
                                      password=params.get("password") or "", database=params["dbname"],
                                      schema="public")
    manager = PostgresConnectionManager(SimpleNamespace(credentials=credentials), multiprocessing.get_context("spawn"))
    yield manager
    manager.cleanup_all()
    monkeypatch.delenv("CORRIDOR_DBT_KEEP_CONNECTIONS", raising=False)
    from corridor import transform

    transform.keep_dbt_connections()  # the patch as the rest of the session has it


def _node(manager, name: str, statement: str):
    """What dbt does for a node: name the thread's connection, run a statement (psycopg2 opens a transaction)."""
    manager.set_connection_name(name)
    _, table = manager.execute(statement, fetch=True)
    return table


def _pid(manager, name: str) -> int:
    return int(_node(manager, name, "select pg_backend_pid() as pid").rows[0][0])


def test_a_nodes_connection_serves_the_next_node_clean(connections, monkeypatch):
    """Kept: the same backend for the next node, no transaction left open (a test's select, a failed
    statement's aborted transaction) and no temporary table of the node left in the session."""
    import psycopg2.extensions

    from corridor import transform

    monkeypatch.delenv("CORRIDOR_DBT_KEEP_CONNECTIONS", raising=False)
    transform.keep_dbt_connections()
    first = _pid(connections, "model.a")
    connections.begin()  # as dbt's incremental materialization: its new rows in a temporary table, committed
    _node(connections, "model.a", "create temporary table a__dbt_tmp as select 1 as x")
    connections.commit()
    connections.execute("begin")  # and a transaction left open (the connection's locks with it)
    _node(connections, "model.a", "select count(*) from a__dbt_tmp")
    handle = connections.get_thread_connection().handle
    assert handle.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    connections.release()
    assert handle.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert _pid(connections, "test.b") == first
    assert _node(connections, "test.b", "select to_regclass('pg_temp.a__dbt_tmp')::text as t").rows[0][0] is None
    connections.release()

    # a statement that failed: its transaction is aborted; the next node runs on the same backend all the same
    connections.set_connection_name("model.c")
    connections.execute("begin")
    with pytest.raises(Exception, match="division by zero"):
        connections.execute("select 1 / 0")
    assert handle.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    connections.release()
    assert _pid(connections, "model.d") == first
    assert _node(connections, "model.d", "select 2 as two").rows[0][0] == 2
    connections.release()

    # dbt's own release (CORRIDOR_DBT_KEEP_CONNECTIONS=0): a new backend for every node
    monkeypatch.setenv("CORRIDOR_DBT_KEEP_CONNECTIONS", "0")
    transform.keep_dbt_connections()
    connections.release()
    second = _pid(connections, "model.e")
    connections.release()
    assert second != first and _pid(connections, "model.f") != second


NODE_ROLE = "corridor_test_node_role"


def test_nothing_of_a_nodes_session_reaches_the_next_node(connections, warehouse_copy, monkeypatch):
    """A model's `set` (a pre-hook's or sql_header's work_mem, time zone, search path), an advisory lock, a
    LISTEN, a prepared statement: the thread's next node, on the same backend, sees none of them, but what a
    new connection sees; and the profile's role again, as dbt-postgres's open() sets it."""
    from corridor import transform

    monkeypatch.delenv("CORRIDOR_DBT_KEEP_CONNECTIONS", raising=False)
    transform.keep_dbt_connections()
    probe = ("select current_setting('work_mem') as w, current_setting('timezone') as tz,"
             " current_setting('search_path') as sp, current_user::text as u,"
             " (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as locks,"
             " (select count(*) from pg_listening_channels()) as listens,"
             " (select count(*) from pg_prepared_statements) as prepared")
    with psycopg.connect(warehouse_copy, autocommit=True) as admin:
        fresh = admin.execute(probe).fetchone()
        admin.execute(f"""do $$ begin create role {NODE_ROLE} nologin; exception when duplicate_object then null;
                          end $$""")
        admin.execute(f"grant {NODE_ROLE} to current_user")
    assert fresh[0] != "77MB" and fresh[1] != "Pacific/Apia" and fresh[3:] == (fresh[3], 0, 0, 0)

    def dirty_node(name: str) -> None:
        connections.set_connection_name(name)
        connections.begin()
        for statement in ("set work_mem = '77MB'", "set timezone = 'Pacific/Apia'", "set search_path = seeds",
                          "select pg_advisory_lock(724201)", "listen corridor_test_channel",
                          "prepare corridor_test_plan as select 1"):
            connections.execute(statement)
        connections.commit()  # a session's settings outlive the transaction that made them

    first = _pid(connections, "model.a")
    dirty_node("model.a")
    assert tuple(_node(connections, "model.a", probe).rows[0])[:3] == ("77MB", "Pacific/Apia", "seeds")
    connections.release()
    assert _pid(connections, "test.b") == first
    assert tuple(_node(connections, "test.b", probe).rows[0]) == tuple(fresh)
    connections.release()

    # a profile with a role: the next node runs under it again
    connections.profile.credentials.role = NODE_ROLE
    try:
        connections.set_connection_name("model.c")
        connections.release()
        connections.cleanup_all()  # a new connection, opened with the role
        assert _node(connections, "model.d", "select current_user::text as u").rows[0][0] == NODE_ROLE
        dirty_node("model.d")
        connections.execute("reset role")
        connections.release()
        row = tuple(_node(connections, "test.e", probe).rows[0])
        assert row == (*fresh[:3], NODE_ROLE, 0, 0, 0)
        connections.release()
    finally:
        connections.cleanup_all()
        connections.profile.credentials.role = None


def _sessions(url: str) -> int:
    time.sleep(1.0)  # a closed session is counted when its backend has exited
    with psycopg.connect(url) as conn:
        return int(conn.execute("select sessions from pg_stat_database where datname = current_database()")
                   .fetchone()[0])


def test_a_whole_build_opens_a_session_per_thread_not_per_node(warehouse_copy, monkeypatch, tmp_path):
    """A whole build on the copy (every node, as after a project change): a handful of server sessions kept,
    one per node without; the same kpi_values either way."""
    from corridor import transform
    from tests.conftest import point_dbt_at

    point_dbt_at(monkeypatch, warehouse_copy)
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    project = ROOT / "dbt_project"
    kpi = "select md5(string_agg(v::text, '|' order by v::text)) from kpi.kpi_values as v"
    counts = {}
    for keep in ("1", "0"):
        monkeypatch.setenv("CORRIDOR_DBT_KEEP_CONNECTIONS", keep)
        before = _sessions(warehouse_copy)
        result = transform.dbt(["build", "--full-refresh", "--target-path", str(tmp_path / keep), "--quiet"], project)
        opened = _sessions(warehouse_copy) - before - 1  # less _sessions' own
        with psycopg.connect(warehouse_copy) as conn:
            counts[keep] = (len(result.result.results), opened, conn.execute(kpi).fetchone()[0])
    nodes, kept, kpi_kept = counts["1"]
    assert nodes > 150 and counts["0"][0] == nodes
    assert kept <= 12, counts  # the two threads', dbt's master connection and corridor's own
    assert counts["0"][1] >= nodes * 0.8, counts
    assert kpi_kept == counts["0"][2]


def test_dbt_sessions_get_their_work_mem_beside_a_pgoptions_naming_maintenance_work_mem(pg_admin_url, monkeypatch):
    """set_dbt_env adds dbt's work_mem and jit to PGOPTIONS unless PGOPTIONS names them: a setting whose name
    merely ends in ``work_mem`` is another setting (db.merged_options, which the gate's URL uses too)."""
    from corridor import db, transform

    for var in db.dbt_env(pg_admin_url):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # restored after the test
    monkeypatch.setenv("PGOPTIONS", "-c maintenance_work_mem=99MB")
    monkeypatch.setenv("CORRIDOR_DBT_WORK_MEM", "21MB")
    monkeypatch.delenv("CORRIDOR_DBT_JIT", raising=False)
    transform.set_dbt_env(pg_admin_url)
    probe = "select current_setting('work_mem'), current_setting('maintenance_work_mem'), current_setting('jit')"
    with psycopg.connect(pg_admin_url) as conn:  # libpq reads PGOPTIONS
        assert conn.execute(probe).fetchone() == ("21MB", "99MB", "off")
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=7MB")
    transform.set_dbt_env(pg_admin_url)
    with psycopg.connect(pg_admin_url) as conn:
        assert conn.execute(probe).fetchone()[::2] == ("7MB", "off")  # PGOPTIONS' own work_mem is kept
