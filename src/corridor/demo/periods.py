"""Months and business days of the demo period."""

from __future__ import annotations

from datetime import date, timedelta

EXCEL_EPOCH = date(1899, 12, 30)


def parse_month(text: str) -> tuple[int, int]:
    """``"2021-03"`` (or ``"202103"``) -> (2021, 3)."""
    t = text.replace("-", "").replace("/", "")
    if len(t) != 6 or not t.isdigit() or not 1 <= int(t[4:]) <= 12:
        raise ValueError(f"not a month: {text!r} (expected YYYY-MM)")
    return int(t[:4]), int(t[4:])


def month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def index_month(index: int) -> tuple[int, int]:
    return index // 12, index % 12 + 1


def month_start(index: int) -> date:
    y, m = index_month(index)
    return date(y, m, 1)


def month_end(index: int) -> date:
    return month_start(index + 1) - timedelta(days=1)


def days_in_month(index: int) -> int:
    return (month_start(index + 1) - month_start(index)).days


def add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def add_months(d: date, months: int) -> date:
    idx = month_index(d.year, d.month) + months
    y, m = index_month(idx)
    return date(y, m, min(d.day, days_in_month(idx)))


def excel_serial(d: date) -> int:
    return (d - EXCEL_EPOCH).days


def _span(y: int, m: int, d: int, n: int) -> list[date]:
    return [date(y, m, d) + timedelta(days=i) for i in range(n)]


# Public holidays of the mainland (the main ones; make-up Saturdays are ignored).
_HOLIDAYS: dict[int, list[date]] = {
    2019: [date(2019, 1, 1), *_span(2019, 2, 4, 7), date(2019, 4, 5), *_span(2019, 5, 1, 4),
           date(2019, 6, 7), date(2019, 9, 13), *_span(2019, 10, 1, 7)],
    2020: [date(2020, 1, 1), *_span(2020, 1, 24, 10), *_span(2020, 4, 4, 3), *_span(2020, 5, 1, 5),
           *_span(2020, 6, 25, 3), *_span(2020, 10, 1, 8)],
    2021: [*_span(2021, 1, 1, 3), *_span(2021, 2, 11, 7), *_span(2021, 4, 3, 3), *_span(2021, 5, 1, 5),
           *_span(2021, 6, 12, 3), *_span(2021, 9, 19, 3), *_span(2021, 10, 1, 7)],
    2022: [*_span(2022, 1, 1, 3), *_span(2022, 1, 31, 7), *_span(2022, 4, 3, 3), *_span(2022, 4, 30, 5),
           *_span(2022, 6, 3, 3), *_span(2022, 9, 10, 3), *_span(2022, 10, 1, 7)],
}


def holidays(year: int) -> frozenset[date]:
    if year in _HOLIDAYS:
        return frozenset(_HOLIDAYS[year])
    return frozenset([date(year, 1, 1), *_span(year, 5, 1, 3), *_span(year, 10, 1, 7)])


def business_days(index: int) -> list[date]:
    """Weekdays of the month that are not public holidays: the days the registry exports."""
    y, _ = index_month(index)
    off = holidays(y)
    start = month_start(index)
    return [d for d in (start + timedelta(days=i) for i in range(days_in_month(index)))
            if d.weekday() < 5 and d not in off]
