"""kpi.kpi_values of the city demo set against an independent oracle (tests/kpi_oracle.py): the 18 KPIs
recomputed in plain Python from the raw rows by the written specification (feeds README and kpis.md), at
every month end of the action plan's window 2020-01..2022-12 — every month, quarter and year row of
kpi.kpi_values, each compared with the oracle's value for its period end.

The other numbers officials see are held too, from the same oracle's values and the configuration the product
ships as data (dbt_project/seeds/*.csv, read as files): kpi_values' target, paced target, completion ratio and
status of every row, and kpi.area_ranking (the annual competition) of every year."""

from __future__ import annotations

import calendar
import csv
import shutil
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from corridor import transform
from tests.conftest import ROOT, point_dbt_at
from tests.kpi_oracle import ALL, AREAS, KPIS, Targets, oracle, ranking, scorecard, targets

MONTH_ENDS = [date(y, m, calendar.monthrange(y, m)[1]) for y in (2020, 2021, 2022) for m in range(1, 13)]
TOLERANCE = 1e-9  # kpi_values rounds to 10 decimals; the oracle computes in Decimal, then float


def _grain_ends(grain: str) -> list[date]:
    months = {"month": range(1, 13), "quarter": (3, 6, 9, 12), "year": (12,)}[grain]
    return [d for d in MONTH_ENDS if d.month in months]


KEYS = sorted((k, a, g, d) for g in ("month", "quarter", "year") for d in _grain_ends(g)
              for k in KPIS for a in (*AREAS, ALL))
SCORECARD_COLUMNS = ("target_value", "paced_target_value", "completion_ratio", "status")
RANKING_COLUMNS = ("composite_score", "kpis_scored", "area_rank")


def _warehouse(url: str) -> dict[tuple[str, str, str, date], Decimal | None]:
    with psycopg.connect(url) as conn:
        return {(k, a, g, e): v for k, a, g, e, v in conn.execute(
            "select kpi_code, area_code, grain, period_end, actual_value from kpi.kpi_values")}


def _differences(url: str, actuals: dict | None = None, keys=None) -> list[tuple]:
    """Every (kpi, area, grain, period end, oracle, warehouse) whose actual value differs beyond rounding, a
    missing or an unexpected kpi_values row included (its missing side flagged 'missing'); ``keys`` (default
    every month, quarter and year of the window) with the oracle's ``actuals`` at their period ends."""
    keys = KEYS if keys is None else keys
    expected = oracle(url, MONTH_ENDS) if actuals is None else actuals
    warehouse = _warehouse(url)
    out = []
    for key in sorted(set(keys) | warehouse.keys()):
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


# ---------------------------------------------------------------- targets, pacing, status and the ranking

def _table(url: str, table: str, key: tuple[str, ...]) -> dict[tuple, dict]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return {tuple(r[c] for c in key): r
                for r in conn.execute(f"select * from {table}")}  # noqa: S608 - fixed table names


def _same(ours: object, theirs: object) -> bool:
    if isinstance(ours, Decimal) and isinstance(theirs, Decimal):
        return abs(ours - theirs) <= Decimal(TOLERANCE) * max(1, abs(ours))  # rounding only
    return ours == theirs and type(ours) is type(theirs)


def _column_differences(expected: dict[tuple, dict], warehouse: dict[tuple, dict], columns) -> list[tuple]:
    """(column, *key, oracle, warehouse) of every column that differs beyond rounding; a missing or an
    unexpected row differs in every column ('missing' on its missing side)."""
    out = []
    for key in sorted(expected.keys() | warehouse.keys()):
        ours, theirs = expected.get(key), warehouse.get(key)
        for column in columns:
            o = "missing" if ours is None else ours[column]
            w = "missing" if theirs is None else theirs[column]
            if not _same(o, w):
                out.append((column, *key, o, w))
    return out


