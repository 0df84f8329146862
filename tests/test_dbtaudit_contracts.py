"""Audit of the BI contract's column rules: what the database of a freshly built warehouse promises a BI tool.

A BI tool reads the catalog (``information_schema.columns``, ``pg_constraint``): a column it may filter or join on
without a null branch is declared ``not null`` there, and the marts' enumerations are check constraints. The raw
tables (``src/corridor/sql/raw.sql``) and the staging tests guarantee these columns; the KPI rules filter on them
(K08/K11/K15/K16 on ``project_status``/``project_category``, K06 on ``talent_category``, K17 on ``is_ip_pledge``,
K03 on ``is_cancelled``), so a null there would drop a row from a KPI without a word: the contract refuses it.
"""

from __future__ import annotations

import psycopg

from corridor import transform
from tests.conftest import ROOT, point_dbt_at

# (table, column): declared not null in the database by the model's enforced contract
NOT_NULL = {
    # business keys: a unique constraint holds nothing over nulls
    ("marts.fct_certifications", "certification_type"),
    ("marts.fct_pledge_loans", "bank_code"),
    ("marts.fct_pledge_loans", "loan_id"),
    ("marts.fct_projects", "project_key"),
    ("marts.fct_projects", "snapshot_month"),
    # what the KPI rules filter on (not null in the raw tables)
    ("marts.fct_projects", "project_category"),
    ("marts.fct_projects", "project_status"),
    ("marts.fct_projects", "snapshot_date"),
    ("marts.fct_projects", "area_code"),
    ("marts.fct_projects", "is_current"),
    ("marts.fct_projects", "is_unreported"),
    ("marts.fct_talent_intake", "talent_category"),
    ("marts.fct_talent_intake", "intake_type"),
    ("marts.fct_talent_intake", "latest_action"),
    ("marts.fct_pledge_loans", "borrower_uscc"),
    ("marts.fct_pledge_loans", "area_code"),
    ("marts.fct_pledge_loans", "collateral_type"),
    ("marts.fct_pledge_loans", "is_ip_pledge"),
    ("marts.fct_pledge_loans", "loan_amount_yuan"),
    ("marts.fct_pledge_loans", "disbursed_date"),
    ("marts.fct_pledge_loans", "loan_status"),
    ("marts.fct_tech_contracts", "registration_date"),
    ("marts.fct_tech_contracts", "contract_type"),
    ("marts.fct_tech_contracts", "seller_uscc"),
    ("marts.fct_tech_contracts", "seller_area_code"),
    ("marts.fct_tech_contracts", "tech_value_10k_yuan"),
    ("marts.fct_tech_contracts", "registration_status"),
    ("marts.fct_tech_contracts", "is_cancelled"),
}

# (table, column): an enumeration held by a check constraint of the contract
CHECKED = {
    ("marts.fct_projects", "project_category"),
    ("marts.fct_projects", "project_status"),
    ("marts.fct_talent_intake", "intake_type"),
    ("marts.fct_pledge_loans", "collateral_type"),
    ("marts.fct_pledge_loans", "loan_status"),
    ("marts.fct_tech_contracts", "registration_status"),
    ("marts.fct_tech_contracts", "contract_type"),
    ("marts.dim_platform", "platform_level"),
    ("marts.fct_platform_states", "platform_level"),
    ("marts.fct_platform_states", "opening_change_type"),
    ("marts.fct_platform_states", "standing_change_type"),
}


def test_columns_the_data_guarantees_are_not_null_in_the_marts_catalog(built_warehouse):
    with psycopg.connect(built_warehouse.url) as conn:
        nullable = {(f"{s}.{t}", c) for s, t, c in conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns"
            " where table_schema = 'marts' and is_nullable = 'YES'").fetchall()}
        present = {(f"{s}.{t}", c) for s, t, c in conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns"
            " where table_schema = 'marts'").fetchall()}
    assert NOT_NULL <= present
    assert sorted(NOT_NULL & nullable) == []


def test_the_marts_enumerations_are_check_constraints(built_warehouse):
    with psycopg.connect(built_warehouse.url) as conn:
        checked = {(f"{schema}.{table}", column) for schema, table, column in conn.execute(
            """
            select n.nspname, c.relname, a.attname
            from pg_constraint as k
            join pg_class as c on c.oid = k.conrelid
            join pg_namespace as n on n.oid = c.relnamespace
            join pg_attribute as a on a.attrelid = c.oid and a.attnum = any(k.conkey)
            where k.contype = 'c' and n.nspname = 'marts'
            """).fetchall()}
    assert sorted(CHECKED - checked) == []


def test_a_project_without_a_status_fails_the_build_instead_of_leaving_the_project_kpis(
        warehouse_copy, monkeypatch, tmp_path):
    """K11 counts `project_status <> '终止'`: a null status would leave the project out of K08, K11, K15 and K16
    silently. The raw table refuses one; should one reach the mart anyway, its rebuild fails on the contract."""
    point_dbt_at(monkeypatch, warehouse_copy)
    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        conn.execute("update intermediate.int_project_states_windowed set project_status = null"
                     " where project_state_id = (select min(project_state_id)"
                     " from intermediate.int_project_states_windowed)")
    result = transform.dbt(["run", "--select", "fct_projects", "--full-refresh", "--quiet",
                            "--target-path", str(tmp_path / "target")], ROOT / "dbt_project", check=False)
    [node] = [r for r in result.result.results if r.node.unique_id == "model.corridor.fct_projects"]
    assert str(node.status) == "error", node.status
    assert "not-null constraint" in node.message and "project_status" in node.message, node.message

