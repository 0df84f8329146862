"""The contract between a feed's parser and the loader.

A parser turns one landing file into a :class:`ParsedFile`: rows for the
``raw.*`` tables (as dicts keyed by the column names of ``sql/raw.sql``,
without the lineage columns ``ledger_id``, which the loader adds) and
quarantined records with a rule code and a message. A file that cannot be
read at all raises :class:`FileRejected` with the reason.

The loader passes a *sink* (``parse(path, *, pii_key, sink=...)``, the
ingest's ``SpoolSink``): rows and quarantined records then go, as they are
parsed, to spools of COPY text (in memory up to a bound, on disk beyond: memory
does not grow with the file) that the loader COPYs into the database in the
file's transaction. Without a sink (unit tests, tools) they are kept on the
ParsedFile.

Invariant checked by the loader before commit:
``rows_received == rows loaded + rows quarantined`` where a loaded row is one
row in any raw table except ``raw.district_returns`` (the cover record of a
workbook, which is bookkeeping, not a data record).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Rule codes used in ops.quarantine.rule_code. One name per rule, everywhere
# (parsers, tests, demo manifest, docs).
RULES: dict[str, str] = {
    "missing_value": "a required value is blank",
    "invalid_value": "a value is not one of the accepted values",
    "invalid_number": "a number cannot be read",
    "negative_amount": "an amount is negative",
    "invalid_date": "a date cannot be read",
    "date_out_of_range": "a date lies outside 2015-01-01 .. the file's period end",
    "unknown_area": "the area is none of the six corridor areas",
    "invalid_uscc": "a unified social credit code fails GB 32100-2015",
    "invalid_id_number": "a resident ID number fails GB 11643-1999",
    "unknown_category": "a talent category other than A..E",
    "tech_value_exceeds_contract": "技术交易额 greater than 合同成交额",
    "dates_out_of_order": "an end date before its start date (到期日期 before 放款日期, 有效期至 before 认定日期,"
                          " 计划完成日期 before 开始日期)",
    "duplicate_row": "an exact duplicate of a row already received",
    "duplicate_record_id": "a record_id already received in the same file",
    "invalid_json": "a JSON Lines line that is not a JSON object",
    "period_mismatch": "the record's period differs from the file's period",
    "total_row": "a 合计 (total) row: a sum, not a record",
    "invalid_character": "a field holds a NUL byte or an unpaired surrogate, which cannot be stored as text",
    "invalid_csv": "a CSV record the CSV reader cannot read (stray quote, newline in an unquoted field …)",
    "record_too_long": "a CSV record or JSON line longer than CORRIDOR_MAX_RECORD_BYTES",
    "field_too_long": "a field longer than CORRIDOR_MAX_FIELD_CHARS characters",
    "too_many_fields": "a record with more fields than CORRIDOR_MAX_FIELDS",
}


class FileRejected(Exception):
    """The file cannot be read at all; nothing of it is loaded."""


@dataclass
class Quarantined:
    source_row: int
    rule_code: str
    message: str
    record: dict[str, Any]  # the original record (personal data masked)
    sheet: str | None = None

    def __post_init__(self) -> None:
        if self.rule_code not in RULES:
            raise ValueError(f"unknown rule code {self.rule_code!r}")


class Sink(Protocol):
    """Where a parser's output goes while it parses (the loader's spools of COPY text, ``ingest.SpoolSink``).

    The fast path writes through ``add_block(table, data)`` (``ParsedFile.add_block``), and only into a sink
    that has it (``_fast.usable``): ``SpoolSink``."""

    def add(self, table: str, row: dict[str, Any]) -> None: ...

    def quarantine(self, entry: Quarantined) -> None: ...


@dataclass
class ParsedFile:
    feed: str
    file_name: str
    file_version: int = 1
    # raw table name (e.g. "raw.district_platforms") -> rows; each row is a
    # dict of column -> value and includes "source_row" and "file_version".
    # Kept only without a sink.
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    rows_received: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. "skipped 2 empty rows"
    sink: Sink | None = None
    counts: dict[str, int] = field(default_factory=dict)  # rows added per raw table

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.counts[table] = self.counts.get(table, 0) + 1
        if self.sink is not None:
            self.sink.add(table, row)
        else:
            self.tables.setdefault(table, []).append(row)

    def add_block(self, table: str, data: bytes, count: int) -> None:
        """``count`` rows already written as COPY text (the fast path; only with a sink that takes them)."""
        self.counts[table] = self.counts.get(table, 0) + count
        self.sink.add_block(table, data)

    def quarantine(self, source_row: int, rule_code: str, message: str,
                   record: dict[str, Any], sheet: str | None = None) -> None:
        entry = Quarantined(source_row, rule_code, message, record, sheet)
        if self.sink is not None:
            self.sink.quarantine(entry)
        else:
            self.quarantined.append(entry)

    @property
    def rows_loaded(self) -> int:
        return sum(n for table, n in self.counts.items() if table not in BOOKKEEPING_TABLES)


BOOKKEEPING_TABLES = frozenset({"raw.district_returns"})


def feed_module(feed: str):
    """The module of a feed (``corridor.feeds.<feed>``), imported alone: a worker parsing CSV never pays for
    importing the xlsx reader's openpyxl (~0.7 s of CPU)."""
    import importlib

    if feed not in ("district", "techmarket", "bank", "hr"):
        raise KeyError(feed)
    return importlib.import_module(f"corridor.feeds.{feed}")


def parser_for(feed: str):
    """The parse function of a feed: ``parse(path, *, pii_key, sink=None) -> ParsedFile``."""
    return feed_module(feed).parse


__all__ = ["RULES", "FileRejected", "Quarantined", "ParsedFile", "Sink", "feed_module", "parser_for", "Path"]
