"""The BI contract on the built city demo set: what BI may read (exactly the public models), that it
can reproduce every KPI from them, row security per area, identities that never merge silently,
KPI codes guarded by the build, cancellations kept as data, unreported projects flagged."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from corridor import transform
from corridor.db import libpq_params
from tests.conftest import ROOT, point_dbt_at

AREAS = ("LW", "OH", "YQ", "RA", "ZN", "OJK")
SCALE = Decimal("1e-10")  # var kpi_value_scale: kpi_values rounds to 10 decimals


def _login(pg_admin_url: str, url: str, member_of: str) -> tuple[str, str]:
    """A login role in `member_of` (as an official's or a BI tool's login); returns (role, conninfo)."""
    name = f"login_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login password {} in role {}").format(
            sql.Identifier(name), sql.Literal(password), sql.Identifier(member_of)))
    params = libpq_params(url)
    return name, psycopg.conninfo.make_conninfo(host=params["host"], port=params["port"], dbname=params["dbname"],
                                                user=name, password=password)


def _drop_login(pg_admin_url: str, name: str) -> None:
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


@pytest.fixture
def bi_reader_login(built_warehouse, pg_admin_url):
    name, conninfo = _login(pg_admin_url, built_warehouse.url, "bi_reader")
    yield conninfo
    _drop_login(pg_admin_url, name)


@pytest.fixture
def area_lw_login(built_warehouse, pg_admin_url):
    name, conninfo = _login(pg_admin_url, built_warehouse.url, "area_lw")
    yield conninfo
    _drop_login(pg_admin_url, name)


def _public_models() -> set[str]:
    manifest = json.loads((transform.dbt_state_dir() / "target" / "manifest.json").read_text(encoding="utf-8"))
    return {f"{n['schema']}.{n['alias']}" for n in manifest["nodes"].values()
            if n["resource_type"] == "model" and n.get("access") == "public"}


def _selectable(conn) -> set[str]:
    return {r[0] for r in conn.execute(
        """
        select table_schema || '.' || table_name from information_schema.tables
        where table_schema not in ('pg_catalog', 'information_schema')
          and has_table_privilege(quote_ident(table_schema) || '.' || quote_ident(table_name), 'select')
        """)}


# -- 1. contracts and access ---------------------------------------------------------------------

def test_bi_reader_can_select_exactly_the_public_models(bi_reader_login):
    public = _public_models()
    with psycopg.connect(bi_reader_login) as conn:
        selectable = _selectable(conn)
    print(f"\nbi_reader can select {len(selectable)} relations: {sorted(selectable)}")
    assert len(public) == 13
    assert selectable == public
    assert "kpi.kpi_periods" not in selectable and "kpi.kpi_measures_platforms" not in selectable


def test_every_public_model_has_an_enforced_contract_a_database_key_and_documented_columns(built_warehouse):
    manifest = json.loads((transform.dbt_state_dir() / "target" / "manifest.json").read_text(encoding="utf-8"))
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    with psycopg.connect(built_warehouse.url) as conn:
        keys = {(r[0], r[1]) for r in conn.execute(
            "select table_schema, table_name from information_schema.table_constraints"
            " where constraint_type = 'PRIMARY KEY' and table_schema in ('marts', 'kpi')")}
    for node in models:
        assert node["group"] == "corridor_data_team" and node["config"]["meta"].get("owner"), node["name"]
        if node["access"] != "public":
            assert node["access"] == "protected", node["name"]
            continue
        assert node["contract"]["enforced"], node["name"]
        assert (node["schema"], node["alias"]) in keys, f"{node['name']} has no primary key in the database"
        undocumented = [c for c, col in node["columns"].items() if not col.get("description")]
        assert not undocumented, (node["name"], undocumented)


def test_the_bi_exposure_names_every_model_bi_reads(built_warehouse):
    """The docs' lineage of the BI exposure (and `dbt build -s +exposure:corridor_bi`) covers exactly what
    bi_reader may read: every public model, among them dim_period (the period spine and as-of date) and
    fct_platform_states (the validity windows six KPIs are counted from)."""
    manifest = json.loads((transform.dbt_state_dir() / "target" / "manifest.json").read_text(encoding="utf-8"))
    public = {uid for uid, n in manifest["nodes"].items()
              if n["resource_type"] == "model" and n.get("access") == "public"}
    exposure = manifest["exposures"]["exposure.corridor.corridor_bi"]
    assert "bi_reader" in exposure["description"]
    missing = sorted(public - set(exposure["depends_on"]["nodes"]))
    assert missing == [] and set(exposure["depends_on"]["nodes"]) == public, missing


def test_the_scorecard_exposures_name_every_relation_the_scorecards_read(built_warehouse):
    """The scorecards' lineage in the docs (and `dbt build -s +exposure:…_scorecard`) covers what
    src/corridor/scorecards reads: every edition the KPIs, their periods and the period's detail lists; the
    year-end edition the ranking too (and only it)."""
    import re

    manifest = json.loads((transform.dbt_state_dir() / "target" / "manifest.json").read_text(encoding="utf-8"))
    read = set()
    for path in (ROOT / "src" / "corridor" / "scorecards").glob("*.py"):
        read |= set(re.findall(r"\b(?:marts|kpi)\.([a-z_]+)\b", path.read_text(encoding="utf-8")))
    assert {"kpi_values", "kpi_periods", "fct_projects", "area_ranking"} <= read, read
    for edition in ("monthly", "quarterly", "year_end"):
        exposure = manifest["exposures"][f"exposure.corridor.{edition}_scorecard"]
        names = {uid.rsplit(".", 1)[1] for uid in exposure["depends_on"]["nodes"]}
        expected = read if edition == "year_end" else read - {"area_ranking"}
        assert names == expected, (edition, sorted(expected - names), sorted(names - expected))


def test_the_public_models_documentation_is_in_the_database(built_warehouse):
    """persist_docs (macros/persist_docs.sql: one statement, no catalog lookup, for contracted models):
    every public table and each of its columns carry their YAML description as a comment."""
    manifest = json.loads((transform.dbt_state_dir() / "target" / "manifest.json").read_text(encoding="utf-8"))
    public = [n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n.get("access") == "public"]
    assert len(public) == 13
    with psycopg.connect(built_warehouse.url) as conn:
        for node in public:
            relation = f"{node['schema']}.{node['alias']}"
            table = conn.execute("select obj_description(%s::regclass, 'pg_class')", (relation,)).fetchone()[0]
            assert table == node["description"], relation
            columns = dict(conn.execute(
                "select attname, col_description(attrelid, attnum) from pg_attribute"
                " where attrelid = %s::regclass and attnum > 0 and not attisdropped", (relation,)).fetchall())
            assert columns == {c: col["description"] for c, col in node["columns"].items()}, relation


def test_a_table_rebuilt_whole_refuses_a_bad_row_and_keeps_its_rows(warehouse_copy, monkeypatch, tmp_path):
    """The not-null, accepted-values and key rules of the tables rebuilt whole are held by the database
    (contract constraints, unique indexes made before the swap), not by test nodes: a bad row fails the
    model, naming the rule, and the table keeps the rows it had."""
    point_dbt_at(monkeypatch, warehouse_copy)
    target = tmp_path / "target"

    def run(model: str) -> str:
        result = transform.dbt(["run", "--select", model, "--target-path", str(target), "--quiet"],
                               ROOT / "dbt_project", check=False)
        [node] = [r for r in result.result.results if r.node.unique_id == f"model.corridor.{model}"]
        assert str(node.status) == "error", (model, node.status)
        return node.message

    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        def rows(table: str) -> list:
            return conn.execute(f"select md5(string_agg(t::text, ',' order by t::text)), count(*) from {table} t"  # noqa: S608
                                ).fetchone()

        platforms, periods = rows("marts.fct_platform_states"), rows("kpi.kpi_periods")
        # a category outside the accepted values (a check constraint of the contract)
        conn.execute("update intermediate.int_platform_states_windowed set platform_category = '未知类别'"
                     " where platform_state_id = (select min(platform_state_id)"
                     " from intermediate.int_platform_states_windowed)")
        message = run("fct_platform_states")
        assert "violates check constraint" in message and "platform_category" in message, message
        # a null where the contract says not null
        conn.execute("update intermediate.int_platform_states_windowed set platform_category = null, valid_from = null"
                     " where platform_state_id = (select min(platform_state_id)"
                     " from intermediate.int_platform_states_windowed)")
        message = run("fct_platform_states")
        assert "not-null constraint" in message and "valid_from" in message, message
        assert rows("marts.fct_platform_states") == platforms
        # a duplicate key of an internal table (its unique index): dim_period's own unique constraint dropped
        [unique] = conn.execute("select conname from pg_constraint where contype = 'u'"
                                " and conrelid = 'marts.dim_period'::regclass").fetchone()
        conn.execute(sql.SQL("alter table marts.dim_period drop constraint {}").format(sql.Identifier(unique)))
        conn.execute("create temporary table period_again as select * from marts.dim_period where grain = 'year' limit 1")
        conn.execute("update period_again set period_id = 'again:' || period_id")
        conn.execute("insert into marts.dim_period select * from period_again")
        message = run("kpi_periods")
        assert "could not create unique index" in message and "(grain, period_start)" in message, message
        assert rows("kpi.kpi_periods") == periods


# -- 2. BI reproduces every KPI from the public marts alone -----------------------------------------

_RECOMPUTE = """
with d as (
    select period_end as d, date_trunc('year', period_end)::date as year_start
    from marts.dim_period where grain = 'month' and period_start = %(month)s
),
platforms as (
    select s.* from marts.fct_platform_states as s cross join d
    where s.is_in_force and s.valid_from <= d.d and (s.valid_to is null or s.valid_to >= d.d)
),
certificates as (
    select c.* from marts.fct_certifications as c cross join d
    where c.valid_from <= d.d and (c.valid_to is null or c.valid_to >= d.d)
),
projects as (
    select p.* from marts.fct_projects as p cross join d where p.snapshot_date = d.d
),
talents as (
    select t.* from marts.fct_talent_intake as t cross join d
    where t.intake_date <= d.d and (t.withdrawn_date is null or t.withdrawn_date > d.d)
),
persons as (
    select distinct on (person_key) person_key, area_code from talents
    where talent_category in ('A', 'B', 'C', 'D', 'E') and intake_date >= '2020-01-01'
    order by person_key, intake_date, record_id
),
teams as (
    select distinct on (team_id) team_id, area_code, intake_date from talents
    where team_id is not null order by team_id, intake_date, record_id
),
contracts as (
    select c.seller_area_code as area_code,
        sum(c.tech_value_10k_yuan) filter (where c.registration_date >= d.year_start) as this_year,
        sum(c.tech_value_10k_yuan) filter (
            where c.registration_date <= (d.d - interval '1 year')::date) as last_year
    from marts.fct_tech_contracts as c cross join d
    where not c.is_cancelled
      and c.registration_date between (d.year_start - interval '1 year')::date and d.d
    group by grouping sets ((c.seller_area_code), ())
),
loans as (
    select l.* from marts.fct_pledge_loans as l cross join d
    where l.disbursed_date between d.year_start and d.d
),
facts as (
    select 'K01' as kpi, area_code, platform_key as item, null::numeric as amount from platforms
        where platform_category = '高能级创新平台' and recognised_date >= '2020-01-01'
    union all select 'K02', area_code, platform_key, null from platforms
        where platform_category = '省级企业研究院' and recognised_date >= '2020-01-01'
    union all select 'K07', area_code, platform_key, null from platforms where platform_category = '产业创新服务综合体'
    union all select 'K13', area_code, platform_key, null from platforms where platform_category = '高校协同创新中心'
    union all select 'K14', area_code, platform_key, null from platforms where platform_category = '产教融合示范基地'
    union all select 'K09', area_code, null, incubation_area_m2 / 10000 from platforms
        where platform_category in ('孵化器', '加速器')
    union all select 'K04', area_code, uscc, null from certificates where certification_type = '高新技术企业'
    union all select 'K05', area_code, uscc, null from certificates where certification_type = '省级科技型中小企业'
    union all select 'K10', c.area_code, c.uscc, null from marts.fct_certifications as c cross join d
        where c.certification_type in ('瞪羚企业', '创新型领军企业') and c.granted_date between '2020-01-01' and d.d
    union all select 'K08', area_code, project_key, null from projects
        where project_category = '未来社区' and project_status in ('在建', '完成')
    union all select 'K11', p.area_code, p.project_key, null from projects as p cross join d
        where p.project_category = '重大科技项目' and p.project_status <> '终止'
          and p.start_date between '2020-01-01' and d.d
    union all select 'K15', p.area_code, p.project_key, null from projects as p cross join d
        where p.project_category = '卡脖子技术攻关' and p.project_status <> '终止'
          and p.start_date between d.year_start and d.d
    union all select 'K16', area_code, project_key, null from projects
        where project_category = '重点区块' and project_status = '完成'
    union all select 'K06', area_code, person_key, null from persons
    union all select 'K12', t.area_code, t.team_id, null from teams as t cross join d where t.intake_date >= d.year_start
    union all select 'K17', area_code, null, loan_amount_yuan / 100000000 from loans where is_ip_pledge
    union all select 'K18', area_code, borrower_uscc, null from loans
)
select kpi, coalesce(area_code, 'ALL'),
    case when kpi in ('K09', 'K17') then sum(amount) else count(distinct item) end
