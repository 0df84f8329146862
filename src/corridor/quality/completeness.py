"""The completeness gate: a period is publishable only when every source has delivered for it.

For each month of a period (a quarter or year: every month in it):

- district: every area's 片区月报 for the month is loaded (``raw.district_returns``,
  any version);
- bank: every bank's ``{BANK}_{YYYYMM}.csv`` is loaded (``ops.load_ledger``; a
  file may list no loans, so the ledger, not ``raw.bank_loans``, says it came);
- hr: ``talent_{YYYYMM}.jsonl`` is loaded;
- techmarket: the daily exports reach the month's last working day (an export
  dated on or after the last Monday–Friday of the month). dbt's
  ``int_feed_periods_delivered`` asks for the last calendar day, but the
  registry exports on working days only, so a month ending on a weekend would
  never count; a public holiday at a month's end (no calendar here) leaves the
  month provisional until the next export arrives.

A period that is not publishable is provisional: the scorecard says so and
names who is missing. The same SQL backs the ``months_complete`` warning of
the ``kpi.kpi_values`` suite, so the data docs show it too. For BI the dbt
model ``marts.dim_period`` states the same rule (``is_complete``,
``missing_deliveries``); ``tests/test_bi_contract.py`` holds the two to the
same months and deliveries.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date

from corridor.config import project_root

BANK_NAMES = {"WZB": "温州银行", "OHRCB": "瓯海农商银行"}  # feeds/README.md names these two


def _sql_list(values) -> str:
    return ", ".join("('" + v.replace("'", "''") + "')" for v in values)


def missing_deliveries_sql() -> str:
    """A CTE ``missing (month_start, feed, source_code, item, last_delivered)``.

    Expects a CTE ``months (month_start date)`` before it. No braces and no
    percent signs: it is used both as a GX query template and with psycopg
    parameters.

    The deliveries are the files the last recorded dbt build read (ledger ids
    up to its position, ``db.BUILT_LEDGER_MAX_ID``), every loaded file when
    none is recorded: a file loaded since is not in the marts and KPIs yet.
    """
    from corridor.db import BUILT_LEDGER_MAX_ID
    from corridor.feeds import AREAS, BANKS

    return f"""built_files as (
            select ledger.feed, ledger.file_name
            from ops.load_ledger as ledger
            where ledger.status = 'loaded' and ledger.ledger_id <= coalesce({BUILT_LEDGER_MAX_ID}, ledger.ledger_id)
        ),
        bank_files as (
            select
                substring(file_name from '^([A-Z]+)_[0-9]+[.]csv$') as bank_code,
                to_date(substring(file_name from '^[A-Z]+_([0-9]+)[.]csv$'), 'YYYYMM') as month_start
            from built_files
            where feed = 'bank'
        ),
        last_export as (
            select max(to_date(substring(file_name from '^tech_contracts_([0-9]+)[.]csv$'), 'YYYYMMDD'))
                as last_export_date
            from built_files
            where feed = 'techmarket'
        ),
        missing as (
            select months.month_start, 'district'::text as feed, areas.area_code as source_code,
                'district return'::text as item, null::date as last_delivered
            from months
            cross join (values {_sql_list(AREAS)}) as areas (area_code)
            where not exists (
                select 1 from raw.district_returns as returns
                where returns.area_code = areas.area_code and returns.report_month = months.month_start
                    and returns.ledger_id <= coalesce({BUILT_LEDGER_MAX_ID}, returns.ledger_id)
            )
            union all
            select months.month_start, 'bank', banks.bank_code, 'loans file', null
            from months
            cross join (values {_sql_list(BANKS)}) as banks (bank_code)
            where not exists (
                select 1 from bank_files
                where bank_files.bank_code = banks.bank_code and bank_files.month_start = months.month_start
            )
            union all
            select months.month_start, 'hr', 'hr', 'talent file', null
            from months
            where not exists (
                select 1 from built_files
                where built_files.feed = 'hr'
                    and built_files.file_name = 'talent_' || to_char(months.month_start, 'YYYYMM') || '.jsonl'
            )
            union all
            select months.month_start, 'techmarket', 'techmarket',
                'contract exports to the month''s last working day', last_export.last_export_date
            from months
            cross join last_export
            cross join lateral (
                select (months.month_start + interval '1 month' - interval '1 day')::date as month_end_date
            ) as month_end
            where last_export.last_export_date is null
                or last_export.last_export_date < month_end.month_end_date
                    - case extract(isodow from month_end.month_end_date)::integer
                        when 6 then 1 when 7 then 2 else 0 end
        )"""


@dataclass(frozen=True)
class Completeness:
    """Whether a period's scorecard may be published as final, and who is missing."""

    grain: str
    period_start: date
    period_end: date
    publishable: bool
    missing: list[str] = field(default_factory=list)
    as_of: date | None = None

    @property
    def provisional(self) -> bool:
        return not self.publishable

    def as_dict(self) -> dict:
        return {"grain": self.grain, "period_start": self.period_start.isoformat(),
                "period_end": self.period_end.isoformat(), "publishable": self.publishable,
                "provisional": self.provisional, "missing": list(self.missing),
                "as_of": self.as_of.isoformat() if self.as_of else None}


