"""kpi.kpi_values of the city demo set against an independent oracle (tests/kpi_oracle.py): the 18 KPIs
recomputed in plain Python from the raw rows by the written specification (feeds README and kpis.md), at
every month end of the action plan's window 2020-01..2022-12 — every month, quarter and year row of
kpi.kpi_values, each compared with the oracle's value for its period end."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

import psycopg

from tests.kpi_oracle import ALL, AREAS, KPIS, oracle

MONTH_ENDS = [date(y, m, calendar.monthrange(y, m)[1]) for y in (2020, 2021, 2022) for m in range(1, 13)]
TOLERANCE = 1e-9  # kpi_values rounds to 10 decimals; the oracle computes in Decimal, then float


def _grain_ends(grain: str) -> list[date]:
    months = {"month": range(1, 13), "quarter": (3, 6, 9, 12), "year": (12,)}[grain]
    return [d for d in MONTH_ENDS if d.month in months]


def _warehouse(url: str) -> dict[tuple[str, str, str, date], Decimal | None]:
    with psycopg.connect(url) as conn:
        return {(k, a, g, e): v for k, a, g, e, v in conn.execute(
            "select kpi_code, area_code, grain, period_end, actual_value from kpi.kpi_values")}


def _differences(url: str) -> list[tuple[str, str, str, date, float | None, Decimal | None]]:
    """Every (kpi, area, grain, period end, oracle, warehouse) that differ beyond rounding, a missing or an
    unexpected kpi_values row included (its missing side None, flagged 'missing')."""
    expected = oracle(url, MONTH_ENDS)
    warehouse = _warehouse(url)
    keys = {(k, a, g, d) for g in ("month", "quarter", "year") for d in _grain_ends(g)
            for k in KPIS for a in (*AREAS, ALL)}
    out = []
    for key in sorted(keys | warehouse.keys()):
        kpi, area, _grain, end = key
        ours = expected.get((kpi, area, end), "missing")
        theirs = warehouse.get(key, "missing")
        if isinstance(ours, float) and isinstance(theirs, Decimal):
            if abs(ours - float(theirs)) <= TOLERANCE * max(1.0, abs(ours)):
                continue
        elif ours is None and theirs is None:
            continue
        out.append((*key, ours, theirs))
    return out


def _message(diffs: list) -> str:
    lines = [f"  {k} {a:<3} {g:<7} {e}  oracle={o!s:<22} warehouse={w}" for k, a, g, e, o, w in diffs]
    return f"{len(diffs)} kpi_values rows differ from the oracle:\n" + "\n".join(lines)


def test_kpi_values_equal_the_independent_oracle(built_warehouse):
    diffs = _differences(built_warehouse.url)
    assert not diffs, _message(diffs)


def test_the_oracle_comparison_catches_a_changed_raw_row(warehouse_copy):
    """Raw rows changed in a copy (kpi_values not rebuilt): the comparison names exactly the rows they move."""
    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        # one IP-pledge loan of 2021 lent 1 亿元 more (every report of it)
        bank, loan, area, disbursed = conn.execute(
            "select bank_code, loan_id, area_code, disbursed_date from raw.bank_loans"
            " where collateral_type = '专利权' and disbursed_date between '2021-01-01' and '2021-06-30'"
            " order by disbursed_date, bank_code, loan_id limit 1").fetchone()
        conn.execute("update raw.bank_loans set loan_amount_yuan = loan_amount_yuan + 100000000"
                     " where bank_code = %s and loan_id = %s", (bank, loan))
        # one revocation of a 高能级创新平台 in the window forgotten (every version of it)
        p_area, platform, revoked = conn.execute(
            "select area_code, platform_id, report_month from raw.district_platforms"
            " where platform_category = '高能级创新平台' and change_type = '撤销' and report_month >= '2020-01-01'"
            " order by report_month, area_code, platform_id limit 1").fetchone()
        conn.execute("delete from raw.district_platforms where area_code = %s and platform_id = %s"
                     " and change_type = '撤销'", (p_area, platform))
    diffs = _differences(warehouse_copy)
    moved = {(k, a, g, e) for k, a, g, e, _o, _w in diffs}
    k17 = {("K17", a, g, d) for a in (area, ALL) for g in ("month", "quarter", "year") for d in _grain_ends(g)
           if disbursed <= d <= date(2021, 12, 31)}
    assert k17 <= moved, _message(diffs)
    revoked_end = date(revoked.year, revoked.month, calendar.monthrange(revoked.year, revoked.month)[1])
    assert ("K01", p_area, "month", revoked_end) in moved and ("K01", ALL, "month", revoked_end) in moved, \
        _message(diffs)
    assert {k for k, *_ in diffs} == {"K01", "K17"}, _message(diffs)
    message = _message(diffs)
    assert f"K17 {area:<3} year    2021-12-31  oracle=" in message