from facts group by grouping sets ((kpi, area_code), (kpi))
union all
select 'K03', coalesce(area_code, 'ALL'), this_year / last_year - 1 from contracts where last_year > 0
"""


def test_bi_reader_recomputes_every_kpi_of_every_month_from_the_public_marts(bi_reader_login):
    """Every month the KPI layer publishes (a rule can hold in June and break in a month with a withdrawal, a
    restatement or a year boundary), recomputed from the public marts alone."""
    with psycopg.connect(bi_reader_login) as conn:
        as_of = conn.execute("select distinct as_of_date from marts.dim_period").fetchall()
        months = [m for (m,) in conn.execute(
            "select distinct period_start from kpi.kpi_values where grain = 'month' order by 1").fetchall()]
        mismatches = {}
        published_count = 0
        for month in months:
            recomputed = {(k, a): v for k, a, v in conn.execute(_RECOMPUTE, {"month": month}).fetchall()}
            published = {(k, a): v for k, a, v in conn.execute(
                "select kpi_code, area_code, actual_value from kpi.kpi_values"
                " where grain = 'month' and period_start = %s", (month,)).fetchall()}
            assert len(published) == 18 * 7, month
            assert {k for k, _ in published} == {f"K{n:02d}" for n in range(1, 19)}, month
            published_count += len(published)
            for (kpi, area), value in published.items():
                mine = recomputed.get((kpi, area))
                if mine is None and kpi != "K03":  # a missing count or sum is 0; a rate without a base stays null
                    mine = Decimal(0)
                mine = None if mine is None else Decimal(mine).quantize(SCALE)
                theirs = None if value is None else Decimal(value).quantize(SCALE)
                if mine != theirs:
                    mismatches[(month, kpi, area)] = (mine, theirs)
            if month == date(2022, 6, 1):
                assert all(published[(k, "ALL")] is not None for k in ("K01", "K04", "K06", "K17"))
    assert as_of == [(date(2022, 12, 31),)]
    assert date(2022, 6, 1) in months and len(months) >= 36, months
    print(f"\nrecomputed {published_count} KPI values of {len(months)} months from the public marts as bi_reader: "
          f"{published_count - len(mismatches)} equal kpi_values")
    assert not mismatches, dict(list(mismatches.items())[:10])


def test_dim_period_says_which_periods_lack_a_delivery_as_the_gate_and_the_scorecards_do(
        built_warehouse, warehouse_copy, monkeypatch, tmp_path):
    """A BI user reads from marts.dim_period whether a period's KPI values are provisional and what is missing:
    the same months and deliveries as the gate's and the scorecards' rule (corridor.quality.completeness),
    for every month, quarter and year of the spine. The demo set lacks nothing, so a copy is made to lack an
    area's return, a bank's file, a talent file and the contract exports of December's last working days."""
    from corridor.quality.completeness import missing_deliveries_sql

    with psycopg.connect(built_warehouse.url) as conn:
        assert conn.execute("select bool_and(is_complete), count(missing_deliveries) from marts.dim_period"
                            ).fetchone() == (True, 0)
    with psycopg.connect(warehouse_copy) as conn:
        conn.execute("delete from raw.district_returns where area_code = 'LW' and report_month = '2021-11-01'")
        conn.execute("update ops.load_ledger set status = 'rejected' where file_name in"
                     " ('WZB_202106.csv', 'talent_202203.jsonl')")
        last = conn.execute("select max(file_name) from ops.load_ledger where feed = 'techmarket'"
                            " and status = 'loaded'").fetchone()[0]
        assert last >= "tech_contracts_20221230.csv", last  # a working day: December 2022 is complete
        conn.execute("update ops.load_ledger set status = 'rejected' where feed = 'techmarket'"
                     " and file_name > 'tech_contracts_20221228.csv'")
    point_dbt_at(monkeypatch, warehouse_copy)
    transform.dbt(["run", "--select", "dim_period", "--quiet", "--target-path", str(tmp_path / "target")],
                  ROOT / "dbt_project")
    with psycopg.connect(warehouse_copy) as conn:
        periods = conn.execute("select grain, period_start, period_end, is_complete, missing_deliveries"
                               " from marts.dim_period order by grain, period_start").fetchall()
        months = [start for grain, start, *_ in periods if grain == "month"]
        theirs = conn.execute("with months as (select unnest(%s::date[]) as month_start),\n"
                              + missing_deliveries_sql() + " select month_start, feed, source_code from missing",
                              (months,)).fetchall()
    expected: dict[date, set[str]] = {}
    for month, feed, source in theirs:
        code = f"{feed}:{source}" if feed in ("district", "bank") else feed
        expected.setdefault(month, set()).add(f"{code}:{month:%Y-%m}")
    assert expected == {date(2021, 6, 1): {"bank:WZB:2021-06"}, date(2021, 11, 1): {"district:LW:2021-11"},
                        date(2022, 3, 1): {"hr:2022-03"}, date(2022, 12, 1): {"techmarket:2022-12"}}
    wrong = {}
    for grain, start, end, complete, missing in periods:
        missing = [] if missing is None else missing.split(" ")
        want = set().union(*[items for month, items in expected.items() if start <= month <= end])
        if set(missing) != want or complete != (not want) or len(missing) != len(set(missing)):
            wrong[(grain, start)] = (complete, missing, sorted(want))
    assert not wrong, dict(list(wrong.items())[:5])
    assert [(g, str(s)) for g, s, _, complete, _ in periods if not complete] == [
        ("month", "2021-06-01"), ("month", "2021-11-01"), ("month", "2022-03-01"), ("month", "2022-12-01"),
        ("quarter", "2021-04-01"), ("quarter", "2021-10-01"), ("quarter", "2022-01-01"), ("quarter", "2022-10-01"),
        ("year", "2021-01-01"), ("year", "2022-01-01")]