def area_names() -> dict[str, str]:
    """区 names from the dbt seed (the one list of areas with their names)."""
    path = project_root() / "dbt_project" / "seeds" / "corridor_areas.csv"
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return {row["area_code"]: row["area_name"] for row in csv.DictReader(fh)}
    except OSError:
        return {}


def describe(month_start: date, feed: str, source_code: str, item: str, last_delivered: date | None,
             names: dict[str, str] | None = None) -> str:
    """One missing delivery in words: ``乐清市 (YQ): 2022-11 district return``."""
    month = f"{month_start:%Y-%m}"
    if feed == "district":
        name = (names or {}).get(source_code)
        return f"{name} ({source_code}): {month} {item}" if name else f"{source_code}: {month} {item}"
    if feed == "bank":
        name = BANK_NAMES.get(source_code)
        return f"{source_code}{f' ({name})' if name else ''}: {month} {item}"
    if feed == "techmarket":
        last = f"last export {last_delivered.isoformat()}" if last_delivered else "no export loaded"
        return f"techmarket: {month} contract exports ({last})"
    return f"{feed}: {month} {item}"


def period_bounds(grain: str, period_start: date) -> tuple[date, date]:
    if grain not in ("month", "quarter", "year"):
        raise ValueError(f"grain must be month, quarter or year, not {grain!r}")
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    start = date(period_start.year, period_start.month, 1)
    if grain == "quarter" and (start.month - 1) % 3:
        raise ValueError(f"{period_start} is not the first day of a quarter")
    if grain == "year" and start.month != 1:
        raise ValueError(f"{period_start} is not the first day of a year")
    m = start.month - 1 + months
    after = date(start.year + m // 12, m % 12 + 1, 1)
    return start, date.fromordinal(after.toordinal() - 1)


def as_of_date(conn) -> date | None:
    """The data's as-of date (dbt's int_feed_periods_delivered), None before the first build."""
    exists = conn.execute("select to_regclass('intermediate.int_feed_periods_delivered')").fetchone()[0]
    if exists is None:
        return None
    return conn.execute(
        "select max(latest_complete_month_end_date) from intermediate.int_feed_periods_delivered").fetchone()[0]


def _order(row) -> tuple:
    """District (areas in their order), then banks (in theirs), then hr, then techmarket."""
    from corridor.feeds import AREAS, BANKS

    month_start, feed, source_code = row[:3]
    feeds = ("district", "bank", "hr", "techmarket")
    codes = {**{a: i for i, a in enumerate(AREAS)}, **{b: i for i, b in enumerate(BANKS)}}
    return (month_start, feeds.index(feed) if feed in feeds else 9, codes.get(source_code, 99), source_code)


def missing_by_month(conn, months: list[date]) -> dict[date, list[str]]:
    """Missing deliveries, in words, for each of ``months`` that has any."""
    rows = conn.execute(
        "with months as (select unnest(%s::date[]) as month_start),\n"
        + missing_deliveries_sql()
        + "\nselect month_start, feed, source_code, item, last_delivered from missing"
          " order by month_start, feed, source_code",
        (months,)).fetchall()
    names = area_names()
    out: dict[date, list[str]] = {}
    for month_start, feed, source_code, item, last in sorted(rows, key=_order):
        out.setdefault(month_start, []).append(describe(month_start, feed, source_code, item, last, names))
    return out


def completeness(url: str, grain: str, period_start: date | str) -> Completeness:
    """Is the ``grain`` period starting ``period_start`` publishable? If not, who is missing."""
    import psycopg

    from corridor.quality.catalog import months_between

    if isinstance(period_start, str):
        period_start = date.fromisoformat(period_start)
    start, end = period_bounds(grain, period_start)
    with psycopg.connect(url) as conn:
        as_of = as_of_date(conn)
        by_month = missing_by_month(conn, months_between(start, end))
    missing = [text for month in sorted(by_month) for text in by_month[month]]
    if as_of is None:
        missing.insert(0, "no data: the warehouse has not been built")
    elif end > as_of and not missing:
        missing.append(f"the period ends after the data's as-of date {as_of.isoformat()}")
    return Completeness(grain, start, end, publishable=not missing, missing=missing, as_of=as_of)


def provisional_months(url_or_conn, first: date, last: date) -> dict[str, list[str]]:
    """``{"2022-11": [missing, …]}`` for every month from ``first`` to ``last`` with a gap."""
    from corridor.quality.catalog import months_between

    months = months_between(first, last)
    if not months:
        return {}
    if isinstance(url_or_conn, str):
        import psycopg

        with psycopg.connect(url_or_conn) as conn:
            by_month = missing_by_month(conn, months)
    else:
        by_month = missing_by_month(url_or_conn, months)
    return {f"{m:%Y-%m}": by_month[m] for m in sorted(by_month)}
