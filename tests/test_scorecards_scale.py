"""Scorecards at scale: every area's data fetched at once is each area's own data, and a page's size does
not grow with the number of detail rows (the XLSX keeps every row)."""

from __future__ import annotations

import io
from datetime import date

import psycopg
import pytest

from corridor.scorecards import render_html as page
from corridor.scorecards.data import ALL, AREA_ORDER, ChainedRows, DetailRows, latest_period, load_scorecards
from corridor.scorecards.render_xlsx import render_xlsx
from tests.conftest import PASSED


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
    # the corridor's lists: the areas' in the plan's order (as the page and the XLSX list them)
    for kind, key in (("certifications", "certificate_no"), ("platforms", "platform_id")):
        assert [r[key] for r in getattr(corridor, kind)] == [
            r[key] for a in AREA_ORDER for r in getattr(cards[a], kind)], kind


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
    sc.platforms, sc.certifications, sc.projects = (DetailRows([*rows] * 10)
                                                    for rows in (sc.platforms, sc.certifications, sc.projects))
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
        assert len(sc.certifications) > 7
        for batch in (1, 7, sc._HASH_BATCH):  # rows encoded a batch at a time: every batch boundary joins alike
            sc._HASH_BATCH = batch
            assert "".join(sc._canonical_chunks()) == text
        assert sc.data_sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert cards[ALL].data_sha256 != cards["LW"].data_sha256


def _groups_of_rows(rows, limit: int):
    """The page's groups as the rows themselves give them (the rule before issue 11's streaming: every row
    held, names collected per area × type in row order, counted in Python)."""
    areas: dict = {}
    for row in rows:
        name = row["enterprise_name"] or row["uscc"]
        if row["standing"] != "有效":
            name = f"{name}（{row['standing']}）"
        areas.setdefault(row["area_name"], {}).setdefault(row["certification_type"], {})[name] = None
    return [(area, [(ctype, list(names)[:limit], len(names)) for ctype, names in types.items()])
            for area, types in areas.items()]


def test_a_pages_certified_names_are_what_every_row_gives_though_counted_by_the_server(warehouse_copy):
    with psycopg.connect(warehouse_copy) as conn:
        # the cases of the naming rule: no name (the USCC stands for it), an empty name, a certification
        # revoked before the period's end (marked) and after it (not), the same enterprise twice in a group
        uscc_a, uscc_b, uscc_c = [r[0] for r in conn.execute(
            "select uscc from marts.dim_enterprise order by uscc limit 3")]
        for no, uscc, name, revoked in [("T-1", uscc_a, None, None), ("T-2", uscc_b, "", None),
                                        ("T-3", uscc_c, "撤销测试企业", date(2022, 5, 1)),
                                        ("T-4", uscc_c, "撤销测试企业", date(2023, 5, 1)),
                                        ("T-5", uscc_c, "撤销测试企业", None)]:
            conn.execute(
                """
                insert into marts.fct_certifications
                    (certificate_key, certificate_no, uscc, enterprise_name, area_code, certification_type,
                     granted_date, valid_until, revoked_date, is_revoked, valid_from, valid_to, is_never_valid,
                     report_month, ledger_id, source_row)
                values (%(no)s, %(no)s, %(uscc)s, %(name)s, 'OH', '高新技术企业', date '2022-01-01',
                        date '2024-12-31', %(revoked)s::date, %(revoked)s::date is not null, date '2022-01-01',
                        coalesce(%(revoked)s::date, date '2024-12-31'), false, date '2022-06-01', 0, 0)
                """, {"no": no, "uscc": uscc, "name": name, "revoked": revoked})
    start = latest_period(warehouse_copy, "year_end")
    cards = load_scorecards(warehouse_copy, "year_end", start, [ALL, *AREA_ORDER], PASSED)
    corridor = cards[ALL].certifications  # not a list held in memory: its areas' lists on disk
    assert isinstance(corridor, ChainedRows) and all(isinstance(part, DetailRows) for part in corridor._parts)
    names = {n for _, groups in cards["OH"].certification_groups for _, listed, _ in groups for n in listed}
    assert {uscc_a, uscc_b, "撤销测试企业（已撤销）", "撤销测试企业"} <= names
    for limit in (page.NAMES_PER_GROUP, 2):
        for area in [ALL, *AREA_ORDER]:
            sc = cards[area]
            assert page.certification_groups(sc, limit) == _groups_of_rows(sc.certifications, limit), (area, limit)
    assert any(n > page.NAMES_PER_GROUP for _, groups in cards[ALL].certification_groups for _, _, n in groups)


def test_detail_rows_stay_on_disk_and_read_back_as_written():
    import gc
    import pickle
    import threading
    import tracemalloc
    from decimal import Decimal

    def rows(n):
        for i in range(n):
            yield {"area_code": AREA_ORDER[i % 6], "area_name": "龙湾", "enterprise_name": f"企业{i}" * 3,
                   "uscc": None if i % 7 else f"9133{i:014d}", "granted_date": date(2022, 1 + i % 12, 1 + i % 28),
                   "amount": Decimal(i) / 100, "n": i}

    n = 30_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = DetailRows(rows(n))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # the same rows as a list hold ~20 MB; on disk, a chunk in flight and the chunks' offsets
    assert held < 2_000_000, held
    assert len(kept) == n and bool(kept) and not DetailRows()
    assert list(kept) == list(rows(n))
    assert kept[0] == next(rows(1)) and kept[-1]["n"] == n - 1 and [r["n"] for r in kept[1234:1237]] == [1234, 1235, 1236]
    assert pickle.loads(pickle.dumps(kept)) == list(rows(n))  # pickled as a plain list

    # readers in several threads at once (pread: no shared offset) each read every row in order
    seen = []

    def read():
        seen.append(sum(r["n"] for r in kept))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [n * (n - 1) // 2] * 4


def test_the_corridors_list_is_its_areas_lists_read_one_after_another(built_warehouse):
    import pickle

    parts = [DetailRows({"n": i, "part": p} for i in range(size)) for p, size in enumerate((3, 0, 2500, 1))]
    chained = ChainedRows(parts)
    every = [{"n": i, "part": p} for p, size in enumerate((3, 0, 2500, 1)) for i in range(size)]
    assert len(chained) == len(every) and bool(chained) and not ChainedRows([DetailRows()])
    assert list(chained) == every and pickle.loads(pickle.dumps(chained)) == every
    for i in (0, 2, 3, 1500, 2502, 2503, -1, -2504):
        assert chained[i] == every[i], i
    assert chained[2:7] == every[2:7] and chained[::-700] == every[::-700]
    for i in (2504, -2505):
        with pytest.raises(IndexError):
            chained[i]

    # a publication's corridor list holds no row of its own: every row is stored once, in its area's list
    start = latest_period(built_warehouse.url, "year_end")
    cards = load_scorecards(built_warehouse.url, "year_end", start, [ALL, "LW", "OH"], PASSED)
    for kind in ("certifications", "platforms"):
        corridor = getattr(cards[ALL], kind)
        assert isinstance(corridor, ChainedRows)
        assert any(part is getattr(cards["LW"], kind) for part in corridor._parts), kind
        assert len(corridor) == sum(len(part) for part in corridor._parts) > len(getattr(cards["LW"], kind)) > 0
