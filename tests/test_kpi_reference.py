"""The rewrite of issue 11 must not change a number: kpi.kpi_values of the city demo set, row for row.

The reference, ``benchmarks/kpi_reference/city-20200305.csv.gz``, is kpi.kpi_values of the same
demo set (seed 20200305, 2019-01..2022-12) built by the code of main at dd1a449, before issue 11
(written by ``benchmarks/city.py --dump-kpi``: COPY of the table in key order, CSV with a header).
Replace it only when a KPI rule changes on purpose, and say so in the commit.
"""

from __future__ import annotations

import csv
import gzip
import io

import psycopg

from tests.conftest import ROOT

REFERENCE = ROOT / "benchmarks" / "kpi_reference" / "city-20200305.csv.gz"
KEY = "kpi_code, area_code, grain, period_start"


def _rows_now(url: str) -> list[list[str]]:
    buffer = io.BytesIO()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"copy (select * from kpi.kpi_values order by {KEY}) to stdout with (format csv, header)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    return list(csv.reader(io.StringIO(buffer.getvalue().decode("utf-8"))))


def test_kpi_values_of_the_city_demo_set_equal_the_reference_row_for_row(built_warehouse):
    with gzip.open(REFERENCE, "rt", encoding="utf-8", newline="") as fh:
        reference = list(csv.reader(fh))
    now = _rows_now(built_warehouse.url)
    assert now[0] == reference[0], "kpi_values columns changed"
    keys = 4  # kpi_code, area_code, grain, period_start: the first four columns
    assert reference[0][:keys] == ["kpi_code", "area_code", "grain", "period_start"]
    before = {tuple(r[:keys]): r for r in reference[1:]}
    after = {tuple(r[:keys]): r for r in now[1:]}
    missing, extra = sorted(before.keys() - after.keys()), sorted(after.keys() - before.keys())
    changed = [(before[k], after[k]) for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    assert not missing and not extra and not changed, (
        f"kpi_values differ from {REFERENCE.name}: {len(missing)} rows missing (e.g. {missing[:3]}), "
        f"{len(extra)} new (e.g. {extra[:3]}), {len(changed)} changed (e.g. {changed[:3]})")
    assert len(now) == len(reference) > 1000
