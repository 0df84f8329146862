"""Prove that every dirty record the demo generator planted was caught, and nothing else.

The generator writes ``_demo/manifest.jsonl``: one line per planted record
with what must happen to it (quarantined under a rule, normalised to a value,
skipped, a restatement loaded, …). :func:`verify_manifest` checks each line
against the warehouse and returns the misses, and the other way round the
quarantined records of the landing area's files that no line planted (a
clean record refused: it would be missing from every number, in the raw
tables and the KPIs alike).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from corridor import db

DISTRICT_SHEETS = {
    "创新平台": "raw.district_platforms",
    "企业认定": "raw.district_certifications",
    "重点项目": "raw.district_projects",
    "封面": "raw.district_returns",
}
FEED_TABLES = {
    "techmarket": ["raw.techmarket_contracts"],
    "bank": ["raw.bank_loans"],
    "hr": ["raw.hr_talents"],
    "district": list(DISTRICT_SHEETS.values()),
}


@dataclass
class Verification:
    checked: int = 0
    caught: int = 0
    misses: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    by_kind: Counter = field(default_factory=Counter)
    # quarantined records of the landing area's files that the manifest did not plant:
    # (feed, file, sheet, row, rule_code, message)
    unplanted: list[tuple[str, str, str | None, int, str, str]] = field(default_factory=list)
    quarantined: int = 0  # quarantined records of the landing area's files

    @property
    def ok(self) -> bool:
        return not self.misses and not self.unplanted


def _same(actual: Any, expected: str) -> bool:
    if actual is None:
        return False
    if isinstance(actual, Decimal | int | float):
        try:
            return Decimal(str(actual)) == Decimal(expected)
        except InvalidOperation:
            return False
    if hasattr(actual, "isoformat"):
        return actual.isoformat() == expected
    return str(actual) == expected


class _Checker:
    def __init__(self, conn: psycopg.Connection, pii_key: bytes) -> None:
        self.conn = conn
        self.pii_key = pii_key
        self.ledger = {}
        for feed, name, lid, status, received, loaded, message in conn.execute(
                "select feed, file_name, ledger_id, status, rows_received, rows_loaded, message"
                " from ops.load_ledger order by ledger_id"):
            self.ledger[(feed, name)] = (lid, status, received, loaded, message or "")

    def _tables(self, entry: dict) -> list[str]:
        if entry.get("table"):
            return [entry["table"]]
        if entry["feed"] == "district" and entry.get("sheet"):
            return [DISTRICT_SHEETS[entry["sheet"]]]
        return FEED_TABLES[entry["feed"]]

    def _rows(self, table: str, ledger_id: int, row: int, column: str | None = None) -> list:
        schema, name = table.split(".")
        target = sql.Identifier(column) if column else sql.SQL("1")
        return [r[0] for r in self.conn.execute(
            sql.SQL("select {} from {} where ledger_id = %s and source_row = %s").format(
                target, sql.Identifier(schema, name)), (ledger_id, row)).fetchall()]

    def _quarantined(self, ledger_id: int, row: int, sheet: str | None) -> list[str]:
        query = "select rule_code from ops.quarantine where ledger_id = %s and source_row = %s"
        params: list[Any] = [ledger_id, row]
        if sheet:
            query += " and sheet = %s"
            params.append(sheet)
        return [r[0] for r in self.conn.execute(query, params).fetchall()]

    def check(self, entry: dict) -> str | None:
        """None when the planted record was handled as expected, else why not."""
        key = (entry["feed"], entry["file"])
        if key not in self.ledger:
            return "file not in ops.load_ledger"
        ledger_id, status, received, loaded, message = self.ledger[key]
        expect = entry["expect"]
        if entry.get("same_as") and entry["same_as"] not in message:  # a version with an earlier one's bytes
            return f"expected a restatement loaded with the bytes of {entry['same_as']}, ledger says {message!r}"
        if expect in ("load_file", "supersede"):
            return None if status == "loaded" and loaded > 0 else f"expected loaded rows, ledger says {status}"
        if status != "loaded":
            return f"file {status}: {message}"
        row, sheet = entry["row"], entry.get("sheet")
        rules = self._quarantined(ledger_id, row, sheet)
        if expect == "quarantine":
            return None if entry["rule"] in rules else f"expected quarantine {entry['rule']}, found {rules or 'none'}"
        loaded_rows = [v for t in self._tables(entry) for v in self._rows(t, ledger_id, row)]
        if expect == "skip":
            return None if not rules and not loaded_rows else f"expected nothing, found {len(loaded_rows)} rows, {rules}"
        if expect == "load":
            return None if loaded_rows else f"expected a loaded row, found none (quarantine: {rules})"
        if expect == "normalise":
            column, value = entry["column"], entry["value"]
            if column == "person_key":
                value = hmac.new(self.pii_key, value.encode(), hashlib.sha256).hexdigest()
            values = [v for t in self._tables(entry) for v in self._rows(t, ledger_id, row, column)]
            if not values:
                return f"expected a loaded row, found none (quarantine: {rules})"
            return None if any(_same(v, value) for v in values) else f"{column} is {values}, expected {value!r}"
        return f"unknown expectation {expect!r}"


class NoDemoManifest(RuntimeError):
    """The landing area has no ``_demo/manifest.jsonl``: it was not made by the demo generator."""


def read_manifest(landing_dir: Path) -> list[dict]:
    path = landing_dir / "_demo" / "manifest.jsonl"
    if not path.is_file():
        raise NoDemoManifest(f"{path} not found: `corridor demo verify` checks a landing area made by"
                             " `corridor demo generate` (or `make run`), against its manifest")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def verify_manifest(url: str, landing_dir: Path, pii_key: bytes) -> Verification:
    result = Verification()
    entries = read_manifest(landing_dir)
    with db.connect(url) as conn:  # WarehouseUnavailable: one line
        checker = _Checker(conn, pii_key)
        for entry in entries:
            result.checked += 1
            result.by_kind[entry["kind"]] += 1
            reason = checker.check(entry)
            if reason is None:
                result.caught += 1
            else:
                result.misses.append((entry, reason))
        planted = {(e["feed"], e["file"], e.get("sheet") or None, e["row"])
                   for e in entries if e["expect"] == "quarantine"}
        # a version with the bytes of an earlier one holds that one's planted records
        same_as = {(e["feed"], e["file"]): e["same_as"] for e in entries if e.get("same_as")}
        here: dict[tuple[str, str], bool] = {}  # (feed, file) -> a file of this landing area
        for feed, name, sheet, row, rule, message in conn.execute(
                "select feed, file_name, sheet, source_row, rule_code, message from ops.quarantine"
                " order by ledger_id, sheet nulls first, source_row"):
            if (feed, name) not in here:
                here[(feed, name)] = (landing_dir / feed / name).is_file()
            if not here[(feed, name)]:  # a file of another landing area
                continue
            result.quarantined += 1
            if (feed, same_as.get((feed, name), name), sheet or None, row) not in planted:
                result.unplanted.append((feed, name, sheet, row, rule, message))
    return result