# -- 7. row security per area ----------------------------------------------------------------------

def test_area_role_sees_only_its_area_and_the_corridor_and_cannot_write(area_lw_login, built_warehouse):
    with psycopg.connect(built_warehouse.url) as conn:
        lw_contracts = conn.execute(
            "select count(*) from marts.fct_tech_contracts where seller_area_code = 'LW'").fetchone()[0]
        all_contracts = conn.execute("select count(*) from marts.fct_tech_contracts").fetchone()[0]
    with psycopg.connect(area_lw_login, autocommit=True) as conn:
        by_area = dict(conn.execute(
            "select seller_area_code, count(*) from marts.fct_tech_contracts group by 1").fetchall())
        print(f"\narea_lw sees marts.fct_tech_contracts rows by area: {by_area} "
              f"(of {all_contracts} rows in all areas)")
        assert by_area == {"LW": lw_contracts} and 0 < lw_contracts < all_contracts
        for table, column in (("marts.fct_pledge_loans", "area_code"), ("marts.fct_certifications", "area_code"),
                              ("marts.fct_talent_intake", "area_code"), ("marts.fct_projects", "area_code"),
                              ("marts.fct_platform_states", "area_code"), ("marts.dim_platform", "area_code"),
                              ("marts.dim_area", "area_code"), ("marts.dim_enterprise", "area_code")):
            seen = {r[0] for r in conn.execute(f"select distinct {column} from {table}")}
            assert seen == {"LW"}, table
        assert {r[0] for r in conn.execute("select distinct area_code from kpi.kpi_values")} == {"LW", "ALL"}
        assert {r[0] for r in conn.execute("select distinct area_code from kpi.area_ranking")} == set(AREAS)
        assert conn.execute("select count(*) from kpi.kpi_catalogue").fetchone()[0] == 18
        assert conn.execute("select count(*) from marts.dim_period").fetchone()[0] == 36 + 12 + 3
        for statement in ("insert into marts.fct_tech_contracts (registration_no) values ('0000000000000000')",
                          "update marts.fct_tech_contracts set tech_value_10k_yuan = 0",
                          "delete from kpi.kpi_values",
                          "select 1 from kpi.kpi_measures_platforms",
                          "select 1 from raw.techmarket_contracts"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_bi_reader_sees_every_area(bi_reader_login):
    with psycopg.connect(bi_reader_login) as conn:
        seen = {r[0] for r in conn.execute("select distinct seller_area_code from marts.fct_tech_contracts")}
        kpi_areas = {r[0] for r in conn.execute("select distinct area_code from kpi.kpi_values")}
    assert seen == set(AREAS) and kpi_areas == {*AREAS, "ALL"}


def test_area_roles_are_nologin_and_created_by_the_dbt_run(built_warehouse):
    with psycopg.connect(built_warehouse.url) as conn:
        roles = dict(conn.execute(
            "select rolname, rolcanlogin from pg_roles"
            " where rolname ~ '^area_' or rolname in ('bi_reader', 'corridor_area_reader')").fetchall())
    assert roles == {**{f"area_{a.lower()}": False for a in AREAS}, "bi_reader": False,
                     "corridor_area_reader": False}


# -- 3. identity never merges silently ----------------------------------------------------------------

def _k10_2022(url: str) -> Decimal:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select actual_value from kpi.kpi_values where kpi_code = 'K10' and area_code = 'ALL'"
            " and grain = 'year' and period_start = '2022-01-01'").fetchone()[0]


