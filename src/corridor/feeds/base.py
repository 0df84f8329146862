"""The contract between a feed's parser and the loader.

A parser turns one landing file into a :class:`ParsedFile`: rows for the
``raw.*`` tables (as dicts keyed by the column names of ``sql/raw.sql``,
without the lineage columns ``ledger_id``, which the loader adds) and
quarantined records with a rule code and a message. A file that cannot be
read at all raises :class:`FileRejected` with the reason.

Invariant checked by the loader before commit:
``rows_received == rows loaded + rows quarantined`` where a loaded row is one
row in any raw table except ``raw.district_returns`` (the cover record of a
workbook, which is bookkeeping, not a data record).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    "duplicate_row": "an exact duplicate of a row already received",
    "duplicate_record_id": "a record_id already received in the same file",
    "invalid_json": "a JSON Lines line that is not a JSON object",
    "period_mismatch": "the record's period differs from the file's period",
    "total_row": "a 合计 (total) row: a sum, not a record",
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


@dataclass
class ParsedFile:
    feed: str
    file_name: str
    file_version: int = 1
    # raw table name (e.g. "raw.district_platforms") -> rows; each row is a
    # dict of column -> value and includes "source_row" and "file_version".
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    rows_received: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. "skipped 2 empty rows"

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)

    def quarantine(self, source_row: int, rule_code: str, message: str,
                   record: dict[str, Any], sheet: str | None = None) -> None:
        self.quarantined.append(Quarantined(source_row, rule_code, message, record, sheet))

    @property
    def rows_loaded(self) -> int:
        return sum(len(rows) for table, rows in self.tables.items()
                   if table not in BOOKKEEPING_TABLES)


BOOKKEEPING_TABLES = frozenset({"raw.district_returns"})


def parser_for(feed: str):
    """The parse function of a feed: ``parse(path: Path, *, pii_key: bytes) -> ParsedFile``."""
    from corridor.feeds import bank, district, hr, techmarket

    return {"district": district.parse, "techmarket": techmarket.parse,
            "bank": bank.parse, "hr": hr.parse}[feed]


__all__ = ["RULES", "FileRejected", "Quarantined", "ParsedFile", "parser_for", "Path"]
