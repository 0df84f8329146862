"""Is a period's data complete? Who has not delivered? (the attestation's provisional flag)

The rule is the quality gate's (``corridor.quality.completeness``: the same
SQL backs its ``months_complete`` check and the data docs), so that the
scorecard and the gate never disagree. For every month of the period:

- 片区月报: each area's return is loaded;
- 质押融资: each of the six banks' files is loaded (a file may list no loans);
- 人才引育: the month's talent file is loaded;
- 技术合同登记: a daily export on or after the month's last working day
  (Monday–Friday) is loaded: the registry exports on working days only.

An area's scorecard is provisional when its own return or any corridor-wide
feed (banks, talents, contracts: they count in every area) is missing;
``ALL`` when anything is. The year-end edition (grain ``year``) ranks the six
areas against each other (年度比拼), so there an area's scorecard is also
provisional while another area's return is missing ("…（影响年度比拼排名）").
The missing deliveries are named in Chinese.

When ``corridor.quality`` is not importable (the package used alone), the
same rule is evaluated here from ``ops.load_ledger``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

import psycopg

from corridor.feeds import AREAS, BANKS, FEEDS, BadFileName, file_meta
from corridor.scorecards.editions import add_months

log = logging.getLogger(__name__)

GRAIN_MONTHS = {"month": 1, "quarter": 3, "year": 12}
# grains whose edition ranks the areas (年度比拼): every area's return counts in each area's scorecard
RANKED_GRAINS = ("year",)
BANK_NAMES = {"ICBC": "工商银行", "ABC": "农业银行", "BOC": "中国银行", "CCB": "建设银行",
              "WZB": "温州银行", "OHRCB": "瓯海农商银行"}


@dataclass(frozen=True)
class Completeness:
    publishable: bool                                 # nothing the period needs is missing
    missing: list[str] = field(default_factory=list)  # who is missing, in Chinese
    source: str = "corridor.scorecards"               # whose rule decided

    @property
    def provisional(self) -> bool:
        return not self.publishable


@dataclass(frozen=True)
class Gap:
    month: date
    feed: str                  # district / bank / hr / techmarket
    source_code: str           # area code, bank code, 'hr', 'techmarket'
    last_delivered: date | None = None


def months_of(grain: str, period_start: date) -> list[date]:
    return [add_months(period_start, i) for i in range(GRAIN_MONTHS[grain])]


def _gaps_from_quality(conn: psycopg.Connection, months: list[date]) -> list[Gap] | None:
    try:
        from corridor.quality.completeness import missing_deliveries_sql
    except ImportError:
        return None
    rows = conn.execute(
        "with months as (select unnest(%s::date[]) as month_start),\n" + missing_deliveries_sql()
        + "\nselect month_start, feed, source_code, last_delivered from missing", (months,)).fetchall()
    return [Gap(m, feed, code, last) for m, feed, code, last in rows]


def _gaps_own(conn: psycopg.Connection, months: list[date]) -> list[Gap]:
    found: dict[str, set] = defaultdict(set)
    from corridor.db import BUILT_LEDGER_MAX_ID

    # the files the last recorded build read (every loaded file when none is): see missing_deliveries_sql
    for feed, name in conn.execute("select feed, file_name from ops.load_ledger as ledger where status = 'loaded'"
                                   f" and ledger_id <= coalesce({BUILT_LEDGER_MAX_ID}, ledger_id)"):
        if feed not in FEEDS:
            continue
        try:
            meta = file_meta(feed, name)
        except BadFileName:
            continue
        key = {"district": (meta.area_code, meta.period_start), "bank": (meta.bank_code, meta.period_start)}
        found[feed].add(key.get(feed, meta.period_start))
    last_export = max(found["techmarket"], default=None)
    gaps = []
    for m in months:
        gaps += [Gap(m, "district", a) for a in AREAS if (a, m) not in found["district"]]
        gaps += [Gap(m, "bank", b) for b in BANKS if (b, m) not in found["bank"]]
        if m not in found["hr"]:
            gaps.append(Gap(m, "hr", "hr"))
        month_end = date.fromordinal(add_months(m, 1).toordinal() - 1)
        last_working_day = date.fromordinal(month_end.toordinal() - max(0, month_end.weekday() - 4))
        if last_export is None or last_export < last_working_day:
            gaps.append(Gap(m, "techmarket", "techmarket", last_export))
    return gaps


def _months_text(months: list[date]) -> str:
    return "、".join(f"{m.year}年{m.month}月" for m in sorted(months))


def describe(gaps: list[Gap], area_names: dict[str, str]) -> list[str]:
    """One line per source: '龙湾区 片区月报：2022年11月、2022年12月'."""
    by_source: dict[tuple[str, str], list[Gap]] = defaultdict(list)
    for g in gaps:
        by_source[(g.feed, g.source_code)].append(g)
    order = {"district": 0, "bank": 1, "hr": 2, "techmarket": 3}
    rank = {code: i for i, code in enumerate((*AREAS, *BANKS))}
    lines = []
    for (feed, code), items in sorted(by_source.items(), key=lambda kv: (order.get(kv[0][0], 9),
                                                                         rank.get(kv[0][1], 99), kv[0][1])):
        months = _months_text([g.month for g in items])
        if feed == "district":
            lines.append(f"{area_names.get(code, code)} 片区月报：{months}")
        elif feed == "bank":
            lines.append(f"{BANK_NAMES.get(code, code)}（{code}）质押融资报送：{months}")
        elif feed == "hr":
            lines.append(f"人才引育报送：{months}")
        elif feed == "techmarket":
            last = max((g.last_delivered for g in items if g.last_delivered), default=None)
            shown = f"最新导出为{last.year}年{last.month}月{last.day}日" if last else "尚无导出"
            lines.append(f"技术合同登记（{shown}）：{months}未导出至月末最后一个工作日")
        else:
            lines.append(f"{feed} {code}：{months}")
    return lines


def completeness(url: str, grain: str, period_start: date, area: str = "ALL",
                 area_names: dict[str, str] | None = None) -> Completeness:
    """Completeness of the period for ``area`` (or ``ALL``): publishable, and who is missing."""
    return completeness_by_area(url, grain, period_start, [area], area_names)[area]


def completeness_by_area(url: str, grain: str, period_start: date, areas: list[str],
                         area_names: dict[str, str] | None = None) -> dict[str, Completeness]:
    """:func:`completeness` for several areas (and/or ``ALL``), the deliveries read once."""
    months = months_of(grain, period_start)
    with psycopg.connect(url) as conn:
        gaps = _gaps_from_quality(conn, months)
        source = "corridor.quality"
        if gaps is None:
            gaps, source = _gaps_own(conn, months), "corridor.scorecards"
    names = area_names or {}
    out = {}
    for area in areas:
        if area == "ALL":
            out[area] = Completeness(publishable=not gaps, missing=describe(gaps, names), source=source)
            continue
        mine = [g for g in gaps if g.feed != "district" or g.source_code == area]
        # the year-end edition ranks the six areas against each other: another area's missing return changes
        # the ranking this area's scorecard shows (its rank, the scores it is compared with)
        others = [g for g in gaps if g.feed == "district" and g.source_code != area] if grain in RANKED_GRAINS else []
        out[area] = Completeness(
            publishable=not (mine or others),
            missing=describe(mine, names) + [f"{line}（影响年度比拼排名）" for line in describe(others, names)],
            source=source)
    return out
