"""The BI contract holds after the warehouse is rebuilt, not only after the first build.

test_bi_contract checks what bi_reader and an area role may read on the session's built warehouse. Here the
same warehouse is rebuilt the ways an operator rebuilds it: `dbt build --full-refresh` (every table dropped and
made again), an incremental model run again, and a project with one more mart. After each, a BI login reads
exactly the public models, holds no other privilege on any relation or schema (no write, no CREATE, nothing
of raw, staging, intermediate, seeds or ops, whose quarantine holds raw rows), and an area login still sees
only its area's rows of every rebuilt table."""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest

from corridor import transform
from tests.conftest import ROOT, point_dbt_at
from tests.test_bi_contract import _drop_login, _login

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
INTERNAL_SCHEMAS = ("raw", "staging", "intermediate", "seeds", "ops", "analytics")


def _public_models(target) -> set[str]:
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    return {f"{n['schema']}.{n['alias']}" for n in manifest["nodes"].values()
            if n["resource_type"] == "model" and n.get("access") == "public"}


def _what_a_login_may_do(conninfo: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(relation, privilege) on every relation outside the catalogs; (schema, privilege) on every schema."""
    with psycopg.connect(conninfo) as conn:
        relations = set(conn.execute(
            """
            select n.nspname || '.' || c.relname, p.privilege
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            cross join unnest(%s::text[]) as p (privilege)
            where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
              and c.relkind in ('r', 'v', 'm', 'p', 'f') and has_table_privilege(c.oid, p.privilege)
            """, (list(PRIVILEGES),)).fetchall())
        schemas = set(conn.execute(
            """
            select n.nspname, p.privilege from pg_namespace as n cross join unnest(array['USAGE', 'CREATE']) as p (privilege)
            where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
              and has_schema_privilege(n.oid, p.privilege)
            """).fetchall())
    return relations, schemas


def _assert_bi_contract(bi: str, area_lw: str, public: set[str]) -> None:
    relations, schemas = _what_a_login_may_do(bi)
    assert relations == {(r, "SELECT") for r in public}, sorted(relations ^ {(r, "SELECT") for r in public})
    assert {s for s, p in schemas if p == "CREATE"} == set()
    assert {s for s, _ in schemas} & set(INTERNAL_SCHEMAS) == set()
    assert _what_a_login_may_do(area_lw)[0] == relations
    with psycopg.connect(area_lw) as conn:
        for relation in sorted(public):
            columns = {r[0] for r in conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0", (relation,))}
            column = next((c for c in ("area_code", "seller_area_code") if c in columns), None)
            if column is None or relation == "kpi.area_ranking":  # no area, or the ranking every area sees
                continue
            seen = {r[0] for r in conn.execute(f"select distinct {column} from {relation}")}  # noqa: S608
            assert seen and seen <= {"LW", "ALL"}, (relation, seen)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from ops.quarantine")


def test_a_bi_login_reads_exactly_the_public_models_after_every_kind_of_rebuild(warehouse_copy, pg_admin_url,
                                                                               monkeypatch, tmp_path):
    point_dbt_at(monkeypatch, warehouse_copy)
    target = tmp_path / "target"  # not the state folder's: the shared manifest stays the session's
    bi_name, bi = _login(pg_admin_url, warehouse_copy, "bi_reader")
    lw_name, area_lw = _login(pg_admin_url, warehouse_copy, "area_lw")
    try:
        transform.dbt(["build", "--full-refresh", "--quiet", "--target-path", str(target)], ROOT / "dbt_project")
        public = _public_models(target)
        assert len(public) == 13
        _assert_bi_contract(bi, area_lw, public)

        # an incremental model run again, and one rebuilt whole
        transform.dbt(["run", "--select", "fct_talent_intake", "fct_tech_contracts", "--quiet",
                       "--target-path", str(target)], ROOT / "dbt_project")
        transform.dbt(["run", "--full-refresh", "--select", "fct_pledge_loans", "kpi_values", "--quiet",
                       "--target-path", str(target)], ROOT / "dbt_project")
        _assert_bi_contract(bi, area_lw, public)

        # a new mart: public by its folder, granted and under row security without a word of its own
        project = tmp_path / "dbt_project"
        shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
        (project / "models" / "marts" / "fct_area_probe.sql").write_text(
            "select area_code, count(*)::bigint as platforms from {{ ref('dim_platform') }} group by area_code\n",
            encoding="utf-8")
        (project / "models" / "marts" / "_area_probe.yml").write_text(
            "version: 2\nmodels:\n  - name: fct_area_probe\n    description: platforms per area\n"
            "    constraints:\n      - type: primary_key\n        columns: [area_code]\n    columns:\n"
            "      - name: area_code\n        description: the area\n        data_type: text\n"
            "      - name: platforms\n        description: platforms\n        data_type: bigint\n",
            encoding="utf-8")
        transform.dbt(["run", "--select", "fct_area_probe", "--quiet", "--target-path", str(target)], project)
        assert _public_models(target) == public | {"marts.fct_area_probe"}
        _assert_bi_contract(bi, area_lw, public | {"marts.fct_area_probe"})
    finally:
        _drop_login(pg_admin_url, bi_name)
        _drop_login(pg_admin_url, lw_name)
