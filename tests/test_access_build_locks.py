"""A build does not hold BI readers up where it need not.

An increment of an incremental public model deletes and inserts its changed rows (a ROW EXCLUSIVE lock, which
readers never wait for) in one transaction: a BI query reads the table whole before or after it. Only a table
rebuilt whole is swapped in under an ACCESS EXCLUSIVE lock, for as long as its transaction lasts. The row
security of a public model (post-hook area_row_security) is DDL that takes ACCESS EXCLUSIVE on the table: made
again at every increment, it made the build wait for every BI query running on the table, and every BI query
that came after queue behind it until the slowest of them finished."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.test_bi_contract import _drop_login, _login

INCREMENTAL_PUBLIC = ("dim_enterprise", "fct_tech_contracts", "fct_pledge_loans", "fct_certifications",
                      "fct_talent_intake", "fct_projects")


def _waiting_for(url: str) -> list[tuple[str, str]]:
    """(relation, lock mode) of the relation locks this database's backends wait for."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select l.relation::regclass::text, l.mode from pg_locks as l"
            " where l.locktype = 'relation' and not l.granted"
            " and l.database = (select oid from pg_database where datname = current_database())").fetchall()


def test_an_increment_of_the_public_models_does_not_wait_for_a_bi_reader_nor_block_the_next(
        warehouse_copy, pg_admin_url):
    url = warehouse_copy
    with psycopg.connect(url) as conn:
        modes = dict(conn.execute(
            "select c.relname, c.relrowsecurity from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = 'marts' and c.relname = any(%s)", (list(INCREMENTAL_PUBLIC),)).fetchall())
    assert modes == dict.fromkeys(INCREMENTAL_PUBLIC, True)  # under row security, as the build left them
    name, bi = _login(pg_admin_url, url, "bi_reader")
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url}
    increment = [str(Path(sys.executable).with_name("corridor")), "dbt", "run", "--select", *INCREMENTAL_PUBLIC]
    try:
        # a dashboard's long query (here: a transaction that read every one of them and is still open)
        with psycopg.connect(bi) as reader:
            counts = {m: reader.execute(f"select count(*) from marts.{m}").fetchone()[0]  # noqa: S608
                      for m in INCREMENTAL_PUBLIC}
            assert all(counts.values()), counts
            build = subprocess.Popen(increment, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 240
            waits: list[tuple[str, str]] = []
            while build.poll() is None and time.monotonic() < deadline:
                waits = waits or _waiting_for(url)
                if waits:
                    break
                time.sleep(0.1)
            blocked = []
            if waits:
                # the next BI query of the table the build waits for
                with psycopg.connect(bi, autocommit=True) as other:
                    other.execute("set statement_timeout = '3s'")
                    for relation, _ in waits:
                        try:
                            other.execute(f"select count(*) from {relation}")  # noqa: S608
                        except psycopg.errors.QueryCanceled:
                            blocked.append(relation)
            reader.rollback()
            out, err = build.communicate(timeout=300)
        assert build.returncode == 0, out[-2000:] + err[-2000:]
        print(f"\nthe increment of {len(INCREMENTAL_PUBLIC)} public models waited for the BI reader's locks on:"
              f" {waits}; BI queries blocked behind it for 3 s or more: {blocked}")
        assert waits == [] and blocked == []
        with psycopg.connect(url) as conn:  # the row security is still in place
            policies = conn.execute(
                "select c.relname, count(*) filter (where p.polname is not null), bool_and(c.relrowsecurity)"
                " from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
                " left join pg_policy as p on p.polrelid = c.oid"
                " where n.nspname = 'marts' and c.relname = any(%s) group by 1", (list(INCREMENTAL_PUBLIC),)).fetchall()
        assert sorted(policies) == sorted((m, 2, True) for m in INCREMENTAL_PUBLIC)
    finally:
        _drop_login(pg_admin_url, name)


def test_a_changed_row_security_rule_still_reaches_an_incremental_table(warehouse_copy, monkeypatch, tmp_path):
    """Made only where it is missing or differs: a policy a project changes reaches the tables an increment
    writes, without a --full-refresh (a macro that made them only on a new table fails here)."""
    import shutil

    from corridor import transform
    from tests.conftest import ROOT, point_dbt_at

    model = "fct_tech_contracts"
    point_dbt_at(monkeypatch, warehouse_copy)
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    macro = project / "macros" / "bi_access.sql"
    text = macro.read_text(encoding="utf-8")
    assert text.count("pg_has_role(area_roles.oid, 'member')") == 1
    macro.write_text(text.replace("pg_has_role(area_roles.oid, 'member')",
                                  "pg_has_role(area_roles.oid, 'member') and area_roles.rolname <> 'area_zz'"),
                     encoding="utf-8")
    transform.dbt(["run", "--select", model, "--quiet", "--target-path", str(tmp_path / "target")], project)
    with psycopg.connect(warehouse_copy) as conn:
        qual = conn.execute("select qual from pg_policies where schemaname = 'marts' and tablename = %s"
                            " and policyname = 'area_reader_reads_own_area'", (model,)).fetchone()[0]
    assert "area_zz" in qual, qual
