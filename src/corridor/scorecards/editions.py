"""The three editions of the plan's rhythm and their periods.

| edition     | plan     | grain   | period                      |
|-------------|----------|---------|-----------------------------|
| `monthly`   | 月度例会 | month   | a calendar month            |
| `quarterly` | 季度观摩 | quarter | a calendar quarter          |
| `year_end`  | 年度比拼 | year    | a calendar year, with ranking |

Schedule (Asia/Shanghai): one publish run a month, `0 9 12 * *` (the 12th at
09:00, after the bank and talent files of the first ten days are in). A run
publishes the monthly edition of the previous month; in January, April, July
and October also the quarterly edition of the previous quarter; in January
also the year-end edition of the previous year (`editions_due`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

TIMEZONE = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Edition:
    code: str        # monthly / quarterly / year_end
    grain: str       # kpi_values.grain
    label: str       # the plan's name
    months: int      # length of the period

    def period_end(self, period_start: date) -> date:
        return add_months(period_start, self.months) - timedelta(days=1)

    def check_start(self, period_start: date) -> None:
        """Raise ValueError unless period_start is the first day of a period of this edition."""
        if period_start.day != 1 or (period_start.month - 1) % self.months:
            raise ValueError(f"{period_start} does not start a {self.grain} ({self.code} edition)")

    def period_label(self, period_start: date) -> str:
        """2022年12月 / 2022年第四季度 / 2022年度."""
        if self.code == "monthly":
            return f"{period_start.year}年{period_start.month}月"
        if self.code == "quarterly":
            return f"{period_start.year}年第{'一二三四'[(period_start.month - 1) // 3]}季度"
        return f"{period_start.year}年度"

    def title(self, period_start: date) -> str:
        """2022年12月月度例会 / 2022年第四季度观摩 / 2022年度比拼 (not 第四季度季度观摩)."""
        if self.code == "year_end":
            return f"{period_start.year}{self.label}"
        if self.code == "quarterly":
            return f"{self.period_label(period_start)}{self.label.removeprefix('季度')}"
        return f"{self.period_label(period_start)}{self.label}"

    def period_slug(self, period_start: date) -> str:
        """ASCII label for file names: 2022-12 / 2022Q4 / 2022."""
        if self.code == "monthly":
            return f"{period_start:%Y-%m}"
        if self.code == "quarterly":
            return f"{period_start.year}Q{(period_start.month - 1) // 3 + 1}"
        return f"{period_start.year}"


EDITIONS: dict[str, Edition] = {
    "monthly": Edition("monthly", "month", "月度例会", 1),
    "quarterly": Edition("quarterly", "quarter", "季度观摩", 3),
    "year_end": Edition("year_end", "year", "年度比拼", 12),
}


def edition(code: str) -> Edition:
    try:
        return EDITIONS[code]
    except KeyError:
        raise ValueError(f"unknown edition {code!r} (expected one of {', '.join(EDITIONS)})") from None


def add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _local_date(logical_date: date | datetime) -> date:
    if isinstance(logical_date, datetime):
        if logical_date.tzinfo is None:  # Airflow's dates are aware; a naive one is taken as UTC
            logical_date = logical_date.replace(tzinfo=ZoneInfo("UTC"))
        return logical_date.astimezone(TIMEZONE).date()
    return logical_date


def editions_due(logical_date: date | datetime, editions=None) -> list[tuple[str, date]]:
    """The (edition, period_start) a publish run at ``logical_date`` publishes.

    Pass the run's scheduled time: ``data_interval_end``, which is also the
    ``logical_date`` under Airflow 3's default ``CronTriggerTimetable`` (under a
    ``CronDataIntervalTimetable`` the logical date is the interval's *start*,
    a month earlier). The run's date is taken in Asia/Shanghai. Every run: the monthly edition of
    the previous month; when the run's month starts a quarter (Jan, Apr, Jul,
    Oct): the quarterly edition of the previous quarter; in January: the
    year-end edition of the previous year. ``editions`` keeps only those named
    (no DAG passes it: the one publish DAG publishes whatever is due).

    >>> editions_due(date(2023, 1, 12))
    [('monthly', datetime.date(2022, 12, 1)), ('quarterly', datetime.date(2022, 10, 1)), ('year_end', datetime.date(2022, 1, 1))]
    """
    d = _local_date(logical_date)
    this_month = date(d.year, d.month, 1)
    due = [("monthly", add_months(this_month, -1))]
    if (d.month - 1) % 3 == 0:
        due.append(("quarterly", add_months(this_month, -3)))
    if d.month == 1:
        due.append(("year_end", date(d.year - 1, 1, 1)))
    if editions is not None:
        wanted = {edition(e).code for e in ([editions] if isinstance(editions, str) else editions)}
        due = [item for item in due if item[0] in wanted]
    return due
