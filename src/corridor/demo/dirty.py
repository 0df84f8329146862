"""Planting dirty records and recording them in the manifest.

Every dirty record carries exactly one dirty thing. Which kind a record gets
is decided by a :class:`Planter`: a record is made dirty with the context's
rate, and then gets the eligible kind used least so far (weighted), so that
every kind shows up and the kinds spread evenly over the years.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from corridor.demo.ids import fullwidth
from corridor.demo.periods import excel_serial

AREA_KINDS = ("area_short_form", "area_stray_spaces", "unknown_area")
USCC_KINDS = ("uscc_lowercase", "uscc_spaces", "uscc_fullwidth", "uscc_bad_check")
DATE_KINDS = ("date_slash", "date_dot", "date_chinese", "date_compact")
XLSX_DATE_KINDS = (*DATE_KINDS, "date_excel_serial")
NUMBER_KINDS = ("number_thousands", "number_fullwidth", "number_unit_suffix")
ID_KINDS = ("id_lowercase_x", "id_bad_check")

# kind -> quarantine rule (kinds not listed here are normalised, skipped or file-level)
QUARANTINE_RULE = {
    "unknown_area": "unknown_area",
    "uscc_bad_check": "invalid_uscc",
    "id_bad_check": "invalid_id_number",
    "missing_required": "missing_value",
    "negative_amount": "negative_amount",
    "date_out_of_range": "date_out_of_range",
    "total_row": "total_row",
    "duplicate_row_within_file": "duplicate_row",
    "duplicate_row_across_files": "duplicate_row",
    "tech_value_exceeds_contract": "tech_value_exceeds_contract",
    "invalid_json": "invalid_json",
    "unknown_category": "unknown_category",
    "duplicate_record_id": "duplicate_record_id",
}

ROW_EXPECTS = frozenset({"quarantine", "normalise", "skip"})


def dec_text(value: Decimal | int | float) -> str:
    """A number as a plain decimal without trailing zeros: ``1234.5``, ``500000``."""
    d = Decimal(str(value)).normalize()
    text = format(d, "f")
    return "0" if text in ("-0", "") else text


def date_text(kind: str, d: date) -> str | int:
    if kind == "date_slash":
        return f"{d.year}/{d.month}/{d.day}"
    if kind == "date_dot":
        return f"{d.year}.{d.month}.{d.day}"
    if kind == "date_chinese":
        return f"{d.year}年{d.month}月{d.day}日"
    if kind == "date_compact":
        return f"{d.year:04d}{d.month:02d}{d.day:02d}"
    if kind == "date_excel_serial":
        return excel_serial(d)
    raise ValueError(kind)


def number_text(kind: str, value: Decimal, *, unit: str, decimals: int = 2, wan: bool = False) -> str:
    """A dirty rendering of ``value``. ``unit``: 万元, 元 or ㎡ (the column's unit).

    ``wan``: a yuan amount written in 万元 (``50万元`` for 500000 in a 元 column).
    """
    plain = f"{value:.{decimals}f}"
    if kind == "number_thousands":
        return f"{value:,.{decimals}f}"
    if kind == "number_fullwidth":
        return fullwidth(plain)
    if kind == "number_unit_suffix":
        if wan:
            return f"{dec_text(value / 10_000)}万元"
        return f"{dec_text(value)}{unit}"
    raise ValueError(kind)


class Planter:
    """Decides which records are dirty, and how."""

    def __init__(self, rng: random.Random, rate: float, weights: dict[str, float] | None = None):
        self.rng = rng
        self.rate = rate
        self.weights = weights or {}
        self.used: Counter[str] = Counter()

    def pick(self, eligible: Iterable[str]) -> str | None:
        if self.rng.random() >= self.rate:
            return None
        return self.choose(eligible)

    def choose(self, eligible: Iterable[str]) -> str | None:
        kinds = [k for k in eligible if self.weights.get(k, 1.0) > 0]
        if not kinds:
            return None
        scores = [(self.used[k] + 1) / self.weights.get(k, 1.0) for k in kinds]
        best = min(scores)
        candidates = [k for k, s in zip(kinds, scores, strict=True) if s <= best * 1.0001]
        kind = candidates[self.rng.randrange(len(candidates))] if len(candidates) > 1 else candidates[0]
        self.used[kind] += 1
        return kind


class Manifest:
    """``_demo/manifest.jsonl``: one line per planted dirty record or scenario, written as we go."""

    def __init__(self, path: Path):
        self._fh = path.open("w", encoding="utf-8", newline="\n")
        self.dirty: dict[str, Counter[str]] = {}
        self.scenarios: dict[str, Counter[str]] = {}
        self.dirty_rows: Counter[str] = Counter()
        self.dirty_years: dict[str, set[int]] = {}
        self.lines = 0

    def add(self, feed: str, file: str, sheet: str | None, row: int | None, kind: str, expect: str,
            *, year: int | None = None, **extra: Any) -> None:
        rec: dict[str, Any] = {"feed": feed, "file": file, "sheet": sheet, "row": row,
                               "kind": kind, "expect": expect}
        if expect == "quarantine" and "rule" not in extra:
            rec["rule"] = QUARANTINE_RULE[kind]
        rec.update(extra)
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.lines += 1
        if expect in ("load", "supersede"):
            self.scenarios.setdefault(feed, Counter())[kind] += 1
        else:
            self.dirty.setdefault(feed, Counter())[kind] += 1
            if expect in ROW_EXPECTS:
                self.dirty_rows[feed] += 1
                if year is not None:
                    self.dirty_years.setdefault(feed, set()).add(year)

    def close(self) -> None:
        self._fh.close()
