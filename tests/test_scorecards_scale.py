"""Scorecards at scale: every area's data fetched at once is each area's own data, and a page's size does
not grow with the number of detail rows (the XLSX keeps every row)."""

from __future__ import annotations

import io
from datetime import date

import psycopg

from corridor.scorecards import render_html as page
from corridor.scorecards.data import ALL, AREA_ORDER, latest_period, load_scorecards
from corridor.scorecards.render_xlsx import render_xlsx

PASSED = {"blocking": False, "outcome": "passed", "suites": 9, "expectations": 120, "failed": 0, "warnings": 0,
          "data_docs": None}


def _per_area_sql(url: str, area: str, start: date, end: date):
    """What each area's scorecard showed when it queried its own rows (the queries before issue 11)."""
    with psycopg.connect(url) as conn:
        certificates = [r[0] for r in conn.execute(
            "select certificate_no from marts.fct_certifications where granted_date between %s and %s"
            " and area_code = %s order by certification_type, granted_date, enterprise_name, certificate_no",
            (start, end, area))]
        platforms = [r[0] for r in conn.execute(
            "select platform_id from marts.dim_platform where first_recognised_date between %s and %s"
            " and area_code = %s order by first_recognised_date, platform_id", (start, end, area))]
        projects = sorted(conn.execute(
            """
            select distinct on (project_key) start_date, project_id, project_status
            from marts.fct_projects
            where start_date between %(start)s and %(end)s and area_code = %(area)s
            order by project_key,
                     snapshot_month <= date_trunc('month', %(end)s::date) desc,
                     case when snapshot_month <= date_trunc('month', %(end)s::date) then snapshot_month end
                         desc nulls last,
                     snapshot_month
            """, {"start": start, "end": end, "area": area}).fetchall())
        kpis = conn.execute(
            "select kpi_code, actual_value, status from kpi.kpi_values where area_code = %s and grain = 'year'"
            " and period_start = %s order by kpi_code", (area, start)).fetchall()
    return certificates, platforms, [(s, p, st) for s, p, st in projects], kpis


def test_scorecards_fetched_at_once_show_each_areas_own_rows(built_warehouse):
    start = latest_period(built_warehouse.url, "year_end")
    cards = load_scorecards(built_warehouse.url, "year_end", start, [ALL, *AREA_ORDER], PASSED)
    assert list(cards) == [ALL, *AREA_ORDER]
    corridor = cards[ALL]
    assert len(corridor.certifications) == sum(len(cards[a].certifications) for a in AREA_ORDER) > 0
    for area in AREA_ORDER:
        sc = cards[area]
        certificates, platforms, projects, kpis = _per_area_sql(built_warehouse.url, area, sc.period_start,
                                                                sc.period_end)
        assert [r["certificate_no"] for r in sc.certifications] == certificates, area
        assert [r["platform_id"] for r in sc.platforms] == platforms, area
        assert [(r["start_date"], r["project_id"], r["project_status"]) for r in sc.projects] == projects, area
        assert [(k.code, k.actual, k.status) for k in sc.kpis] == kpis, area
        assert sc.completeness.missing == [] or all(isinstance(m, str) for m in sc.completeness.missing)


def test_a_page_lists_the_first_rows_past_the_limit_and_the_xlsx_every_row(built_warehouse, monkeypatch):
    import openpyxl

    start = latest_period(built_warehouse.url, "year_end")
    sc = load_scorecards(built_warehouse.url, "year_end", start, [ALL], PASSED)[ALL]
    assert len(sc.platforms) > 3 and len(sc.certifications) > 3 and len(sc.projects) > 3
    monkeypatch.setattr(page, "APPENDIX_ROWS", 3)
    monkeypatch.setattr(page, "NAMES_PER_GROUP", 2)
    small = page.render_html(sc)
    assert f"仅列示前3家（共{len(sc.platforms)}家" in small
    assert f"仅列示前3个（共{len(sc.projects)}个" in small
    assert "完整名单见XLSX" in small
    assert sc.platforms[2]["platform_id"] in small and sc.platforms[3]["platform_id"] not in small

    # ten times the detail rows: the page stays the same size (only the counts change)
    sc.platforms, sc.certifications, sc.projects = sc.platforms * 10, sc.certifications * 10, sc.projects * 10
    big = page.render_html(sc)
    assert abs(len(big) - len(small)) < 200
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(sc)), read_only=True)
    assert sum(1 for row in wb["新获认定企业"].iter_rows(min_row=4) if row[0].value) == len(sc.certifications)
    assert sum(1 for row in wb["开工重点项目"].iter_rows(min_row=4) if row[0].value) == len(sc.projects)


def test_the_data_hash_is_the_sha256_of_the_canonical_json_though_hashed_row_by_row(built_warehouse):
    import hashlib
    from decimal import Decimal

    start = latest_period(built_warehouse.url, "year_end")
    cards = load_scorecards(built_warehouse.url, "year_end", start, [ALL, "LW"], PASSED)
    corridor = cards[ALL]
    corridor.certifications = [*corridor.certifications, {
        "area_code": "LW", "area_name": "龙湾", "enterprise_name": '"=1+2" \\ 引号\n换行', "uscc": None,
        "certification_type": "高新技术企业", "certificate_no": "GR2022", "granted_date": date(2022, 3, 1),
        "valid_until": None, "standing": "有效", "score": Decimal("-0.50")}]
    for sc in (corridor, cards["LW"]):
        text = sc.canonical_json()
        assert "".join(sc._canonical_chunks()) == text
        assert sc.data_sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert cards[ALL].data_sha256 != cards["LW"].data_sha256
