"""The dbt warehouse on the built city demo set: rules, completeness, incremental, BI access."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import sql

from corridor import transform
from corridor.db import libpq_params
from tests.conftest import ROOT, awaits_advisory_lock, point_dbt_at


def test_dbt_build_ran_every_model_test_and_unit_test(built_warehouse):
    kinds = {}
    for resource_type, _, status in built_warehouse.dbt_results:
        kinds.setdefault(resource_type, []).append(status)
    statuses = {(kind, status) for kind, found in kinds.items() for status in found}
    assert {s for _, s in statuses} <= {"success", "pass", "no-op", "warn"}, sorted(statuses)
    # Only the warning-level checks may warn (on the demo set: the unreported active projects).
    warned = {uid.split(".")[2] for _, uid, status in built_warehouse.dbt_results if status == "warn"}
    assert warned <= {"assert_active_projects_reported", "assert_certificate_numbers_unique_per_scheme"}, warned
    assert len(kinds["model"]) >= 35
    # a model's not-null and accepted-values rules are one test each (tests/generic/*_columns.sql), and
    # none where the database holds them (contract constraints, unique indexes: dbt_project/README.md)
    assert len(kinds["test"]) >= 100
    assert len(kinds["unit_test"]) >= 15
    tested = {uid.split(".")[2] for kind, uid, _ in built_warehouse.dbt_results if kind == "test"}
    assert {"not_null_stg_bank__loans", "accepted_values_stg_bank__loans", "not_null_fct_tech_contracts"} <= tested


def test_restated_month_replaces_earlier_version_while_both_stay_on_record(built_warehouse):
    url = built_warehouse.url
    with psycopg.connect(url) as conn:
        restated = conn.execute(
            "select area_code, report_month, file_version, ledger_id"
            " from intermediate.int_district_returns_versioned where is_restated").fetchall()
        assert restated, "the demo set restates some area-months"
        for area, month, version, ledger_id in restated:
            on_record = conn.execute(
                "select array_agg(distinct file_version order by file_version) from raw.district_projects"
                " where area_code = %s and report_month = %s", (area, month)).fetchone()[0]
            assert len(on_record) >= 2 and on_record[-1] == version
            used = conn.execute(
                "select array_agg(distinct ledger_id) from intermediate.int_district_projects_versioned"
                " where area_code = %s and report_month = %s", (area, month)).fetchone()[0]
            assert used == [ledger_id]


def test_a_later_version_with_an_earlier_versions_bytes_is_the_version_in_force(
        built_warehouse, warehouse_copy, monkeypatch, tmp_path):
    """A version replaces its area-month entirely, whatever it holds: a _v3 with the bytes of _v1 withdraws
    _v2's restatement (the loader took it for _v1 re-sent and loaded nothing, so _v2 stayed in force)."""
    import shutil

    from corridor.ingest import ingest_feed
    from tests.conftest import TEST_PII_KEY

    sheets = ("district_platforms", "district_certifications", "district_projects")

    def content(conn, ledger_id: int) -> list:
        return [conn.execute(sql.SQL("select jsonb_agg(to_jsonb(t) - 'ledger_id' - 'file_version' order by"
                                     " source_row) from {} as t where ledger_id = %s").format(
            sql.Identifier("raw", sheet)), (ledger_id,)).fetchone()[0] for sheet in sheets]

    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    with psycopg.connect(url) as conn:
        area, month, v1_id, v2_id = conn.execute(
            "select area_code, report_month, min(ledger_id), max(ledger_id) from raw.district_returns"
            " group by 1, 2 having array_agg(file_version order by file_version) = '{1,2}'"
            " and max(ledger_id) not in (select ledger_id from ops.load_ledger"
            "   where message like 'a restatement with the bytes of %')"
            " order by 1, 2 limit 1").fetchone()
        [v1_name] = conn.execute("select file_name from ops.load_ledger where ledger_id = %s", (v1_id,)).fetchone()
        v1_content = content(conn, v1_id)
        assert v1_content != content(conn, v2_id), "v2 restates v1 with other rows"
    landing = tmp_path / "landing"
    (landing / "district").mkdir(parents=True)
    shutil.copyfile(built_warehouse.landing / "district" / v1_name,
                    landing / "district" / v1_name.replace("_v1.xlsx", "_v3.xlsx"))
    [outcome] = ingest_feed(url, "district", landing, pii_key=TEST_PII_KEY).files
    assert (outcome.status, outcome.rows_loaded > 0) == ("loaded", True), outcome
    assert v1_name in (outcome.message or ""), outcome
    transform.dbt(["run", "--select", "int_district_returns_versioned", *[f"int_{s}_versioned" for s in sheets],
                   "--quiet"], ROOT / "dbt_project")
    with psycopg.connect(url) as conn:
        in_force = conn.execute("select file_version, ledger_id from intermediate.int_district_returns_versioned"
                                " where area_code = %s and report_month = %s", (area, month)).fetchone()
        assert in_force == (3, outcome.ledger_id)
        used = {r[0] for sheet in sheets for r in conn.execute(
            sql.SQL("select distinct ledger_id from {} where area_code = %s and report_month = %s").format(
                sql.Identifier("intermediate", f"int_{sheet}_versioned")), (area, month))}
        assert used == {outcome.ledger_id}
        assert content(conn, outcome.ledger_id) == v1_content