def test_one_certificate_number_granted_to_two_enterprises_is_two_certificates_and_a_warning(
        built_warehouse, warehouse_copy, monkeypatch):
    url = warehouse_copy
    point_dbt_at(monkeypatch, url)
    before = _k10_2022(url)
    with psycopg.connect(url) as conn:
        # A 瞪羚企业 number of one area granted, in another area's counted return, to an enterprise
        # that has no 瞪羚/领军 certificate yet.
        number, area = conn.execute(
            "select certificate_no, area_code from marts.fct_certifications"
            " where certification_type = '瞪羚企业' and granted_date >= '2022-01-01' order by 1 limit 1").fetchone()
        other = conn.execute(
            """
            select r.ledger_id, r.area_code, r.report_month, e.uscc
            from intermediate.int_district_returns_versioned as r
            join marts.dim_enterprise as e on e.area_code = r.area_code
            where r.area_code <> %s and r.report_month = '2022-06-01'
              and not exists (select 1 from marts.fct_certifications as c where c.uscc = e.uscc
                              and c.certification_type in ('瞪羚企业', '创新型领军企业'))
            order by r.area_code, e.uscc limit 1
            """, (area,)).fetchone()
        ledger_id, other_area, month, uscc = other
        conn.execute(
            """
            insert into raw.district_certifications
            select * from raw.district_certifications where certificate_no = %s and change_type = '新增' limit 1
            """, (number,))
        conn.execute(
            """
            update raw.district_certifications set ledger_id = %s, area_code = %s, report_month = %s, uscc = %s,
                source_row = 9999, enterprise_name = '碰撞测试企业', granted_date = '2022-06-15'
            where ctid = (select max(ctid) from raw.district_certifications where certificate_no = %s)
            """, (ledger_id, other_area, month, uscc, number))
    # a row added to a workbook already loaded (not a new file): the incremental models assume loaded
    # files never change, so this needs --full-refresh (dbt_project/README.md, Incremental models)
    result = transform.dbt(["build", "--select", "int_district_certifications_versioned+", "--full-refresh", "--quiet"],
                           ROOT / "dbt_project")
    warned = [r for r in result.result.results if r.node.name == "assert_certificate_numbers_unique_per_scheme"]
    assert [(str(r.status), r.failures) for r in warned] == [("warn", 1)]
    with psycopg.connect(url) as conn:
        holders = conn.execute(
            "select uscc, area_code from marts.fct_certifications where certificate_no = %s order by area_code",
            (number,)).fetchall()
        listed = conn.execute(
            "select * from ({}) as collisions".format(
                (transform.dbt_state_dir() / "target" / "compiled" / "corridor" / "tests"
                 / "assert_certificate_numbers_unique_per_scheme.sql").read_text(encoding="utf-8"))).fetchall()
    assert len(holders) == 2 and uscc in {h[0] for h in holders}
    assert [(row[0], row[1], row[2]) for row in listed] == [("瞪羚企业", number, 2)]
    assert _k10_2022(url) == before + 1


