"""The four external feeds, as specified in shared/feeds/README.md.

One module per feed (``district``, ``techmarket``, ``bank``, ``hr``), each with
``parse(path, *, pii_key, sink=None, limits=None) -> ParsedFile``. This module holds what the loader
needs to know of every feed: its landing folder and its file-name pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

AREAS = ("LW", "OH", "YQ", "RA", "ZN", "OJK")
BANKS = ("ICBC", "ABC", "BOC", "CCB", "WZB", "OHRCB")


@dataclass(frozen=True)
class Feed:
    name: str
    folder: str
    pattern: re.Pattern[str]
    pattern_text: str  # as the spec writes it, for error messages
    description: str
    # The longest a healthy source stays silent (its delivery rhythm plus slack):
    # a feed that has received nothing new for longer is a warning in the run summary.
    max_silence: timedelta = timedelta(days=45)


FEEDS: dict[str, Feed] = {
    "district": Feed("district", "district",
                     re.compile(r"^(?P<area>[A-Z]+)_(?P<yyyymm>[0-9]{6})_v(?P<version>[1-9][0-9]*)\.xlsx$", re.ASCII),
                     "{AREA}_{YYYYMM}_v{N}.xlsx", "片区月报 district monthly returns"),
    "techmarket": Feed("techmarket", "techmarket",
                       re.compile(r"^tech_contracts_(?P<yyyymmdd>[0-9]{8})\.csv$", re.ASCII),
                       "tech_contracts_{YYYYMMDD}.csv", "技术合同登记 technology contracts",
                       max_silence=timedelta(days=4)),
    "bank": Feed("bank", "bank",
                 re.compile(r"^(?P<bank>[A-Z]+)_(?P<yyyymm>[0-9]{6})\.csv$", re.ASCII),
                 "{BANK}_{YYYYMM}.csv", "知识产权质押融资 pledge loans"),
    "hr": Feed("hr", "hr",
               re.compile(r"^talent_(?P<yyyymm>[0-9]{6})\.jsonl$", re.ASCII),
               "talent_{YYYYMM}.jsonl", "高层次人才引育 talent intake"),
}


@dataclass(frozen=True)
class FileMeta:
    """What a file's name says: its period, version and (where named) area or bank."""

    period_start: date      # first day of the file's month (techmarket: the export day)
    period_end: date        # last day of that month (techmarket: the export day)
    version: int = 1
    area_code: str | None = None
    bank_code: str | None = None


class BadFileName(ValueError):
    pass


def _month(yyyymm: str) -> tuple[date, date]:
    year, month = int(yyyymm[:4]), int(yyyymm[4:])
    if not 1 <= month <= 12:
        raise BadFileName(f"month {yyyymm} does not exist")
    start = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return start, date.fromordinal(nxt.toordinal() - 1)


def file_meta(feed: str, file_name: str) -> FileMeta:
    """Parse a landing file's name; raise BadFileName naming the expected pattern."""
    spec = FEEDS[feed]
    m = spec.pattern.fullmatch(file_name)  # fullmatch: `$` alone would let a trailing newline through
    if not m:
        raise BadFileName(f"{file_name}: name does not match {spec.pattern_text}")
    g = m.groupdict()
    if feed == "techmarket":
        s = g["yyyymmdd"]
        try:
            day = date(int(s[:4]), int(s[4:6]), int(s[6:]))
        except ValueError as exc:
            raise BadFileName(f"{file_name}: date {s} does not exist") from exc
        return FileMeta(day, day)
    start, end = _month(g["yyyymm"])
    if feed == "district":
        if g["area"] not in AREAS:
            raise BadFileName(f"{file_name}: unknown area code {g['area']} (expected one of {', '.join(AREAS)})")
        return FileMeta(start, end, int(g["version"]), area_code=g["area"])
    if feed == "bank":
        if g["bank"] not in BANKS:
            raise BadFileName(f"{file_name}: unknown bank {g['bank']} (expected one of {', '.join(BANKS)})")
        return FileMeta(start, end, bank_code=g["bank"])
    return FileMeta(start, end)


def restates(feed: str, file_name: str, earlier: str) -> bool:
    """Whether ``file_name`` is a later version of the area-month ``earlier`` belongs to (district only).

    A version ``v2``, ``v3`` … replaces its area-month entirely (the spec, §1), whatever it holds: a ``v3``
    with the bytes of ``v1`` withdraws ``v2``'s restatement, so it is loaded, not taken for ``v1`` re-sent.
    """
    if feed != "district":
        return False
    try:
        new, old = file_meta(feed, file_name), file_meta(feed, earlier)
    except BadFileName:
        return False
    return (new.area_code, new.period_start) == (old.area_code, old.period_start) and new.version > old.version