def test_kpi_values_has_one_row_per_kpi_area_and_period(built_warehouse):
    url = built_warehouse.url
    with psycopg.connect(url) as conn:
        periods = dict(conn.execute(
            "select grain, count(distinct period_start) from kpi.kpi_values group by grain").fetchall())
        rows = conn.execute("select count(*) from kpi.kpi_values").fetchone()[0]
        kpis = conn.execute("select count(distinct kpi_code) from kpi.kpi_values").fetchone()[0]
        areas = conn.execute("select array_agg(distinct area_code order by area_code) from kpi.kpi_values").fetchone()[0]
    # 2020-01 .. 2022-12: the demo data's as-of month is December 2022.
    assert periods == {"month": 36, "quarter": 12, "year": 3}
    assert kpis == 18
    assert areas == sorted(["ALL", "LW", "OH", "YQ", "RA", "ZN", "OJK"])
    assert rows == 18 * 7 * (36 + 12 + 3)


def test_corridor_distinct_counts_are_not_sums_of_areas(built_warehouse):
    """K06 counts a person once over the corridor, in the area of their earliest intake."""
    with psycopg.connect(built_warehouse.url) as conn:
        total, by_area = conn.execute(
            """
            select max(actual_value) filter (where area_code = 'ALL'),
                   sum(actual_value) filter (where area_code <> 'ALL')
            from kpi.kpi_values where kpi_code = 'K06' and grain = 'year' and period_start = '2022-01-01'
            """).fetchone()
        persons = conn.execute(
            "select count(distinct person_key) from marts.fct_talent_intake").fetchone()[0]
    assert total == by_area
    assert 0 < total <= persons


# every incremental model, with its key (tests/fuzz_increments.py compares the same)
INCREMENTAL_MODELS = {
    "marts.fct_tech_contracts": "registration_no", "marts.fct_pledge_loans": "pledge_loan_id",
    "intermediate.int_tech_contracts_resolved": "registration_no", "marts.dim_enterprise": "uscc",
    "intermediate.int_pledge_loans_resolved": "pledge_loan_id", "marts.fct_certifications": "certificate_key",
    "intermediate.int_district_platforms_versioned": "platform_event_id",
    "intermediate.int_district_certifications_versioned": "certification_event_id",
    "intermediate.int_district_projects_versioned": "project_row_id",
    "intermediate.int_project_states_windowed": "project_state_id",
    "marts.fct_projects": "project_snapshot_id", "marts.fct_talent_intake": "record_id"}


def _snapshot(url: str, table: str, key: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.SQL("select * from {} order by {}").format(
            sql.Identifier(*table.split(".")), sql.Identifier(key))).fetchall()


def test_incremental_run_equals_full_refresh(built_warehouse, warehouse_copy, monkeypatch):
    """Hold back files, build, deliver them, run incrementally: the same rows as a full refresh.

    Held back: the last two months of contract, loan and talent files, the last month's district workbooks
    (the as-of month moves) and the latest version of every restated district area-month (late
    restatements that re-open old months), then delivered as files loaded after everything else (new
    ledger ids, in their order).
    """
    models = INCREMENTAL_MODELS
    incremental = {p.stem for p in (ROOT / "dbt_project" / "models").rglob("*.sql")
                   if "materialized='incremental'" in p.read_text(encoding="utf-8")}
    assert incremental == {t.split(".")[1] for t in models}, "every incremental model must be compared here"
    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    district = ("district_returns", "district_certifications", "district_platforms", "district_projects")
    with psycopg.connect(url) as conn:
        held = conn.execute(
            "select ledger_id from ops.load_ledger where feed = 'techmarket'"
            " and file_name >= 'tech_contracts_20221101.csv'"
            " union select ledger_id from ops.load_ledger where feed = 'bank' and file_name ~ '_2022(11|12)'"
            " union select ledger_id from ops.load_ledger where feed = 'hr' and file_name ~ '_2022(11|12)'").fetchall()
        held = [h[0] for h in held]
        assert len(held) > 40
        restated = restated_versions = [r[0] for r in conn.execute(
            "select max(ledger_id) from raw.district_returns group by area_code, report_month"
            " having count(*) > 1").fetchall()]
        assert len(restated) >= 3, "the demo set restates some area-months"
        last_month = [r[0] for r in conn.execute(
            "select ledger_id from raw.district_returns"
            " where report_month = (select max(report_month) from raw.district_returns)").fetchall()]
        assert len(last_month) >= 6
        restated = sorted(set(restated) | set(last_month))
        last_id = conn.execute("select max(ledger_id) from ops.load_ledger").fetchone()[0]
        for table in ("techmarket_contracts", "bank_loans", "hr_talents", *district):
            conn.execute(sql.SQL("create table {} as select * from {} where ledger_id = any(%s)").format(
                sql.Identifier("public", f"held_{table}"), sql.Identifier("raw", table)), (held + restated,))
            conn.execute(sql.SQL("delete from {} where ledger_id = any(%s)").format(
                sql.Identifier("raw", table)), (held + restated,))
        # a restatement that drops a project its earlier version listed: the project's state of that
        # month goes, and its state before holds on (int_project_states_windowed's post-hook)
        dropped = conn.execute(
            "delete from public.held_district_projects where ctid = (select held.ctid"
            " from public.held_district_projects as held join raw.district_projects as earlier"
            " using (area_code, report_month, project_id)"
            " where held.ledger_id = any(%s) and held.report_month < (select max(report_month) from"
            " raw.district_projects) order by held.ledger_id, held.source_row limit 1) returning project_id",
            (restated_versions,)).fetchall()
        assert len(dropped) == 1, "a restated area-month of the demo set lists a project of its earlier version"
    selection = ["--select", "+fct_tech_contracts", "+fct_pledge_loans", "+dim_enterprise",
                 "+int_district_projects_versioned", "+fct_projects", "+fct_certifications", "+fct_talent_intake", "--quiet"]
    transform.dbt(["run", "--full-refresh", *selection], ROOT / "dbt_project")
    before = {t: _snapshot(url, t, k) for t, k in models.items()}
    with psycopg.connect(url) as conn:
        # delivered now: ledger ids after every file loaded so far, in their order (the watermark
        # of dim_enterprise spans the feeds)
        for table in ("techmarket_contracts", "bank_loans", "hr_talents", *district):
            conn.execute(sql.SQL("update {} set ledger_id = %s + ledger_id").format(
                sql.Identifier("public", f"held_{table}")), (last_id,))
            conn.execute(sql.SQL("insert into {} select * from {}").format(
                sql.Identifier("raw", table), sql.Identifier("public", f"held_{table}")))
    transform.dbt(["run", *selection], ROOT / "dbt_project")
    after = {t: _snapshot(url, t, k) for t, k in models.items()}
    transform.dbt(["run", "--full-refresh", *selection], ROOT / "dbt_project")
    refreshed = {t: _snapshot(url, t, k) for t, k in models.items()}
    for table in models:
        assert before[table] != refreshed[table], f"holding back files must change {table}"
        assert len(after[table]) == len(refreshed[table]), table
        assert after[table] == refreshed[table], table


