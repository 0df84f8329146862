"""A dbt node's connection serves its thread's next node (corridor.transform.keep_dbt_connections):
dbt-postgres's own connection manager on a real PostgreSQL, then whole builds counting the server's sessions."""

from __future__ import annotations

import multiprocessing
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