def _scorecard_differences(url: str, actuals: dict, keys=KEYS, config: Targets | None = None) -> list[tuple]:
    """kpi_values' target_value, paced_target_value, completion_ratio and status against the oracle's (under
    ``config``, default the shipped seeds)."""
    card = scorecard(actuals, keys, config)
    expected = {key: {"target_value": s.target, "paced_target_value": s.paced_target,
                      "completion_ratio": s.completion_ratio, "status": s.status} for key, s in card.items()}
    warehouse = _table(url, "kpi.kpi_values", ("kpi_code", "area_code", "grain", "period_end"))
    return _column_differences(expected, warehouse, SCORECARD_COLUMNS)


def _ranking_differences(url: str, actuals: dict, keys=KEYS, config: Targets | None = None) -> list[tuple]:
    """kpi.area_ranking's composite_score, kpis_scored and area_rank against the oracle's (under ``config``)."""
    expected = {key: {"composite_score": r.composite_score, "kpis_scored": r.kpis_scored,
                      "area_rank": r.area_rank}
                for key, r in ranking(scorecard(actuals, keys, config), config).items()}
    warehouse = _table(url, "kpi.area_ranking", ("ranking_year", "area_code"))
    return _column_differences(expected, warehouse, RANKING_COLUMNS)


def _column_message(table: str, diffs: list[tuple]) -> str:
    lines = ["  " + " ".join(f"{v!s:<18}" if i == 0 else str(v) for i, v in enumerate(key))
             + f"  oracle={o!s:<22} warehouse={w}" for *key, o, w in diffs]
    return f"{len(diffs)} {table} values differ from the oracle:\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def oracle_actuals(built_warehouse) -> dict:
    """The oracle's actual values of the built warehouse (its raw rows are never changed)."""
    return oracle(built_warehouse.url, MONTH_ENDS)


def test_kpi_values_targets_pacing_and_status_equal_the_oracle(built_warehouse, oracle_actuals):
    diffs = _scorecard_differences(built_warehouse.url, oracle_actuals)
    assert not diffs, _column_message("kpi_values", diffs)


def test_area_ranking_equals_the_oracle(built_warehouse, oracle_actuals):
    diffs = _ranking_differences(built_warehouse.url, oracle_actuals)
    assert not diffs, _column_message("area_ranking", diffs)


def test_the_oracle_comparison_catches_a_changed_target_and_rank(warehouse_copy, oracle_actuals):
    """One paced target and one rank changed in a copy (raw rows untouched): each comparison names exactly it."""
    paced_key = ("K05", "OH", "quarter", date(2021, 6, 30))
    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        conn.execute("update kpi.kpi_values set paced_target_value = paced_target_value + 1"
                     " where kpi_code = %s and area_code = %s and grain = %s and period_end = %s", paced_key)
        area, rank = conn.execute("select area_code, area_rank from kpi.area_ranking where ranking_year = 2021"
                                  " order by area_code limit 1").fetchone()
        conn.execute("update kpi.area_ranking set area_rank = %s where ranking_year = 2021 and area_code = %s",
                      (rank % 6 + 1, area))
    diffs = _scorecard_differences(warehouse_copy, oracle_actuals)
    assert [(column, *key) for column, *key, _o, _w in diffs] == [("paced_target_value", *paced_key)], \
        _column_message("kpi_values", diffs)
    assert diffs[0][-1] == diffs[0][-2] + 1, _column_message("kpi_values", diffs)
    diffs = _ranking_differences(warehouse_copy, oracle_actuals)
    assert diffs == [("area_rank", 2021, area, rank, rank % 6 + 1)], _column_message("area_ranking", diffs)
    assert f"area_rank          2021 {area}  oracle={rank!s:<22} warehouse={rank % 6 + 1}" in \
        _column_message("area_ranking", diffs)


def _rewrite_seed(seeds: Path, name: str, keep, extra: list[dict]) -> None:
    """Rewrite seeds/<name>.csv: the rows ``keep`` accepts, then ``extra``."""
    path = seeds / f"{name}.csv"
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if keep(r)]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, *extra])