# -- 4. KPI codes are guarded -----------------------------------------------------------------------

def test_a_kpi_target_without_a_measure_fails_the_build(built_warehouse, warehouse_copy, monkeypatch, tmp_path):
    point_dbt_at(monkeypatch, warehouse_copy)
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    with (project / "seeds" / "kpi_targets.csv").open("a", encoding="utf-8") as fh:
        fh.write('K19,新指标,个,district,count,annual,5,5 every year,year_linear,allocated,higher_is_better,'
                 '"A KPI with a target but no SQL."\n')
    target = tmp_path / "target"  # not the state folder's: the shared manifest stays the real project's
    with pytest.raises(RuntimeError, match="failed"):
        transform.dbt(["build", "--select", "kpi_targets", "assert_kpi_codes_have_one_measure", "--quiet",
                       "--target-path", str(target)], project)
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    guard = [r for r in results if r["unique_id"].startswith("test.corridor.assert_kpi_codes_have_one_measure")]
    assert [(r["status"], r["failures"]) for r in guard] == [("fail", 1)]


# -- 5. cancellations are data ------------------------------------------------------------------------

def test_cancelled_contracts_stay_in_the_fact_with_is_cancelled(built_warehouse):
    with psycopg.connect(built_warehouse.url) as conn:
        cancelled, status = conn.execute(
            "select count(*), array_agg(distinct registration_status) from marts.fct_tech_contracts"
            " where is_cancelled").fetchone()
        latest_cancelled = conn.execute(
            """
            select count(*) from (
                select distinct on (registration_no) registration_status from raw.techmarket_contracts
                order by registration_no, export_date desc, ledger_id desc, source_row desc
            ) as latest where registration_status = '撤销'
            """).fetchone()[0]
    assert cancelled == latest_cancelled > 0
    assert status == ["撤销"]