def test_a_run_drops_the_relations_the_project_no_longer_writes(built_warehouse, warehouse_copy, monkeypatch):
    """A model made ephemeral or removed leaves its table (or view) in a warehouse built before: the next run
    drops it (dbt_project.yml vars.retired_relations, an on-run-start hook), and nothing else."""
    import yaml

    project = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    retired = project["vars"]["retired_relations"]
    assert "intermediate.int_certificates_windowed" in retired

    def relations(url: str) -> dict[str, str]:
        with psycopg.connect(url) as conn:
            return dict(conn.execute(
                "select n.nspname || '.' || c.relname, c.relkind::text from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p', 'v', 'm')"
                " and n.nspname in ('staging', 'intermediate', 'marts', 'kpi', 'seeds', 'public')").fetchall())

    # a relation the project still writes would be dropped and made whole again by every run
    assert not set(retired) & set(relations(built_warehouse.url)), "a retired relation is still written"
    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    with psycopg.connect(url) as conn:
        conn.execute(f"create table {retired[0]} as select 1 as stale")
        conn.execute(f"create view {retired[1]} as select 1 as stale")
        conn.execute("create table intermediate.made_by_hand as select 1 as kept")
    before = relations(url)
    transform.dbt(["run", "--select", "dim_period", "--quiet"], ROOT / "dbt_project")
    after = relations(url)
    assert set(before) - set(after) == set(retired[:2])
    assert after == {name: kind for name, kind in before.items() if name not in retired}


