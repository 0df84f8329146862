"""Load a feed's landing folder into the warehouse, exactly once per file.

For each file in ``landing/<feed>/`` the loader

1. hashes it and looks it up in ``ops.load_ledger``: bytes already loaded are a
   no-op (a file re-sent under its own name is skipped; the same bytes under a
   new name get a ledger row saying which file they duplicate and load
   nothing); a name already loaded with *other* bytes is rejected, because a
   delivered file is never changed in place;
2. parses it with the feed's parser (``corridor.feeds.<feed>.parse``);
3. in ONE transaction: writes the ledger row, COPYs the valid rows into the
   ``raw`` tables and the invalid ones into ``ops.quarantine``, checks
   ``rows_received = rows_loaded + rows_quarantined`` and commits. A crash at
   any point leaves nothing of the file behind, and the next run loads it.

A file that cannot be read at all gets a ``rejected`` ledger row with the
reason; the other files still load, and the caller fails the run listing the
rejected files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from corridor.feeds import FEEDS, BadFileName, file_meta
from corridor.feeds.base import BOOKKEEPING_TABLES, FileRejected, ParsedFile, parser_for

log = logging.getLogger(__name__)


@dataclass
class FileOutcome:
    file_name: str
    status: str  # loaded | duplicate | unchanged | rejected
    ledger_id: int | None = None
    rows_received: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str = ""


@dataclass
class FeedSummary:
    feed: str
    files: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def rows_received(self) -> int:
        return sum(f.rows_received for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "rejected"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed": self.feed,
            "files_seen": len(self.files),
            "files_loaded": self.count("loaded"),
            "files_unchanged": self.count("unchanged"),
            "files_duplicate": self.count("duplicate"),
            "files_rejected": self.count("rejected"),
            "rows_received": self.rows_received,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "rejected": [{"file": f.file_name, "reason": f.message} for f in self.rejected],
            "seconds": round(self.seconds, 2),
        }

    def rejection_message(self) -> str:
        lines = [f"{self.feed}: {len(self.rejected)} file(s) rejected:"]
        lines += [f"  - {f.file_name}: {f.message}" for f in self.rejected]
        return "\n".join(lines)


class ReconciliationError(RuntimeError):
    """rows_received != rows_loaded + rows_quarantined: never commit that."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def discover(landing_dir: Path, feed: str) -> list[Path]:
    """The feed's files in delivery order (period, then version, then name).

    Hidden files (transfers in progress, editor droppings) are ignored; any
    other file is the loader's business, and one whose name breaks the
    spec's pattern is rejected rather than skipped.
    """
    folder = landing_dir / FEEDS[feed].folder
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]

    def order(p: Path) -> tuple:
        try:
            meta = file_meta(feed, p.name)
            return (0, meta.period_start, meta.version, p.name)
        except BadFileName:
            return (1, date.min, 0, p.name)

    return sorted(files, key=order)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