# -- 6. unreported projects -----------------------------------------------------------------------------

def test_active_project_missing_from_its_areas_return_is_flagged_and_counted_on_the_scorecard(built_warehouse):
    from corridor.scorecards import load_scorecard
    from corridor.scorecards.render_html import render_html

    with psycopg.connect(built_warehouse.url) as conn:
        flagged = conn.execute(
            "select area_code, project_id, project_status, state_report_month, snapshot_month"
            " from marts.fct_projects where is_unreported").fetchall()
        assert flagged
        for area, project_id, status, reported, month in flagged:
            assert status in ("谋划", "在建") and reported < month
            in_return = conn.execute(
                """
                select count(*) filter (where p.project_id = %s), count(*)
                from intermediate.int_district_projects_versioned as p
                where p.area_code = %s and p.report_month = %s
                """, (project_id, area, month)).fetchone()
            assert in_return[0] == 0 and in_return[1] > 0, (area, project_id, month)
        final_later = conn.execute(
            "select count(*) from marts.fct_projects where is_unreported and project_status in ('完成', '终止')"
        ).fetchone()[0]
        lw_now = conn.execute(
            "select count(distinct project_key) from marts.fct_projects"
            " where is_unreported and is_current and area_code = 'LW'").fetchone()[0]
    assert final_later == 0
    sc = load_scorecard(built_warehouse.url, "monthly", date(2022, 12, 1), "LW", None)
    assert sc.unreported_projects == lw_now > 0
    assert f"{lw_now}个在建或谋划项目" in render_html(sc)