@pytest.fixture
def bi_login(built_warehouse, pg_admin_url):
    """A login role that is a member of bi_reader, as a BI tool would use."""
    name = f"bi_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login password {} in role bi_reader").format(
            sql.Identifier(name), sql.Literal(password)))
    params = libpq_params(built_warehouse.url)
    yield psycopg.conninfo.make_conninfo(host=params["host"], port=params["port"], dbname=params["dbname"],
                                         user=name, password=password)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop owned by {} cascade").format(sql.Identifier(name)))
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def test_bi_reader_reads_marts_and_kpi_and_nothing_else(bi_login, built_warehouse):
    with psycopg.connect(bi_login, autocommit=True) as conn:
        assert conn.execute("select count(*) from kpi.kpi_values").fetchone()[0] > 0
        assert conn.execute("select count(*) from marts.fct_tech_contracts").fetchone()[0] > 0
        assert conn.execute("select count(*) from marts.fct_talent_intake").fetchone()[0] > 0
        for table in ("raw.hr_talents", "raw.techmarket_contracts", "ops.load_ledger", "ops.quarantine",
                      "staging.stg_hr__talents", "intermediate.int_pledge_loans_resolved"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select 1 from {table} limit 1")
        # Nothing a BI user can see is personal: no ID number, no name, only the keyed pseudonym.
        visible = conn.execute(
            """
            select table_schema, table_name, column_name from information_schema.columns
            where table_schema in ('marts', 'kpi')
              and (column_name ~ '(id_number|^name$|person_name|talent_name|phone|contact)')
            """).fetchall()
        assert visible == []
        schemas = {r[0] for r in conn.execute(
            "select distinct table_schema from information_schema.tables"
            " where has_table_privilege(quote_ident(table_schema) || '.' || quote_ident(table_name), 'select')"
            " and table_schema not in ('pg_catalog', 'information_schema')")}
        assert schemas == {"marts", "kpi"}


def record_as_written(conn, model: str, statement: str, *params) -> int:
    """Run an UPDATE or INSERT … RETURNING ctid on a model's table and record the rows it wrote as its
    increment's INSERT does (macros/record_rows_written.sql): their ctids in ops."<model>__rows_written"."""
    rows = conn.execute(f'with written as ({statement}) insert into ops."{model}__rows_written" (row_ctid)'
                        " select ctid from written", params).rowcount
    assert rows > 0
    return rows


def test_increment_tests_read_the_rows_the_build_wrote_and_the_old_rows_sharing_their_keys(
        warehouse_copy, monkeypatch, tmp_path):
    """In a `dbt build` (not --full-refresh), the generic tests of an incremental model read the rows its
    increment wrote, recorded by ctid (macros/record_rows_written.sql, get_where_subquery.sql): a bad
    written row fails its test, a bad old row does not; `unique` reads every row whose key the build
    wrote, so a new row colliding with an old one fails (but for delete+insert on the tested key, whose
    DELETE leaves no old row with a new row's key); `dbt test` and --full-refresh builds read every row."""
    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    project = ROOT / "dbt_project"
    table = "intermediate.int_tech_contracts_resolved"
    appended = "intermediate.int_district_projects_versioned"
    target = tmp_path / "target"
    build = ["build", "--select", "int_tech_contracts_resolved", "int_district_projects_versioned",
             "--exclude-resource-type", "unit_test", "--target-path", str(target), "--quiet"]

    def compiled(name: str, step: str = "run", model: str = "int_tech_contracts_resolved") -> str:
        """The test's SQL as run (a count of its rows) or, step "compiled", its select of the failing rows."""
        yml = ("intermediate/techmarket/_techmarket__models.yml" if "tech" in model
               else "intermediate/district/_district__models.yml")
        folder = target / step / "corridor" / "models" / yml
        # unique: dbt's, per column; not_null: the model's one test of its not-null columns
        key = {"int_tech_contracts_resolved": "_registration_no", "int_district_projects_versioned": "_project_row_id"}
        test = f"{name}_{model}" + (key[model] if name == "unique" else "")
        return (folder / f"{test}.sql").read_text(encoding="utf-8")

    with psycopg.connect(url, autocommit=True) as conn:
        # a real increment: the contracts of the latest file are resolved again (delete+insert)
        latest = {r[0] for r in conn.execute(
            f"delete from {table} where max_ledger_id = (select max(max_ledger_id) from {table})"  # noqa: S608
            " returning registration_no")}
        assert latest
    result = transform.dbt(build, project)
    [written] = [r.adapter_response["rows_affected"] for r in result.result.results
                 if r.node.name == "int_tech_contracts_resolved"]
    assert written == len(latest)
    unique, not_null, accepted = compiled("unique"), compiled("not_null"), compiled("accepted_values")
    unique_appended = compiled("unique", model="int_district_projects_versioned")
    for test_sql in (unique, not_null, accepted, unique_appended):
        assert "__rows_written" in test_sql
    # delete+insert on the tested key: the written rows only; append: every row sharing their keys
    assert "as written_rows" not in unique and "as written_rows" in unique_appended
    with psycopg.connect(url, autocommit=True) as conn:
        def failures(test_sql: str) -> int:
            return conn.execute(test_sql).fetchone()[0]

        # the rows the tests read are the rows the increment wrote
        read = {r[0] for r in conn.execute(
            f"select registration_no from {table} where ctid = any(array("  # noqa: S608
            'select row_ctid from ops."int_tech_contracts_resolved__rows_written"))')}
        assert read == latest
        assert failures(unique) == failures(not_null) == failures(accepted) == failures(unique_appended) == 0
        # an old row breaking a rule: not this build's
        conn.execute(f"update {table} set registration_status = 'bogus-old'"  # noqa: S608
                     f" where registration_no = (select min(registration_no) from {table})")
        assert failures(accepted) == 0
        # written rows breaking them: read
        some = min(latest)
        record_as_written(conn, "int_tech_contracts_resolved",
                          f"update {table} set registration_status = 'bogus' where registration_no = %s"  # noqa: S608
                          " returning ctid", some)
        assert failures(accepted) == 1
        record_as_written(conn, "int_tech_contracts_resolved",
                          f"update {table} set registration_no = null where registration_no = %s"  # noqa: S608
                          " returning ctid", max(latest))
        assert failures(not_null) == 1
        # the model's one not-null test names the column, the rule and the rows that break it
        assert conn.execute(compiled("not_null", "compiled")).fetchall() == [("registration_no", "not_null", 1)]
        # two written rows sharing a key (the model's unique index would refuse the second: dropped here)
        [index] = conn.execute("select indexname from pg_indexes where schemaname = 'intermediate'"
                               " and tablename = 'int_tech_contracts_resolved' and indexdef ~ '^CREATE UNIQUE'"
                               ).fetchone()
        conn.execute(f'drop index intermediate."{index}"')
        assert failures(unique) == 0
        record_as_written(conn, "int_tech_contracts_resolved",
                          f"insert into {table} select * from {table} where registration_no = %s"  # noqa: S608
                          " returning ctid", some)
        assert failures(unique) == 1
        # append: a written row colliding with an old row of its key
        assert conn.execute('select count(*) from ops."int_district_projects_versioned__rows_written"').fetchone()[0] == 0
        record_as_written(conn, "int_district_projects_versioned",
                          f"insert into {appended} select * from {appended}"  # noqa: S608
                          f" where project_row_id = (select min(project_row_id) from {appended}) returning ctid")
        assert failures(unique_appended) == 1
    # a later build that writes nothing new does not re-test those rows; `dbt test` reads them all
    transform.dbt(build, project)
    result = transform.dbt(["test", "--select", "int_tech_contracts_resolved", "int_district_projects_versioned",
                            "--target-path", str(target), "--quiet"], project, check=False)
    failed = {r.node.name: r.failures for r in result.result.results if str(r.status) == "fail"}
    assert failed == {"not_null_int_tech_contracts_resolved": 1,
                      "accepted_values_int_tech_contracts_resolved": 2,
                      "unique_int_tech_contracts_resolved_registration_no": 1,
                      "unique_int_district_projects_versioned_project_row_id": 1}, failed
    assert "__rows_written" not in compiled("not_null")
    # a --full-refresh build reads every row (here it rebuilds the tables: nothing to fail)
    transform.dbt([*build, "--full-refresh"], project)
    assert "__rows_written" not in compiled("unique") and "__rows_written" not in compiled("not_null")


def test_rows_a_dbt_command_wrote_without_a_successful_whole_build_are_tested_by_the_next(
        warehouse_copy, monkeypatch, tmp_path):
    """An increment's tests read the rows its build wrote (get_where_subquery.sql), since every older row passed
    them in an earlier successful build. Rows written by a dbt command that did not end in a successful whole
    build (a `dbt run`, as here; a build that failed or was killed after a model's increment committed) passed
    no test: the next whole build's tests of the incremental models read every row, a failure there fails it
    (so it is not recorded) and the build after it reads every row again; after a successful whole build,
    the written rows only. Before, the next build wrote nothing new, its tests read nothing, and it passed."""
    from datetime import UTC, datetime

    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    project = ROOT / "dbt_project"
    table = "intermediate.int_tech_contracts_resolved"
    target = ["--target-path", str(tmp_path / "target"), "--quiet"]
    # the session's build of this project, recorded as `corridor dbt build` records one
    transform.record_build(url, transform.ledger_position(url), transform.project_digest(project),
                           datetime.now(UTC), False)
    with psycopg.connect(url, autocommit=True) as conn:
        # the contracts of the latest file, for the run to resolve again
        latest = sorted(r[0] for r in conn.execute(
            f"delete from {table} where max_ledger_id = (select max(max_ledger_id) from {table})"  # noqa: S608
            " returning registration_no"))
    transform.dbt_recorded(url, ["run", "--select", "int_tech_contracts_resolved", *target], project)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(f"select count(*) from {table} where registration_no = any(%s)",  # noqa: S608
                            (latest,)).fetchone()[0] == len(latest)
        # a row that write produced against a rule (no test read it)
        [status] = conn.execute(f"select registration_status from {table} where registration_no = %s",  # noqa: S608
                                (latest[0],)).fetchone()
        conn.execute(f"update {table} set registration_status = 'bogus' where registration_no = %s",  # noqa: S608
                     (latest[0],))
        builds = conn.execute("select count(*) from ops.dbt_builds").fetchone()[0]
    messages = []
    for _ in range(2):  # failed whole builds are not recorded: the next reads every row again
        with pytest.raises(RuntimeError, match="failed"):
            transform.dbt_recorded(url, ["build", *target], project, log=messages.append)
        results = json.loads((tmp_path / "target" / "run_results.json").read_text(encoding="utf-8"))["results"]
        assert [(r["unique_id"].split(".")[2], r["failures"]) for r in results if r["status"] == "fail"] == [
            ("accepted_values_int_tech_contracts_resolved", 1)]
    assert sum("read every row" in m for m in messages) == 2, messages
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select count(*) from ops.dbt_builds").fetchone()[0] == builds
        conn.execute(f"update {table} set registration_status = %s where registration_no = %s",  # noqa: S608
                     (status, latest[0]))
    messages.clear()
    transform.dbt_recorded(url, ["build", *target], project, log=messages.append)
    assert any("read every row" in m for m in messages), messages
    # recorded: the next whole build (a file loaded since, say) is an increment whose tests read what it writes
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select count(*) from ops.dbt_builds").fetchone()[0] == builds + 1
        assert conn.execute("select count(*) from ops.dbt_unverified_writes").fetchone()[0] == 0
    messages.clear()
    transform.dbt_recorded(url, ["build", *target], project, log=messages.append, skip_unchanged=False)
    assert not any("read every row" in m for m in messages), messages


def test_increment_relationships_test_fails_on_a_written_row_whose_parent_is_missing(
        warehouse_copy, monkeypatch, tmp_path):
    """The project's `relationships` form (macros/test_relationships.sql): in a build, the child side is
    the rows the build wrote and the parent is first reduced to their values; a written row naming an
    enterprise dim_enterprise does not hold fails it, an old one does not; `dbt test` reads every row."""
    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    project = ROOT / "dbt_project"
    target = tmp_path / "target"
    transform.dbt(["build", "--select", "fct_tech_contracts", "--exclude-resource-type", "unit_test",
                   "--target-path", str(target), "--quiet"], project)
    folder = target / "run" / "corridor" / "models" / "marts" / "_marts__models.yml"
    [test_sql] = [p.read_text(encoding="utf-8") for p in folder.glob("relationships_fct_tech_contrac*.sql")
                  if "seller_uscc" in p.read_text(encoding="utf-8") and "dim_enterprise" in p.read_text(encoding="utf-8")]
    assert '"fct_tech_contracts__rows_written"' in test_sql and "in (select child.from_field from child)" in test_sql
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(test_sql).fetchone()[0] == 0
        # an old row naming no enterprise: not this build's
        conn.execute("update marts.fct_tech_contracts set seller_uscc = 'NO-SUCH-ENTERPRISE'"
                     " where registration_no = (select min(registration_no) from marts.fct_tech_contracts)")
        assert conn.execute(test_sql).fetchone()[0] == 0
        # a row the build wrote
        record_as_written(conn, "fct_tech_contracts",
                          "update marts.fct_tech_contracts set seller_uscc = 'NO-SUCH-ENTERPRISE-EITHER'"
                          " where registration_no = (select max(registration_no) from marts.fct_tech_contracts)"
                          " returning ctid")
        assert conn.execute(test_sql).fetchone()[0] == 1
    result = transform.dbt(["test", "--select", "fct_tech_contracts", "--target-path", str(target), "--quiet"],
                           project, check=False)
    failed = {r.node.name: r.failures for r in result.result.results if str(r.status) == "fail"}
    assert failed == {"relationships_fct_tech_contracts_seller_uscc__uscc__ref_dim_enterprise_": 2}, failed


def test_staging_tests_after_a_build_of_the_same_project_read_the_files_loaded_since(warehouse_copy, monkeypatch):
    """Raw rows never change: given the ledger id a successful build of the same project had tested
    (transform.increment_scope), the staging views' tests read the rows of later files only;
    without it, every row."""
    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    project = ROOT / "dbt_project"
    # stg_district__returns: its unique_combination reads every row sharing a key with a later file's
    build = ["build", "--select", "stg_bank__loans", "stg_district__returns", "--exclude-resource-type", "unit_test",
             "--quiet"]

    def failed(tested_ledger_id):
        """(rule, column, value) of every failure: the failing rows of a model's one not-null or
        accepted-values test (tests/generic/*_columns.sql) name them."""
        result = transform.dbt(build, project, check=False, tested_ledger_id=tested_ledger_id)
        assert len(result.result.results) > 8
        assert not [r.node.name for r in result.result.results if str(r.status) == "error"]
        found = []
        for r in result.result.results:
            if str(r.status) != "fail":
                continue
            assert r.node.test_metadata.name in {"not_null_columns", "accepted_values_columns"}, r.node.name
            with psycopg.connect(url) as conn:
                rows = conn.execute(r.node.compiled_code).fetchall()
            assert r.failures == len(rows) > 0
            found += [(rule, column, value[0] if value[:-1] else None) for column, rule, *value in rows]
        return sorted(found, key=str)

    with psycopg.connect(url, autocommit=True) as conn:
        last = conn.execute("select max(ledger_id) from raw.bank_loans").fetchone()[0]
        # a bad row in an earlier file: not read when every file up to last - 1 was tested
        conn.execute("create table public.bank_loans_before as select * from raw.bank_loans")
        conn.execute("update raw.bank_loans set loan_status = 'bogus'"
                     " where ctid = (select min(ctid) from raw.bank_loans where ledger_id < %s)", (last,))
    assert failed(last - 1) == []
    assert failed(None) == [("accepted_values", "loan_status", "bogus")]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("truncate raw.bank_loans")
        conn.execute("insert into raw.bank_loans select * from public.bank_loans_before")
        # a bad row in the last file: read; and a null the raw table would refuse (its constraint
        # dropped here): the model's one not-null test names the column
        conn.execute("alter table raw.bank_loans alter column borrower_uscc drop not null")
        conn.execute("update raw.bank_loans set loan_status = 'bogus', borrower_uscc = null"
                     " where ctid = (select min(ctid) from raw.bank_loans where ledger_id = %s)", (last,))
    assert failed(last - 1) == [("accepted_values", "loan_status", "bogus"), ("not_null", "borrower_uscc", None)]


def test_raw_tables_reach_the_models_analyzed_and_only_an_increment_past_the_rule_is_analyzed_again(
        warehouse_url, monkeypatch, tmp_path):
    """The loader leaves the raw tables' statistics to the build: an on-run-start hook
    (macros/analyze_raw_tables.sql) ANALYZEs, before any model runs, each raw table whose feed loaded
    rows since it was last analyzed there and is worth it by autovacuum's rule (over 50 rows + 10 %),
    deciding from the load ledger and ops.raw_analyzed. Autovacuum is off for the table here, so that
    only an ANALYZE changes pg_class.reltuples."""
    import shutil

    from corridor.demo import generate
    from corridor.ingest import discover, ingest_feed, worth_analyzing
    from tests.conftest import TEST_PII_KEY

    url = warehouse_url
    point_dbt_at(monkeypatch, url)
    generated = tmp_path / "generated"
    generate(generated, seed=11, scale="city", start="2021-01", end="2021-06")
    files = discover(generated, "bank")
    deliveries = [files[:24], files[24:25], files[25:]]  # most of it; one file; the rest
    landing = tmp_path / "landing"
    (landing / "bank").mkdir(parents=True)

    def deliver_and_run(paths) -> tuple:
        for path in paths:
            shutil.copy2(path, landing / "bank" / path.name)
        assert ingest_feed(url, "bank", landing, pii_key=TEST_PII_KEY).count("loaded") == len(paths)
        with psycopg.connect(url) as conn:  # the loader analyzed nothing: no statistics yet, or the old ones
            before = conn.execute("select reltuples from pg_class where oid = 'raw.bank_loans'::regclass").fetchone()[0]
        transform.dbt(["run", "--select", "stg_bank__loans", "--quiet"], ROOT / "dbt_project")
        with psycopg.connect(url) as conn:
            tuples, rows = conn.execute("select (select reltuples from pg_class where oid = 'raw.bank_loans'::regclass),"
                                        " (select count(*) from raw.bank_loans)").fetchone()
            recorded = conn.execute("select rows_loaded, analyzed_at from ops.raw_analyzed"
                                    " where table_name = 'bank_loans'").fetchone()
            unloaded = conn.execute("select count(*) from ops.raw_analyzed where table_name <> 'bank_loans'"
                                    ).fetchone()[0]
        assert unloaded == 0  # the feeds that loaded nothing: not analyzed
        return before, tuples, rows, recorded

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter table raw.bank_loans set (autovacuum_enabled = off)")
    # an empty warehouse: the rows reach dbt's models analyzed
    before, tuples, first_rows, first = deliver_and_run(deliveries[0])
    assert before < 0 and first_rows > 200 and tuples == first_rows and first[0] == first_rows
    # one file more: fewer than 50 rows + 10 % of those counted: not analyzed again
    before, tuples, rows, recorded = deliver_and_run(deliveries[1])
    assert 0 < rows - first_rows and not worth_analyzing(rows - first_rows, first_rows)
    assert before == tuples == first_rows and recorded == first
    # the rest: enough rows for autovacuum's rule: analyzed again
    before, tuples, rows, recorded = deliver_and_run(deliveries[2])
    assert worth_analyzing(rows - first_rows, first_rows)
    assert before == first_rows and tuples == rows and recorded[0] == rows and recorded[1] > first[1]


def test_a_staging_key_that_holds_its_file_is_tested_on_the_files_loaded_since(warehouse_copy, monkeypatch):
    """A staging key ledger_id || '-' || source_row (meta key_holds_ledger_id) is shared only by rows of one
    file: its unique test reads the later files' rows (not every raw row, to find those sharing their keys)
    and still fails on a duplicate among them; a key without that meta reads every row sharing a key."""
    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    project = ROOT / "dbt_project"
    build = ["build", "--select", "stg_bank__loans", "stg_district__returns", "--exclude-resource-type", "unit_test",
             "--quiet"]
    with psycopg.connect(url, autocommit=True) as conn:
        last = conn.execute("select max(ledger_id) from raw.bank_loans").fetchone()[0]
        earlier = conn.execute("select max(ledger_id) from raw.bank_loans where ledger_id < %s", (last,)).fetchone()[0]

    def unique_tests(tested_ledger_id):
        result = transform.dbt(build, project, check=False, tested_ledger_id=tested_ledger_id)
        return {r.node.name: (str(r.status), r.failures, r.node.compiled_code) for r in result.result.results
                if r.node.name.startswith("unique")}

    # a duplicated row in the last file, and one in an earlier file
    with psycopg.connect(url, autocommit=True) as conn:
        for ledger_id in (last, earlier):
            conn.execute("insert into raw.bank_loans select * from raw.bank_loans"
                         " where ctid = (select min(ctid) from raw.bank_loans where ledger_id = %s)", (ledger_id,))
    tests = unique_tests(last - 1)
    status, failures, code = tests["unique_stg_bank__loans_loan_row_id"]
    assert (status, failures) == ("fail", 1)
    assert f"ledger_id > {last - 1}" in code and " in (select" not in code
    status, failures, code = tests["unique_stg_district__returns_ledger_id"]
    assert status == "pass" and " in (select" not in code
    # area, month and version: a later file may repeat an earlier one's, so every row sharing the key is read
    status, _, code = tests["unique_combination_stg_district__returns_area_code__report_month__file_version"]
    assert status in {"pass", "warn"} and " in (select" in code
    assert unique_tests(None)["unique_stg_bank__loans_loan_row_id"][:2] == ("fail", 2)


def test_a_file_committed_after_a_later_files_id_was_built_on_is_not_skipped(
        warehouse_url, tmp_path, monkeypatch):
    """Ledger ids come from one sequence; each feed's loader commits its files in order, but two feeds load side
    by side (the ingest DAGs of each feed, `corridor ingest` in two terminals). A bank file took its id, then a
    techmarket file took a higher one and committed first. A build in between (the build DAG starts on any feed's
    Asset) saw the higher id and not the bank file; dim_enterprise's watermark, which spans the feeds, passed the
    bank file's id, and every later build skipped its observations (until a full refresh). Now a file's
    transaction holds the ledger lock shared and a dbt command that writes holds it exclusive: a build waits
    for the files being committed, and reads none committed behind its back."""
    import shutil
    import threading
    import time

    from corridor import ingest
    from corridor.demo import generate
    from corridor.ingest import discover, ingest_feed
    from tests.conftest import TEST_PII_KEY

    url = warehouse_url
    point_dbt_at(monkeypatch, url)
    project = ROOT / "dbt_project"
    generated = tmp_path / "generated"
    generate(generated, seed=11, scale="city", start="2021-01", end="2021-04")
    landing = tmp_path / "landing"
    april = {"bank": [p for p in discover(generated, "bank") if "_202104" in p.name][-1:],
             "techmarket": [p for p in discover(generated, "techmarket") if "_202104" in p.name]}
    assert april["bank"] and april["techmarket"]
    for feed in ("district", "techmarket", "bank", "hr"):
        (landing / feed).mkdir(parents=True)
        for path in discover(generated, feed):
            if path not in april.get(feed, []):
                shutil.copy2(path, landing / feed / path.name)
        assert not ingest_feed(url, feed, landing, pii_key=TEST_PII_KEY).rejected
    transform.dbt_recorded(url, ["build", "--quiet"], project)

    # the bank file takes its id and stops before its COPY, its transaction open
    in_flight, go = threading.Event(), threading.Event()
    copy_spool = ingest.Loader._copy_spool

    def bank_copy_waits(self, *args, **kwargs):
        if self.feed == "bank" and not go.is_set():
            in_flight.set()
            assert go.wait(180)
        return copy_spool(self, *args, **kwargs)

    monkeypatch.setattr(ingest.Loader, "_copy_spool", bank_copy_waits)
    for path in april["bank"]:
        shutil.copy2(path, landing / "bank" / path.name)
    bank = threading.Thread(target=ingest_feed, args=(url, "bank", landing), kwargs={"pii_key": TEST_PII_KEY})
    bank.start()
    assert in_flight.wait(120)
    for path in april["techmarket"]:  # the techmarket files take later ids and commit
        shutil.copy2(path, landing / "techmarket" / path.name)
    assert ingest_feed(url, "techmarket", landing, pii_key=TEST_PII_KEY).count("loaded") == len(april["techmarket"])

    def release_the_bank_file_once_a_build_waits_for_it() -> None:
        while not go.is_set():
            if awaits_advisory_lock(url, "corridor dbt build"):
                go.set()
            time.sleep(0.05)

    releaser = threading.Thread(target=release_the_bank_file_once_a_build_waits_for_it)
    releaser.start()
    said: list[str] = []
    try:
        transform.dbt_recorded(url, ["build", "--quiet"], project, log=said.append)  # the build DAG's run
    finally:
        go.set()  # a build that did not wait: the bank file commits now, after it
        bank.join(120)
        releaser.join(10)
    with psycopg.connect(url) as conn:
        ids = dict(conn.execute("select feed, max(ledger_id) from ops.load_ledger where file_name = any(%s)"
                                " group by feed", ([p.name for p in april["bank"] + april["techmarket"]],)))
    assert ids["bank"] < ids["techmarket"]  # the bank file's id is the lower one
    transform.dbt_recorded(url, ["build", "--quiet"], project)  # the next delivery's build
    built = _snapshot(url, "marts.dim_enterprise", "uscc")
    transform.dbt(["run", "--full-refresh", "--select", "+dim_enterprise", "--quiet"], project)
    assert built == _snapshot(url, "marts.dim_enterprise", "uscc")
    assert any("a file" in line and "committ" in line and "waits" in line for line in said), said


def test_a_plain_dbt_command_that_writes_is_refused_before_it_writes(warehouse_copy, tmp_path):
    """`dbt run` straight from the shell holds no build lock: loaders would commit files while it reads the raw
    tables, a publication would read the tables it replaces, and nothing would record what it wrote. The
    project's first on-run-start hook refuses it (and a list of backends that do not hold the lock), naming
    what to run instead; `corridor dbt run` with the same arguments runs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from corridor import db

    url = warehouse_copy
    project = str(ROOT / "dbt_project")
    plain = [str(Path(sys.executable).with_name("dbt")), "run", "--select", "kpi_values", "--project-dir", project,
             "--profiles-dir", project, "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != transform.BUILD_LOCK_BACKENDS_ENV} | db.dbt_env(url)

    def kpi_values_table() -> int:
        with psycopg.connect(url) as conn:
            return conn.execute("select 'kpi.kpi_values'::regclass::oid").fetchone()[0]

    table = kpi_values_table()
    refused = subprocess.run(plain, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert ("`dbt run` writes this warehouse only under its build lock, which loaders, the quality gate, "
            "publications and other builds wait for: run it as `corridor dbt run ...`") in refused.stdout, \
        refused.stdout
    with psycopg.connect(url, autocommit=True) as other:  # a backend that does not hold the lock
        forged = subprocess.run(plain, env=env | {transform.BUILD_LOCK_BACKENDS_ENV: str(other.info.backend_pid)},
                                capture_output=True, text=True, timeout=300)
    assert forged.returncode != 0 and "only under its build lock" in forged.stdout, forged.stdout
    assert kpi_values_table() == table  # not replaced

    corridor = subprocess.run([str(Path(sys.executable).with_name("corridor")), "dbt", "run", "--select",
                               "kpi_values"], env={**os.environ, "CORRIDOR_WAREHOUSE_URL": url},
                              capture_output=True, text=True, timeout=300)
    assert corridor.returncode == 0, corridor.stdout + corridor.stderr
    assert kpi_values_table() != table  # dbt's table materialisation: a new table renamed into place