def test_a_non_default_configuration_equals_the_oracle(warehouse_copy, oracle_actuals, monkeypatch, tmp_path):
    """The shipped seeds split every target equally and weigh every KPI 1, so the comparisons above never see
    the other rules of the configuration (_seeds__seeds.yml): an unequal split, an area without a row
    (weight 1), an area of weight 0 (no allocation: no target of its own, no_target), a KPI whose six weights
    are all 0 (no area targets, ALL keeps the corridor's), a KPI without a ranking weight (1) or of weight 0,
    other status thresholds. Rebuilt with such seeds, kpi_values and area_ranking equal the oracle's."""
    point_dbt_at(monkeypatch, warehouse_copy)
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    seeds = project / "seeds"
    # K01: LW 3, OH 0, the other four without a row (1 each); K02: all six 0; K12: RA 2, the rest 1
    _rewrite_seed(seeds, "kpi_area_allocation", lambda r: r["kpi_code"] not in ("K01", "K02", "K12"),
                  [{"kpi_code": "K01", "area_code": "LW", "allocation_weight": "3"},
                   {"kpi_code": "K01", "area_code": "OH", "allocation_weight": "0"},
                   *({"kpi_code": "K02", "area_code": a, "allocation_weight": "0"} for a in AREAS),
                   *({"kpi_code": "K12", "area_code": a, "allocation_weight": "2" if a == "RA" else "1"}
                     for a in AREAS)])
    _rewrite_seed(seeds, "kpi_weights", lambda r: r["kpi_code"] not in ("K01", "K02", "K05"),
                  [{"kpi_code": "K01", "ranking_weight": "3"}, {"kpi_code": "K05", "ranking_weight": "0"}])
    _rewrite_seed(seeds, "kpi_status_thresholds", lambda r: False,
                  [{"status": "ahead", "min_completion_ratio": "1.2"},
                   {"status": "on_track", "min_completion_ratio": "0.9"}])
    config = targets(seeds)
    assert config.target[("K01", "LW")] == 20 * Fraction(3, 7) and config.target[("K01", "OH")] is None
    assert all(config.target[("K02", a)] is None for a in AREAS) and config.target[("K02", ALL)] == 35
    target = tmp_path / "target"  # not the state folder's: the shared manifest stays the real project's
    transform.dbt(["build", "--select", "kpi_area_allocation", "kpi_weights", "kpi_status_thresholds",
                   "kpi_values", "area_ranking", "kpi_catalogue", "--exclude-resource-type", "unit_test",
                   "--quiet", "--target-path", str(target)], project)
    with psycopg.connect(warehouse_copy) as conn:
        rows = conn.execute("select area_code, target_value, status from kpi.kpi_values"
                            " where kpi_code = 'K01' and grain = 'year' and period_end = '2022-12-31'"
                            " and area_code in ('LW', 'OH') order by area_code").fetchall()
    # the rebuild read the new seeds: LW's share is 3/7 of 20; OH, of weight 0, has no target
    assert rows[0][:2] == ("LW", Decimal("8.5714285714")) and rows[1] == ("OH", None, "no_target"), rows
    diffs = _scorecard_differences(warehouse_copy, oracle_actuals, config=config)
    assert not diffs, _column_message("kpi_values", diffs)
    diffs = _ranking_differences(warehouse_copy, oracle_actuals, config=config)
    assert not diffs, _column_message("area_ranking", diffs)


def differences_at_the_warehouses_periods(url: str) -> list[str]:
    """For a warehouse of any window (tests/fuzz_increments.py): every kpi_values row's actual value, target,
    paced target, completion ratio and status, and every area_ranking row, against the oracle's at the
    periods kpi_values holds; one line per differing value."""
    with psycopg.connect(url) as conn:
        keys = sorted(conn.execute("select kpi_code, area_code, grain, period_end from kpi.kpi_values").fetchall())
    actuals = oracle(url, sorted({end for *_, end in keys}))
    return ([f"actual_value {' '.join(map(str, key))}: oracle={o} warehouse={w}"
             for *key, o, w in _differences(url, actuals, keys)]
            + [f"{column} {' '.join(map(str, key))}: oracle={o} warehouse={w}"
               for column, *key, o, w in (_scorecard_differences(url, actuals, keys)
                                          + _ranking_differences(url, actuals, keys))])