def test_a_bi_session_reading_in_one_snapshot_takes_the_build_lock_before_it_begins(warehouse_copy, pg_admin_url):
    """dbt replaces a table it rebuilds whole by renaming a new one into place: in a snapshot taken before that,
    the table reads as empty. A BI session that reads several tables in one REPEATABLE READ transaction
    therefore takes the warehouse's build lock shared before it begins, with the statements the README gives:
    a build then waits for it, and it reads every table whole."""
    import os
    import re
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.conftest import awaits_advisory_lock

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lock, unlock = (re.search(rf"`(select pg_advisory_{verb}_shared\(hashtext\('[a-z_.]+'\)\))`", readme)[1]
                    for verb in ("lock", "unlock"))
    assert f"'{transform.BUILD_LOCK}'" in lock and f"'{transform.BUILD_LOCK}'" in unlock
    url = warehouse_copy
    name, conninfo = _login(pg_admin_url, url, "bi_reader")
    other_name, other_conninfo = _login(pg_admin_url, url, "bi_reader")
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url}
    rebuild = [str(Path(sys.executable).with_name("corridor")), "dbt", "run", "--select", "kpi_values"]
    try:
        with psycopg.connect(conninfo) as bi:
            whole = bi.execute("select count(*) from kpi.kpi_values").fetchone()[0]
            bi.commit()
            assert whole > 0
            # why: the snapshot taken (another table read), a build replaces kpi_values, which reads empty
            bi.execute("set transaction isolation level repeatable read")
            bi.execute("select count(*) from marts.dim_area")
            subprocess.run(rebuild, env=env, check=True, capture_output=True, timeout=300)
            assert bi.execute("select count(*) from kpi.kpi_values").fetchone()[0] == 0
            bi.commit()

            # the README's way: the lock before BEGIN, released after COMMIT
            bi.autocommit = True
            bi.execute(lock)
            # a dbt user without the right to read other roles' statistics still learns whose session it is
            with psycopg.connect(other_conninfo, autocommit=True) as other:
                assert transform._lock_users(other) == (
                    f"a reader is reading this warehouse (backend {bi.info.backend_pid} (no application name,"
                    f" user {name}))")
            bi.autocommit = False
            bi.execute("set transaction isolation level repeatable read")
            bi.execute("select count(*) from marts.dim_area")
            build = subprocess.Popen(rebuild, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 120
            while not awaits_advisory_lock(url) and build.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert build.poll() is None, "the build did not wait for the BI session's lock"
            assert bi.execute("select count(*) from kpi.kpi_values").fetchone()[0] == whole
            bi.commit()
            bi.autocommit = True
            bi.execute(unlock)
            out, err = build.communicate(timeout=300)
        assert build.returncode == 0, err
        # the build said whose session it waited for
        assert re.search(rf"a reader is reading this warehouse \(backend \d+ \([^()]*, user {name}, connected ",
                         out + err), out + err
    finally:
        _drop_login(pg_admin_url, name)
        _drop_login(pg_admin_url, other_name)