class Loader:
    """Loads files of one feed over one connection, one transaction per file."""

    def __init__(self, conn: psycopg.Connection, feed: str, *, pii_key: bytes,
                 parse: Callable[..., ParsedFile] | None = None) -> None:
        self.conn = conn
        self.feed = feed
        self.pii_key = pii_key
        self.parse = parse or parser_for(feed)
        self._columns: dict[str, list[str]] = {}
        self._touched: set[str] = set()

    # -- ledger look-ups ---------------------------------------------------
    def _loaded(self) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[str, int]]]:
        rows = self.conn.execute(
            "select file_name, sha256, ledger_id from ops.load_ledger "
            "where feed = %s and status = 'loaded' order by ledger_id",
            (self.feed,),
        ).fetchall()
        by_name = {name: (sha, lid) for name, sha, lid in rows}
        by_sha: dict[str, tuple[str, int]] = {}
        for name, sha, lid in rows:
            by_sha.setdefault(sha, (name, lid))
        return by_name, by_sha

    def load_all(self, files: Iterable[Path]) -> FeedSummary:
        started = time.perf_counter()
        summary = FeedSummary(self.feed)
        by_name, by_sha = self._loaded()
        for path in files:
            sha = sha256_of(path)
            if path.name in by_name:
                known_sha, lid = by_name[path.name]
                if known_sha == sha:
                    summary.files.append(FileOutcome(path.name, "unchanged", lid,
                                                     message="already loaded"))
                    continue
                outcome = self._reject(path, sha, (
                    f"{path.name} was already loaded (ledger {lid}) with different content; "
                    "a delivered file is never changed in place: a correction must arrive "
                    "as a new file"))
            elif sha in by_sha:
                outcome = self._record_duplicate(path, sha, *by_sha[sha])
            else:
                outcome = self.load_file(path, sha)
            if outcome.status in ("loaded", "duplicate"):
                by_name[path.name] = (sha, outcome.ledger_id)
                by_sha.setdefault(sha, (path.name, outcome.ledger_id))
            summary.files.append(outcome)
        if self._touched:
            self._analyze()
        summary.seconds = time.perf_counter() - started
        return summary

    def _analyze(self) -> None:
        """Refresh planner statistics of the tables just loaded.

        Autovacuum gets to a freshly loaded table only after a while; dbt
        building right after a bulk load would otherwise plan its joins on
        empty-table estimates (seen here: minutes instead of seconds).
        """
        for table in sorted(self._touched | {"ops.load_ledger", "ops.quarantine"}):
            schema, name = table.split(".")
            self.conn.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, name)))
        self.conn.commit()
        self._touched.clear()

    # -- one file ------------------------------------------------------------
    def load_file(self, path: Path, sha: str | None = None) -> FileOutcome:
        sha = sha or sha256_of(path)
        started_at = datetime.now(UTC)
        try:
            file_meta(self.feed, path.name)
            parsed = self.parse(path, pii_key=self.pii_key)
        except (BadFileName, FileRejected) as exc:
            return self._reject(path, sha, str(exc), started_at)
        except Exception as exc:  # a parser bug must not hide the file either
            log.exception("parser of %s failed on %s", self.feed, path.name)
            return self._reject(path, sha, f"{path.name}: could not be parsed ({type(exc).__name__}: {exc})",
                                started_at)
        with self.conn.transaction():
            self.conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"corridor.ingest.{self.feed}",))
            # Another loader may have taken the file while this one parsed it.
            if self.conn.execute(
                "select 1 from ops.load_ledger where feed = %s and status = 'loaded'"
                " and (file_name = %s or sha256 = %s)", (self.feed, path.name, sha)).fetchone():
                return FileOutcome(path.name, "unchanged", message="loaded meanwhile by another run")
            ledger_id = self.conn.execute(
                "insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at, finished_at)"
                " values (%s, %s, %s, %s, 'loaded', %s, %s) returning ledger_id",
                (self.feed, path.name, sha, path.stat().st_size, started_at, started_at),
            ).fetchone()[0]
            if self.feed == "techmarket":
                self._quarantine_cross_file_duplicates(parsed)
            loaded = 0
            for table, rows in parsed.tables.items():
                copied = self._copy(table, rows, ledger_id)
                self._touched.add(table)
                if table not in BOOKKEEPING_TABLES:
                    loaded += copied
            quarantined = self._copy_quarantine(parsed, ledger_id)
            if parsed.rows_received != loaded + quarantined:
                raise ReconciliationError(
                    f"{path.name}: received {parsed.rows_received} rows but loaded {loaded} "
                    f"and quarantined {quarantined}; nothing committed")
            message = "; ".join(parsed.notes) or None
            self.conn.execute(
                "update ops.load_ledger set rows_received = %s, rows_loaded = %s, rows_quarantined = %s,"
                " finished_at = %s, message = %s where ledger_id = %s",
                (parsed.rows_received, loaded, quarantined, datetime.now(UTC), message, ledger_id),
            )
        return FileOutcome(path.name, "loaded", ledger_id, parsed.rows_received, loaded, quarantined,
                           message or "")

    def _reject(self, path: Path, sha: str, reason: str, started_at: datetime | None = None) -> FileOutcome:
        started_at = started_at or datetime.now(UTC)
        with self.conn.transaction():
            ledger_id = self.conn.execute(
                "insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at,"
                " finished_at, message) values (%s, %s, %s, %s, 'rejected', %s, %s, %s) returning ledger_id",
                (self.feed, path.name, sha, path.stat().st_size, started_at, datetime.now(UTC), reason),
            ).fetchone()[0]
        log.warning("rejected %s/%s: %s", self.feed, path.name, reason)
        return FileOutcome(path.name, "rejected", ledger_id, message=reason)

    def _record_duplicate(self, path: Path, sha: str, original: str, original_id: int) -> FileOutcome:
        now = datetime.now(UTC)
        message = f"identical bytes to {original} (ledger {original_id}), already loaded: nothing loaded"
        with self.conn.transaction():
            ledger_id = self.conn.execute(
                "insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at,"
                " finished_at, message) values (%s, %s, %s, %s, 'loaded', %s, %s, %s) returning ledger_id",
                (self.feed, path.name, sha, path.stat().st_size, now, now, message),
            ).fetchone()[0]
        return FileOutcome(path.name, "duplicate", ledger_id, message=message)

    # -- COPY ----------------------------------------------------------------
    def _table_columns(self, table: str) -> list[str]:
        if table not in self._columns:
            schema, name = table.split(".")
            rows = self.conn.execute(
                "select column_name from information_schema.columns where table_schema = %s"
                " and table_name = %s order by ordinal_position", (schema, name)).fetchall()
            if not rows:
                raise KeyError(f"no table {table}")
            self._columns[table] = [r[0] for r in rows]
        return self._columns[table]

    def _copy(self, table: str, rows: list[dict[str, Any]], ledger_id: int) -> int:
        if not rows:
            return 0
        columns = [c for c in self._table_columns(table) if c != "ledger_id"]
        missing = set(columns) - set(rows[0])
        if missing:
            raise KeyError(f"parser of {self.feed} gives no {sorted(missing)} for {table}")
        schema, name = table.split(".")
        stmt = sql.SQL("copy {} ({}) from stdin").format(
            sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, [*columns, "ledger_id"])))
        with self.conn.cursor() as cur, cur.copy(stmt) as copy:
            for row in rows:
                copy.write_row([*(row[c] for c in columns), ledger_id])
        return len(rows)

    def _copy_quarantine(self, parsed: ParsedFile, ledger_id: int) -> int:
        if not parsed.quarantined:
            return 0
        stmt = ("copy ops.quarantine (ledger_id, feed, file_name, sheet, source_row, rule_code, message, record)"
                " from stdin")
        with self.conn.cursor() as cur, cur.copy(stmt) as copy:
            for q in parsed.quarantined:
                copy.write_row([ledger_id, self.feed, parsed.file_name, q.sheet, q.source_row, q.rule_code,
                                q.message, json.dumps(q.record, ensure_ascii=False, default=_jsonable)])
        return len(parsed.quarantined)

    # -- feed-specific rule needing the warehouse ------------------------------
    def _quarantine_cross_file_duplicates(self, parsed: ParsedFile) -> None:
        """A contract row identical to that contract's latest loaded row is a duplicate.

        Only the *latest* state counts: a row repeating an older state after a
        change (有效 → 撤销 → 有效) is news, not a duplicate.
        """
        rows = parsed.tables.get("raw.techmarket_contracts") or []
        if not rows:
            return
        latest = dict(((r[0]), (r[1], r[2], r[3])) for r in self.conn.execute(
            """
            select distinct on (c.registration_no) c.registration_no, c.row_hash, l.file_name, c.source_row
            from raw.techmarket_contracts as c
            join ops.load_ledger as l on l.ledger_id = c.ledger_id
            where c.registration_no = any(%s)
            order by c.registration_no, c.export_date desc, c.ledger_id desc, c.source_row desc
            """, ([r["registration_no"] for r in rows],)).fetchall())
        kept = []
        for row in rows:
            earlier = latest.get(row["registration_no"])
            if earlier and earlier[0] == row["row_hash"]:
                parsed.quarantine(
                    row["source_row"], "duplicate_row",
                    f"{parsed.file_name} row {row['source_row']}: 合同登记号 {row['registration_no']} "
                    f"repeats exactly its latest registration, {earlier[1]} row {earlier[2]}",
                    {k: v for k, v in row.items() if k not in ("row_hash",)})
            else:
                kept.append(row)
        parsed.tables["raw.techmarket_contracts"] = kept


def ingest_feed(url: str, feed: str, landing_dir: Path, *, pii_key: bytes) -> FeedSummary:
    """Load every new file of a feed's landing folder; return what happened."""
    if feed not in FEEDS:
        raise KeyError(f"unknown feed {feed!r}; expected one of {', '.join(FEEDS)}")
    with psycopg.connect(url) as conn:
        summary = Loader(conn, feed, pii_key=pii_key).load_all(discover(landing_dir, feed))
    log.info("ingested %s: %s", feed, json.dumps(summary.as_dict(), ensure_ascii=False))
    return summary


__all__ = ["FeedSummary", "FileOutcome", "Loader", "discover", "ingest_feed"]
