"""An upgraded warehouse has the constraints the new release's contracts declare.

dbt writes an enforced contract's constraints only when it creates a table; an increment checks the columns'
names and types. A warehouse built by a release before the marts' not-null and check constraints (a47e74d,
0790960: e.g. 2867694) and upgraded kept its incremental marts without them, every build passing. The tables
of such a release are the current ones without those constraints (its catalog compared with a from-scratch
build of the new code: the only differences), which is what these tests make from a copy of the built
warehouse before the increment the upgrade's first build runs (macros/contract_constraints.sql)."""

from __future__ import annotations

import pytest

from tests.test_access_build_locks import INCREMENTAL_PUBLIC


def _constraints(conn) -> set[tuple[str, str, str, str]]:
    """(table, name, type, definition) of the incremental public marts' constraints."""
    return set(conn.execute(
        "select c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid)"
        " from pg_constraint as k join pg_class as c on c.oid = k.conrelid"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = 'marts' and c.relname = any(%s)", (list(INCREMENTAL_PUBLIC),)).fetchall())


def _increment(monkeypatch, url: str, tmp_path) -> None:
    from corridor import transform
    from tests.conftest import ROOT, point_dbt_at

    point_dbt_at(monkeypatch, url)
    transform.dbt(["run", "--select", *INCREMENTAL_PUBLIC, "--quiet", "--target-path", str(tmp_path / "target")],
                  ROOT / "dbt_project")


def test_an_increment_gives_an_earlier_releases_tables_the_contracts_constraints(
        warehouse_copy, monkeypatch, tmp_path):
    import psycopg

    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        declared = _constraints(conn)
        checks = {(t, name) for t, name, kind, _ in declared if kind == "c"}
        not_null = conn.execute(
            "select c.relname, a.attname from pg_attribute as a join pg_class as c on c.oid = a.attrelid"
            " join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = 'marts' and c.relname = any(%s) and a.attnum > 0 and a.attnotnull"
            " and not exists (select from pg_constraint as k where k.conrelid = c.oid and k.contype = 'p'"
            "                 and a.attnum = any(k.conkey))", (list(INCREMENTAL_PUBLIC),)).fetchall()
        assert len(checks) >= 8 and len(not_null) >= 20, (checks, not_null)  # what 2867694's marts lacked
        # the tables as the earlier release left them: its key, none of these constraints; and a check it
        # had that the contract no longer declares
        for table, name in checks:
            conn.execute(f'alter table marts.{table} drop constraint "{name}"')
        for table, column in not_null:
            conn.execute(f'alter table marts.{table} alter column "{column}" drop not null')
        conn.execute("alter table marts.fct_projects add constraint fct_projects_retired_check"
                     " check (project_key <> '')")
        assert _constraints(conn) != declared

    _increment(monkeypatch, warehouse_copy, tmp_path)

    with psycopg.connect(warehouse_copy) as conn:
        after = _constraints(conn)
    assert sorted(declared - after) == [] and sorted(after - declared) == []


def test_an_earlier_releases_table_without_its_key_fails_the_build_naming_the_full_refresh(
        warehouse_copy, monkeypatch, tmp_path, capsys):
    import psycopg

    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        key = conn.execute("select conname from pg_constraint where conrelid = 'marts.fct_certifications'::regclass"
                           " and contype = 'p'").fetchone()[0]
        conn.execute(f'alter table marts.fct_certifications drop constraint "{key}"')
    with pytest.raises(Exception, match="failed: see the dbt log above"):
        _increment(monkeypatch, warehouse_copy, tmp_path)
    assert ("contract of marts.fct_certifications: its primary key (certificate_key) is missing (a table made by"
            " an earlier release): run `corridor dbt build --full-refresh` once") in capsys.readouterr().out


def test_an_earlier_releases_table_without_a_column_fails_the_build_naming_the_full_refresh(
        warehouse_copy, monkeypatch, tmp_path, capsys):
    """A warehouse built before dim_enterprise became incremental (3b9f226) and upgraded: its table lacks
    max_ledger_id, which the increment reads; the build said `column seen.max_ledger_id does not exist`."""
    import psycopg

    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        conn.execute("alter table marts.dim_enterprise drop column max_ledger_id")
    with pytest.raises(Exception, match="failed: see the dbt log above"):
        _increment(monkeypatch, warehouse_copy, tmp_path)
    assert ("contract of marts.dim_enterprise: the table lacks the column(s) max_ledger_id (made by an earlier"
            " release): run `corridor dbt build --full-refresh` once") in capsys.readouterr().out
