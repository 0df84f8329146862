"""Load a feed's landing folder into the warehouse, exactly once per file.

For each entry of ``landing/<feed>/`` the loader

1. checks what it is without following it: only a regular file whose real
   path stays inside the landing folder is read; a symbolic link, a folder,
   a FIFO or a device gets a ``rejected`` ledger row saying what it is, and
   so does a name breaking the spec's pattern;
2. hashes it and looks it up in ``ops.load_ledger``: bytes already loaded are a
   no-op (a file re-sent under its own name is skipped; the same bytes under a
   new name get a ledger row saying which file they duplicate and load
   nothing, unless the new name is a later version of the same district
   area-month: a restatement replaces the area-month whatever it holds, so a
   ``v3`` with ``v1``'s bytes is loaded); a name already loaded with *other*
   bytes is rejected, because a delivered file is never changed in place.
   (A file parsed ahead by a worker was hashed there, before the parse read
   it; the loader takes that hash while the file's inode, size and times are
   still the ones the worker saw, and hashes and parses it again itself
   otherwise);
3. parses it (ahead, in a worker or a thread: :class:`Prefetcher`; else
   here) into spools of COPY text, kept in memory up to SPOOL_MEMORY_BYTES
   and on disk beyond (memory does not grow with the file); then in ONE
   transaction, committed when the file is done: writes the ledger row,
   COPYs the spooled rows into the ``raw`` tables and the invalid ones into
   ``ops.quarantine``, checks ``rows_received = rows_loaded +
   rows_quarantined`` and commits. A crash leaves every file committed before
   it and nothing of the file it was loading; the next run loads that one.

Whatever goes wrong while a file is parsed or copied (an unreadable file, a
parser bug, a value the database refuses inside COPY) rolls back that file
only and writes a ``rejected`` ledger row naming the file and the cause; the
loader goes on with the next file and the caller fails the run listing the
rejected files. A missing landing folder fails the run; a feed silent for
longer than its delivery rhythm is a warning in the summary.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from corridor import db
from corridor.config import ConfigError, env_int
from corridor.feeds import FEEDS, BadFileName, file_meta, restates
from corridor.feeds._fast import np
from corridor.feeds._rows import _UNSTORABLE, HEAD_BYTES, escape_unstorable, kind_of, open_regular
from corridor.feeds.base import FileRejected, ParsedFile, Quarantined, feed_module, parser_for
from corridor.progress import Progress

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
    sha256: str = ""


@dataclass
class FeedSummary:
    feed: str
    files: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

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
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 2),
        }

    def rejection_message(self) -> str:
        lines = [f"{self.feed}: {len(self.rejected)} file(s) rejected:"]
        lines += [f"  - {f.file_name}: {f.message}" for f in self.rejected]
        return "\n".join(lines)


class ParseFailed(RuntimeError):
    """The parser broke on a file (a bug, not the file's fault): the file is rejected naming the error."""


class ReconciliationError(RuntimeError):
    """rows_received != rows_loaded + rows_quarantined: never commit that."""


class WarehouseTrouble(RuntimeError):
    """The warehouse could not take a file for a reason of its own, not the file's (a lock or statement timeout,
    a cancelled statement, a deadlock, a full disk, ...): the run stops at that file, which is not rejected."""


# SQLSTATEs of errors that say nothing about the file being loaded: connection (08), transaction rollback
# (40: serialization failure, deadlock), insufficient resources (53: disk full, out of memory), lock not
# available (55P03: lock_timeout), operator intervention (57: statement_timeout, a cancel, a shutdown), system
# error (58: I/O), idle-in-transaction and transaction timeouts (25P03, 25P04).
_NOT_THE_FILES = ("08", "40", "53", "55P03", "57", "58", "25P03", "25P04")


def _not_the_files(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None) if isinstance(exc, psycopg.Error) else None
    return bool(state) and state.startswith(_NOT_THE_FILES)


def sha256_of(path: Path) -> str:
    with open_regular(path) as fh:
        return _sha256_of_open(fh)


def _sha256_of_open(fh: Any) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells that a file is still the one read earlier: its inode, size, modification and change times."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_ahead(path: Path) -> tuple[str | None, tuple[int, int, int, int] | None]:
    """(sha256, stamp) of a file, for a parse worker to hand over with its parse (the loader's hashing is then
    off its chain of work); (None, None) when it cannot be read, which the loader finds out again for itself."""
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())  # before reading: a write while hashing changes what the loader sees
            return _sha256_of_open(fh), _stamp(st)
    except (FileRejected, OSError):
        return None, None


class LandingFolderMissing(ConfigError):
    """A feed's landing folder does not exist or is not a folder: the run must fail, not report success (a
    setting that cannot be used: CORRIDOR_LANDING_DIR names no such folder)."""


def feed_folder(landing_dir: Path, feed: str) -> Path:
    """The feed's landing folder; raise LandingFolderMissing naming the path when it is not one."""
    folder = Path(landing_dir) / FEEDS[feed].folder
    if not folder.exists():
        raise LandingFolderMissing(f"{folder}: the landing folder of feed {feed} does not exist")
    if not folder.is_dir():
        raise LandingFolderMissing(f"{folder}: the landing folder of feed {feed} is not a folder")
    return folder


def discover(landing_dir: Path, feed: str) -> list[Path]:
    """The feed's directory entries in delivery order (period, then version, then name).

    Hidden entries (transfers in progress, editor droppings) are ignored; any
    other entry is the loader's business: one whose name breaks the spec's
    pattern, or that is not a regular file (a link, a folder, a FIFO …), is
    rejected rather than skipped. Nothing is opened or followed here.
    """
    folder = feed_folder(landing_dir, feed)
    entries = [Path(e.path) for e in os.scandir(folder) if not e.name.startswith(".")]

    def order(p: Path) -> tuple:
        try:
            meta = file_meta(feed, p.name)
            return (0, meta.period_start, meta.version, p.name)
        except BadFileName:
            return (1, date.min, 0, p.name)

    return sorted(entries, key=order)


def _inside(path: Path, folder: Path, real_folder: Path | None = None) -> bool:
    """``path`` resolves inside ``folder`` (``real_folder``: the folder already resolved, by the caller)."""
    try:
        path.resolve().relative_to(real_folder or folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _mtime(st: os.stat_result) -> datetime:
    """A file's modification time, at the microsecond PostgreSQL keeps."""
    return _mtime_of_ns(st.st_mtime_ns)


def _mtime_of_ns(mtime_ns: int) -> datetime:
    return datetime.fromtimestamp(mtime_ns // 1000 / 1e6, UTC).replace(microsecond=(mtime_ns // 1000) % 1_000_000)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


# What a quarantined record may weigh in ops.quarantine before it is cut to its head.
MAX_QUARANTINE_RECORD_CHARS = 16 * 1024


def quarantine_json(record: Any) -> str:
    """The quarantined record as jsonb accepts it: NUL and lone surrogates escaped, never NaN, bounded."""
    text = None
    if type(record) is dict and all(type(v) is str or v is None for v in record.values()) and all(
            type(k) is str for k in record):
        # a record of text cells (CSV, most xlsx rows): escape_unstorable leaves it as it is unless one holds
        # an unstorable character (one search, not a call per key and value)
        if not _UNSTORABLE.search("".join(record) + "".join(v for v in record.values() if v is not None)):
            text = json.dumps(record, ensure_ascii=False)
    if text is None:
        text = json.dumps(escape_unstorable(record), ensure_ascii=False, allow_nan=False, default=_jsonable)
    if len(text) > MAX_QUARANTINE_RECORD_CHARS:
        text = json.dumps({"record_head": text[:HEAD_BYTES], "record_chars": len(text)}, ensure_ascii=False)
    return text


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# A file's spool stays in memory up to this many bytes (per table), then goes on to a temporary file: most
# landing files are far smaller, and creating, reading and deleting a file each cost milliseconds on a busy disk.
SPOOL_MEMORY_BYTES = 16 * 1024 * 1024

# A spool: COPY text (or JSON lines) in memory (bytes), or the path of the temporary file holding it (str).
Spool = bytes | str


class _SpoolBuffer:
    """A write-only spool: bytes in memory until SPOOL_MEMORY_BYTES, then a temporary file in ``spool_dir``."""

    def __init__(self, spool_dir: str | None) -> None:
        self.spool_dir = spool_dir
        self.parts: list[bytes] = []
        self.size = 0
        self.fh: Any = None
        self.path: str | None = None

    def write(self, data: bytes) -> None:
        if self.fh is not None:
            self.fh.write(data)
            return
        self.parts.append(data)
        self.size += len(data)
        if self.size > SPOOL_MEMORY_BYTES:
            fd, self.path = tempfile.mkstemp(prefix="corridor-spool-", dir=self.spool_dir)
            self.fh = os.fdopen(fd, "wb")
            self.fh.write(b"".join(self.parts))
            self.parts = []

    def close(self) -> Spool:
        if self.fh is None:
            return b"".join(self.parts)
        self.fh.close()
        return self.path


def spool_bytes(spool: Spool) -> bytes:
    """A spool's content."""
    if isinstance(spool, bytes):
        return spool
    with open(spool, "rb") as fh:
        return fh.read()


def spool_lines(spool: Spool) -> Iterable[str]:
    """The lines of a JSON-lines spool (the quarantined records), decoded."""
    if isinstance(spool, bytes):
        yield from spool.decode("utf-8").split("\n")[:-1]  # not splitlines(): U+2028 may sit in a record
        return
    with open(spool, encoding="utf-8") as fh:
        for line in fh:
            yield line.rstrip("\n")


def _remove_spool(spool: Spool | None) -> None:
    if isinstance(spool, str):
        with contextlib.suppress(OSError):
            os.unlink(spool)


class SpoolSink:
    """Takes a file's rows as its parser produces them and writes them as COPY data (a :data:`Spool`).

    One spool per raw table (PostgreSQL COPY text format, psycopg's own
    formatting, without the ``ledger_id`` column, which is only known when the
    file's ledger row is written) and one for the quarantined records (JSON
    lines). A spool is kept in memory up to SPOOL_MEMORY_BYTES and goes on to
    disk beyond, so memory does not grow with the file however many rows it
    has; a file can be parsed in another process while the loader commits the
    previous one.
    """

    def __init__(self, columns: dict[str, list[str]], spool_dir: str | None = None) -> None:
        from psycopg._copy_base import TextFormatter
        from psycopg.adapt import Transformer

        self.columns = columns          # raw table -> its columns, ledger_id excluded
        self.spool_dir = spool_dir
        self._formatter = TextFormatter(Transformer())
        self._table: str | None = None
        self._fh: _SpoolBuffer | None = None
        self._order: list[str] = []     # column list per table
        self.tables: list[tuple[str, list[str], Spool]] = []  # (table, columns, spool), in order
        self._quarantine: _SpoolBuffer | None = None
        self.quarantine_path: Spool | None = None  # the quarantined records' spool
        self.quarantined = 0
        # techmarket: (registration_no as COPY text, row_hash, source_row) of the rows the fast path's merge wrote
        self.contract_keys: tuple[list[str], list[str], list[int]] | None = None

    def add(self, table: str, row: dict[str, Any]) -> None:
        if table != self._table:
            self._start(table, row)
        data = self._formatter.write_row([row[c] for c in self._order])
        if data:
            self._fh.write(data)

    def columns_of(self, table: str) -> list[str]:
        columns = self.columns.get(table)
        if columns is None:
            raise KeyError(f"no table {table}")
        return columns

    def format_row(self, table: str, row: dict[str, Any]) -> str:
        """One row as a line of COPY text (without its newline), as :meth:`add` writes it."""
        formatter = type(self._formatter)(self._formatter.transformer)
        formatter.write_row([row[c] for c in self.columns_of(table)])
        return bytes(formatter.end()).decode("utf-8")[:-1]

    def format_value(self, value: Any) -> str:
        """One value as COPY text writes it."""
        formatter = type(self._formatter)(self._formatter.transformer)
        formatter.write_row([value])
        return bytes(formatter.end()).decode("utf-8")[:-1]

    def add_block(self, table: str, data: bytes) -> None:
        """Rows already formatted as COPY text, in this sink's column order (the parsers' fast path)."""
        if table != self._table:
            self._start(table, None)
        self._fh.write(data)

    def _start(self, table: str, first: dict[str, Any] | None) -> None:
        self._finish()
        columns = self.columns_of(table)
        missing = set(columns) - set(first) if first is not None else set()
        if missing:
            raise KeyError(f"the parser gives no {sorted(missing)} for {table}")
        self._fh = _SpoolBuffer(self.spool_dir)
        self._table, self._order = table, columns

    def _finish(self) -> None:
        if self._fh is not None:
            self._fh.write(bytes(self._formatter.end()))
            self.tables.append((self._table, self._order, self._fh.close()))
        self._table, self._fh = None, None

    def quarantine(self, entry: Quarantined) -> None:
        if self._quarantine is None:
            self._quarantine = _SpoolBuffer(self.spool_dir)
        self._quarantine.write((json.dumps([entry.sheet, entry.source_row, entry.rule_code,
                                            escape_unstorable(entry.message), quarantine_json(entry.record)],
                                           ensure_ascii=False) + "\n").encode("utf-8"))
        self.quarantined += 1

    def close(self) -> None:
        self._finish()
        if self._quarantine is not None:
            self.quarantine_path = self._quarantine.close()
            self._quarantine = None


@dataclass
class Spooled:
    """A parsed file waiting for its transaction (picklable: it may come from a worker process)."""

    file_name: str
    rows_received: int = 0
    rows_loaded: int = 0
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], Spool]] = field(default_factory=list)
    quarantine_path: Spool | None = None  # the quarantined records (JSON lines)
    quarantined: int = 0
    rejected: str | None = None  # the file cannot be read: why
    failed: str | None = None    # the parser broke on it: what happened
    # techmarket: (registration_no, row_hash, source_row) of its spooled rows, for ContractDuplicates
    keys: tuple[list[str], list[str], list[int]] | None = None
    key_ints: Any = None  # _contract_keys(keys[0]) when the parse computed them (an int64 array), else None
    # the file's sha256 and _stamp, taken by the worker before it parsed the file (spool_batch), else None: the
    # loader takes the sha256 when the file's stamp is still this one, and parses the file again otherwise
    sha256: str | None = None
    stamp: tuple[int, int, int, int] | None = None

    def remove(self) -> None:
        for spool in [p for _, _, p in self.tables] + [self.quarantine_path]:
            _remove_spool(spool)


def _with_keys(feed: str, spooled: Spooled, carried: tuple | None = None) -> Spooled:
    """techmarket: the contract keys of the spooled rows, read here (a worker, when one parsed the file).

    ``carried``: the keys the fast path's merge handed over with the rows it wrote (``SpoolSink.contract_keys``),
    taken when they count the spool's lines; otherwise (the per-row path, a spool on disk) read back from it.
    """
    if feed != "techmarket" or spooled.rejected or spooled.failed:
        return spooled
    try:
        if not spooled.tables:
            spooled.keys = ([], [], [])
        elif (carried is not None and len(spooled.tables) == 1
              and spooled.tables[0][0] == "raw.techmarket_contracts" and isinstance(spooled.tables[0][2], bytes)
              and len(carried[0]) == len(carried[1]) == len(carried[2]) == spooled.tables[0][2].count(b"\n")):
            spooled.keys = carried
            spooled.key_ints = _contract_keys(carried[0])  # here (a worker), not in the loading process
        elif len(spooled.tables) == 1 and spooled.tables[0][0] == "raw.techmarket_contracts":
            columns = spooled.tables[0][1]
            r, h, n = (columns.index(c) for c in ContractDuplicates.COLUMNS)
            regnos, hashes, rows = [], [], []
            for line in spool_bytes(spooled.tables[0][2]).split(b"\n")[:-1]:
                fields = line.split(b"\t")
                regnos.append(fields[r].decode())
                hashes.append(fields[h].decode())
                rows.append(int(fields[n]))
            spooled.keys = (regnos, hashes, rows)
    except Exception:  # never the file's fault: the SQL check decides
        log.exception("techmarket: reading the contract keys of %s failed; its duplicates are checked in SQL",
                      spooled.file_name)
        spooled.keys = None
    return spooled


def spool_file(feed: str, path: Path, pii_key: bytes, columns: dict[str, list[str]],
               parse: Callable[..., ParsedFile] | None = None, spool_dir: str | None = None) -> Spooled:
    """Parse one landing file into spools; never raises for the file (the outcome says what happened)."""
    sink = SpoolSink(columns, spool_dir)
    try:
        parsed = (parse or parser_for(feed))(path, pii_key=pii_key, sink=sink)
        sink.close()
    except (FileRejected, BadFileName) as exc:
        sink.close()
        Spooled(path.name, tables=sink.tables, quarantine_path=sink.quarantine_path).remove()
        return Spooled(path.name, rejected=str(exc))
    except Exception as exc:  # a parser bug must not hide the file, nor stop the others
        log.exception("parsing %s/%s failed", feed, path.name)
        with contextlib.suppress(Exception):
            sink.close()
        Spooled(path.name, tables=sink.tables, quarantine_path=sink.quarantine_path).remove()
        return Spooled(path.name, failed=_one_line(exc))
    return _with_keys(feed, Spooled(path.name, parsed.rows_received, parsed.rows_loaded, list(parsed.notes),
                                    sink.tables, sink.quarantine_path, sink.quarantined))


def spool_batch(feed: str, paths: list[Path], pii_key: bytes, columns: dict[str, list[str]],
                spool_dir: str | None = None) -> list[Spooled]:
    """Parse several landing files into spools, the CSV ones vectorised together (feeds/_fast.py).

    Each file keeps its own outcome, exactly as :func:`spool_file` gives it
    (one file's rejection or failure costs that file only), with the file's
    sha256 and stamp as they were before the parse read it (``Spooled.sha256``,
    ``Spooled.stamp``): the loader hashes nothing it takes from here.
    """
    ahead = [_hash_ahead(p) for p in paths]
    outcomes = _spool_batch(feed, paths, pii_key, columns, spool_dir)
    for spooled, (sha, stamp) in zip(outcomes, ahead, strict=True):
        spooled.sha256, spooled.stamp = sha, stamp
    return outcomes


def _spool_batch(feed: str, paths: list[Path], pii_key: bytes, columns: dict[str, list[str]],
                 spool_dir: str | None) -> list[Spooled]:
    if feed not in ("techmarket", "bank", "hr", "district") or (len(paths) < 2 and not _batch_pays(feed, paths)):
        return [spool_file(feed, p, pii_key, columns, None, spool_dir) for p in paths]
    module = feed_module(feed)  # the feed's own only
    if feed in ("hr", "district"):
        sinks = [SpoolSink(columns, spool_dir) for _ in paths]
        return [_spooled(feed, path, sink, parsed, error) for path, sink, (parsed, error)
                in zip(paths, sinks, module.run_batch(paths, pii_key=pii_key, sinks=sinks), strict=True)]
    from corridor import config
    from corridor.feeds._rows import run_csv_jobs

    outcomes: list[Spooled | None] = [None] * len(paths)
    jobs, sinks = [], []
    limits = config.load().limits  # once a batch (a millisecond each)
    for i, path in enumerate(paths):
        sink = SpoolSink(columns, spool_dir)
        try:
            jobs.append((i, module.csv_job(path, pii_key=pii_key, sink=sink, limits=limits)))
            sinks.append(sink)
        except (FileRejected, BadFileName) as exc:
            outcomes[i] = Spooled(path.name, rejected=str(exc))
    run_csv_jobs([job for _, job in jobs])
    for (i, job), sink in zip(jobs, sinks, strict=True):
        outcomes[i] = _spooled(feed, job.path, sink, job.parsed, job.error)
    return outcomes


# A CSV or JSON Lines file alone takes the batch's vectorised path from this size on (the per-row path below:
# polars' cost per call is some milliseconds, a row's Python conversion some tens of microseconds). The first
# batches of a feed are small (RAMP): an hr file of 1,400 rows was one such batch, parsed row by row.
SINGLE_BATCH_BYTES = 128 * 1024


def _batch_pays(feed: str, paths: list[Path]) -> bool:
    """One CSV or JSON Lines file large enough for the vectorised path."""
    if feed == "district" or len(paths) != 1:
        return False
    try:
        return os.lstat(paths[0]).st_size >= SINGLE_BATCH_BYTES
    except OSError:
        return False


def _spooled(feed: str, path: Path, sink: SpoolSink, parsed: ParsedFile, error: BaseException | None) -> Spooled:
    """The outcome of a parse into ``sink``: what spool_file returns."""
    try:
        sink.close()
    except Exception as exc:
        error = error or exc
    if error is None:
        return _with_keys(feed, Spooled(path.name, parsed.rows_received, parsed.rows_loaded, list(parsed.notes),
                                        sink.tables, sink.quarantine_path, sink.quarantined), sink.contract_keys)
    Spooled(path.name, tables=sink.tables, quarantine_path=sink.quarantine_path).remove()
    if isinstance(error, FileRejected | BadFileName):
        return Spooled(path.name, rejected=str(error))
    log.error("parsing %s/%s failed: %s", feed, path.name, _one_line(error), exc_info=error)
    return Spooled(path.name, failed=_one_line(error))


def _one_polars_thread() -> None:
    """In a parsing worker, before polars is first imported: one thread for its work.

    The workers already keep every core busy; polars' own pool of a thread per
    core in each of them made the threads wait on each other (measured at
    province: techmarket's parsing ~20 % more CPU, twice the wall time on a
    busy machine). A POLARS_MAX_THREADS already in the environment wins.
    """
    os.environ.setdefault("POLARS_MAX_THREADS", "1")


class _ParsePool:
    """The process's pool of parse workers: started by the first feed that parses in workers, kept for the
    process's following feeds (``corridor ingest`` and ``make run`` load the four feeds in one process;
    spawning two workers and their imports cost ~0.5 s of CPU each, and the feed waited for them before its
    first parsed batch), shut down by :func:`close_parse_pool` (the CLI and the pipeline after their ingest,
    ``ingest_feed`` when a load raises) or at the interpreter's exit. A pool that failed is discarded (the
    loader parses the rest itself, as before); the next feed starts a new one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool: Any = None
        self.workers = 0
        self.pid = 0
        self.at_exit = False

    def get(self, workers: int) -> Any:
        with self.lock:
            if self.pool is not None and self.pid != os.getpid():
                self.pool = None  # a forked copy of the parent's pool: not ours to use or shut down
            elif self.pool is not None and not self.warm(workers):
                self._shutdown(wait=False)
            if self.pool is None:
                from corridor.workers import process_pool

                self.pool = process_pool(workers, initializer=_one_polars_thread)
                self.workers, self.pid = workers, os.getpid()
                if not self.at_exit:
                    atexit.register(close_parse_pool)
                    self.at_exit = True
            return self.pool

    def warm(self, workers: int) -> bool:
        """Started already in this process, with ``workers`` workers, and not broken."""
        pool = self.pool
        return (pool is not None and self.pid == os.getpid() and self.workers == workers
                and not getattr(pool, "_broken", False))

    def discard(self, pool: Any) -> None:
        """``pool`` failed: shut it down without waiting; the next feed starts a new one."""
        with self.lock:
            if pool is self.pool:
                self._shutdown(wait=False)
                return
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self.lock:
            if self.pool is not None and self.pid == os.getpid():
                self._shutdown(wait=True)
            self.pool = None

    def _shutdown(self, wait: bool) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)


_PARSE_POOL = _ParsePool()


def close_parse_pool() -> None:
    """Shut down the process's parse workers (kept between feeds), waiting for them; a no-op without any."""
    _PARSE_POOL.close()


class Prefetcher:
    """Parses the files to load ahead of the loader, in batches, in worker processes (both cores) or in-process.

    The loader still commits file after file in delivery order, one
    transaction each; only parsing runs ahead. Files are parsed a batch at a
    time (:func:`spool_batch`: the CSV feeds' vectorised path costs per call,
    not per row, so many small files are converted together). With
    ``workers`` > 0 the batches run in worker processes while the loader
    COPYs; with 0 (a run too small to pay for starting processes) they run
    in one thread of the loader's process, which parses the next batch while
    the loader waits on the server for the current one (polars and the
    server's work leave the GIL free). Workers are started with ``spawn`` (no
    fork of a threaded Airflow process), so a script that loads feeds needs
    the usual ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, loader: Loader, paths: list[Path], workers: int) -> None:
        self.loader = loader
        self.batches = _batches(paths, RAMP, *BATCHES_OF.get(loader.feed, (BATCH_BYTES, 1)))
        self.window = 2 * workers
        self.futures: dict[int, Any] = {}          # batch number -> future of its Spooled list
        self.batch_of = {p.name: i for i, batch in enumerate(self.batches) for p in batch}
        self.ready: dict[str, Spooled] = {}
        self.next_batch = 0
        self.pool = None
        self.shared = False  # the process's parse workers (kept for the following feeds), not this feed's own
        self._switch: float | None = None  # the interpreter's switch interval, while the parse thread runs
        if workers > 0:
            try:
                self.pool = _PARSE_POOL.get(workers)
                self.shared = True
            except Exception as exc:  # no workers: the loader parses itself
                log.warning("parsing workers unavailable (%s): parsing in the loader", _one_line(exc))
            self._fill()
        elif len(self.batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.window = 2
            self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"corridor-parse-{loader.feed}")
            self._switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch, PARSE_THREAD_SWITCH))
            self._fill()

    def _args(self, batch: list[Path]) -> tuple:
        return (self.loader.feed, batch, self.loader.pii_key, self.loader.raw_columns(), self.loader.spool_dir)

    def _fill(self) -> None:
        while self.pool is not None and self.next_batch < len(self.batches) and len(self.futures) < self.window:
            try:
                self.futures[self.next_batch] = self.pool.submit(spool_batch, *self._args(self.batches[self.next_batch]))
            except Exception as exc:  # a broken pool: the loader parses the rest itself
                log.warning("parsing workers unavailable (%s): parsing in the loader", _one_line(exc))
                self._stop_pool()
                return
            self.next_batch += 1

    def _stop_pool(self) -> None:
        self.window = 0
        pool, self.pool = self.pool, None
        if pool is not None and self.shared:
            _PARSE_POOL.discard(pool)
        elif pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        # the batches no worker started: parsed by the loader when their turn comes
        self.futures = {n: f for n, f in self.futures.items() if not f.cancel()}

    def take(self, path: Path) -> Spooled | None:
        """The spooled parse of ``path`` (parsing its batch if no worker has), or None if it is not in a batch.

        ``spool_batch`` never raises for a file, so an exception of a future
        is the pool's (a worker killed, out of memory): the prefetcher stops
        using workers and the loader parses the remaining batches itself; no
        file is lost to it.
        """
        if path.name in self.ready:
            return self.ready.pop(path.name)
        number = self.batch_of.get(path.name)
        if number is None:
            return None
        future = self.futures.pop(number, None)
        results = None
        if future is not None:
            try:
                results = future.result()
            except Exception as exc:
                log.warning("parsing workers failed (%s): the loader parses the remaining files itself",
                            _one_line(exc))
                self._stop_pool()
        if results is None:
            batch = [p for p in self.batches[number] if p.name not in self.ready]
            for p in self.batches[number]:
                self.batch_of.pop(p.name, None)
            if number >= self.next_batch:
                self.next_batch = number + 1
            results = spool_batch(*self._args(batch))
        else:
            for p in self.batches[number]:
                self.batch_of.pop(p.name, None)
        for spooled in results:
            self.ready[spooled.file_name] = spooled
        self._fill()
        return self.ready.pop(path.name, None)

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        for future in self.futures.values():
            with contextlib.suppress(Exception):
                if not future.cancelled():
                    for spooled in future.result():
                        spooled.remove()
        for spooled in self.ready.values():
            spooled.remove()
        self.ready.clear()
        if self.pool is not None and not self.shared:  # the process's workers stay for the next feed
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None
        if self._switch is not None:
            sys.setswitchinterval(self._switch)
            self._switch = None


# While a thread parses ahead of the loader, the interpreter hands the GIL over after this many seconds
# (Python's default: 5 ms). The loader gives the GIL up on every round trip to the server and every system
# call (a dozen a file) and waited up to the whole interval to get it back from the parse thread each time.
PARSE_THREAD_SWITCH = 0.0005

# A batch of files parsed together: up to this many bytes or files (memory: a few times the bytes).
BATCH_BYTES = 4 * 1024 * 1024
BATCH_FILES = 200


# The first batches are smaller (an eighth, a quarter, a half of BATCH_BYTES): the loader waits for the whole
# first batch before its first COPY, and for nothing after it while the parse keeps ahead.
RAMP = (8, 4, 2)

# A feed's own (batch bytes, fewest files a batch): district's workbooks cost some 30 ms of parsing per 70 KB
# (province), so its batches are a MiB (~14 workbooks: the loader's first COPY waits for a few, not ~60, and
# the two workers end together), two at least (a workbook alone takes the per-row parse, not the fast path).
BATCHES_OF = {"district": (1024 * 1024, 2)}


def _batches(paths: list[Path], ramp: tuple[int, ...] = (), batch_bytes: int = BATCH_BYTES,
             min_files: int = 1) -> list[list[Path]]:
    batches: list[list[Path]] = []
    size = 0
    for path in paths:
        try:
            n = os.lstat(path).st_size
        except OSError:
            n = 0
        limit = batch_bytes // (ramp[len(batches) - 1] if 0 < len(batches) <= len(ramp) else 1)
        if (not batches or (size + n > limit and len(batches[-1]) >= min_files)
                or len(batches[-1]) >= BATCH_FILES):
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += n
    return batches


def ingest_workers() -> int:
    """Worker processes that parse ahead of the loader (CORRIDOR_INGEST_WORKERS; default: the cores, at most 4)."""
    return env_int("CORRIDOR_INGEST_WORKERS", max(1, min(4, os.cpu_count() or 1)), minimum=1)


# A file's quarantined records up to this many are INSERTed in the committing pipeline, more by COPY.
QUARANTINE_INSERT_MAX = 500

# A progress line in the log every this many files (and every 30 s, and at the end); see corridor.progress.
PROGRESS_EVERY = 100

# Parse in worker processes only when a run has this much to parse (times the feed's factor below): starting
# them costs a second or two of CPU, and a smaller run parses in a thread of the loader (see Prefetcher).
PARALLEL_MIN_BYTES = 4 * 1024 * 1024
# A megabyte of workbook is some ten times the Python work of a megabyte of CSV or JSON Lines (measured at
# province scale: ~0.8 s of parsing per MB of xlsx, ~0.1 s per MB of the others).
PARALLEL_FACTOR = {"district": 1, "techmarket": 8, "bank": 8, "hr": 12}

# A number as COPY text writes it that is also a JSON number (to_jsonb would print it alike).
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_COPY_UNESCAPE = re.compile(r"\\(.)")
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _copy_text_value(field: str) -> str | None:
    """One field of a COPY text line as the value it stands for (\\N: None)."""
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    return _COPY_UNESCAPE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), field)


class _Bitmap:
    """A set that may answer yes for a non-member, never no for a member: 2**BITS bits (16 MiB), one per hash.

    Each member is hashed to one bit (a multiplicative hash of its 64-bit key); a look-up or an add is a
    few numpy operations whatever the set's size. A non-member shares a member's bit with a probability of
    members / 2**BITS (0.4 % for the 540,000 contracts of the province set, 4 % for the 5.2 million of the
    national one): enough for a set that only says which contracts *may* have been loaded before, since the
    database says which were. (The sorted runs of exact 64-bit hashes it replaces, 8 bytes a member, cost
    about a third of the loader's own CPU at province scale in merging and searching.)
    """

    BITS = 27

    def __init__(self) -> None:
        self._bits: Any = None  # allocated (zeroed) on the first add
        self.count = 0          # adds, repeats included

    def __len__(self) -> int:
        return self.count

    def _slots(self, keys: Any) -> Any:
        with np.errstate(over="ignore"):
            return (keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - self.BITS)

    def slots(self, keys: Any) -> tuple[Any, Any]:
        """Where ``keys`` (an int64 array) sit: (byte index, bit mask) each (to pass to contains and add)."""
        slots = self._slots(keys)
        bit = (slots & np.uint64(7)).astype(np.uint8)
        return (slots >> np.uint64(3)).astype(np.intp), np.left_shift(np.uint8(1), bit)

    def contains(self, keys: Any, slots: tuple[Any, Any] | None = None) -> Any:
        """A boolean array: which of ``keys`` (an int64 array) may be members (every member is)."""
        if self._bits is None:
            return np.zeros(len(keys), dtype=bool)
        where, mask = slots or self.slots(keys)
        return (self._bits[where] & mask) != 0

    def add(self, keys: Any, slots: tuple[Any, Any] | None = None) -> None:
        if not len(keys):
            return
        if self._bits is None:
            self._bits = np.zeros(1 << (self.BITS - 3), dtype=np.uint8)
        where, mask = slots or self.slots(keys)
        # a buffered |= keeps one of several masks for the same byte: those left out are set again, until none is
        # (a few keys a call share a byte; np.bitwise_or.at, unbuffered, cost several times as much)
        self._bits[where] |= mask
        left = np.flatnonzero((self._bits[where] & mask) == 0)
        while len(left):
            self._bits[where[left]] |= mask[left]
            left = left[(self._bits[where[left]] & mask[left]) == 0]
        self.count += len(keys)

    def clear(self) -> None:
        self._bits = None
        self.count = 0


_REGNO = re.compile(r"[0-9]{1,18}")


def _contract_keys(regnos: list[str]) -> Any:
    """64-bit keys of registration numbers: the number itself (16 digits, as every loaded one has), else a
    digest of the text (never equal for two different numbers of up to 18 digits, unlikely for others)."""
    joined = "".join(regnos)
    if joined.isascii() and joined.isdigit() and max(map(len, regnos)) <= 18:
        try:  # int("") raises: such a list takes the general way below
            return np.array(list(map(int, regnos)), dtype=np.int64)
        except ValueError:
            pass
    if not regnos:
        return np.zeros(0, dtype=np.int64)
    return np.fromiter((int(r) if _REGNO.fullmatch(r) else
                        -1 - (int.from_bytes(hashlib.blake2b(r.encode("utf-8", "surrogatepass"),
                                                             digest_size=8).digest(), "little") >> 1)
                        for r in regnos), dtype=np.int64, count=len(regnos))


class ContractDuplicates:
    """techmarket's cross-file rule, decided in the loader: a row repeating its contract's latest loaded row.

    The rule (see :meth:`Loader._quarantine_cross_file_duplicates`, which
    states it in SQL): a row whose ``row_hash`` equals that of its
    contract's latest row in the *other* files (by export_date, ledger_id,
    source_row) moves to quarantine. The SQL statement joins every new row
    with the table (an index look-up, a join and a sort per contract: about
    as much server time as the COPY itself at province scale). Here instead,
    when the table was empty as the run began, the loader keeps a bitmap of
    the registration numbers it has loaded (16 MiB at any scale,
    :class:`_Bitmap`): only the file's contracts found in it (the repeats,
    some 3 % of rows in the demo sets, and the few sharing a bit with a
    loaded one) are looked up, in one query in the file's first round trip,
    and the database's answer decides. When the table was not empty, every contract of the file
    is looked up. The memory holds no row, so it stays small at any scale.

    Sound only while this loader is the only one adding contracts: each
    file's first round trip checks, under the feed's lock, that no other
    loader has committed a file since; if one has, that file takes the SQL
    check and every later file looks all its contracts up.
    """

    COLUMNS = ("registration_no", "row_hash", "source_row")
    NUMERIC = frozenset({"file_version", "contract_value_10k_yuan", "tech_value_10k_yuan", "source_row"})

    def __init__(self, conn: psycopg.Connection) -> None:
        self.mark, self.empty = conn.execute(
            "select (select coalesce(max(ledger_id), 0) from ops.load_ledger),"
            " not exists (select from raw.techmarket_contracts)").fetchone()
        self.loaded = _Bitmap()  # while self.empty: the registration numbers loaded by this run
        # the last file's numbers, their keys, then their bits and which may have been loaded (once a file)
        self._keys: tuple[list[str], Any] | None = None
        self._slots: tuple[Any, Any] | None = None
        self._maybe: Any = None

    def preset(self, regnos: list[str], keys: Any) -> None:
        """The keys of a file's registration numbers, computed already (``Spooled.key_ints``)."""
        self._keys = (regnos, keys)
        self._slots = self._maybe = None

    def keys(self, regnos: list[str]) -> Any:
        """The 64-bit keys of a file's registration numbers (kept for the same list: its remember())."""
        if self._keys is None or self._keys[0] is not regnos:
            self._keys = (regnos, _contract_keys(regnos))
            self._slots = self._maybe = None
        return self._keys[1]

    def _bits_of(self, regnos: list[str]) -> tuple[Any, Any]:
        keys = self.keys(regnos)
        if self._slots is None:
            self._slots = self.loaded.slots(keys)
        return self._slots

    def maybe(self, regnos: list[str]) -> Any:
        """Which of the file's rows may have a contract with a row in the table already (a boolean array)."""
        if not self.empty:
            return np.ones(len(regnos), dtype=bool)
        if self._maybe is None:
            self._maybe = self.loaded.contains(self.keys(regnos), self._bits_of(regnos))
        return self._maybe

    def candidates(self, regnos: list[str]) -> list[str]:
        """The file's contracts that may have a row in the table already (all of them unless it began empty)."""
        if not self.empty:
            return sorted(set(regnos))
        return sorted({regnos[i] for i in np.flatnonzero(self.maybe(regnos)).tolist()})

    # Has another loader committed a file since ``mark``? Asked by the statement adding the file's ledger row
    # (:meth:`Loader.load_file`), under the feed's lock; the file's own row has no rows yet (rows_loaded = 0).
    OTHER = ("exists (select from ops.load_ledger as o where o.feed = 'techmarket' and o.status = 'loaded'"
             " and o.rows_loaded > 0 and o.ledger_id > %s)")

    def statements(self, conn: psycopg.Connection, regnos: list[str]) -> Any:
        """The latest rows of the file's candidate contracts (a cursor, or None when there is none to look up),
        queued in a pipeline after the file's ledger row (so: under the feed's lock)."""
        wanted = self.candidates(regnos)
        looked = None
        if wanted:
            looked = conn.execute(
                "select distinct on (c.registration_no) c.registration_no, c.export_date, c.ledger_id,"
                " c.source_row, c.row_hash, l.file_name"
                " from raw.techmarket_contracts as c inner join ops.load_ledger as l on l.ledger_id = c.ledger_id"
                " where c.registration_no = any(%s)"
                " order by c.registration_no, c.export_date desc, c.ledger_id desc, c.source_row desc",
                (wanted,))
        return looked

    def remember(self, regnos: list[str]) -> None:
        """After a file's commit: its contracts are in the table now."""
        if self.empty:
            self.loaded.add(self.keys(regnos), self._bits_of(regnos))
        self._keys = self._slots = self._maybe = None

    def reset(self, ledger_id: int) -> None:
        """Another loader committed meanwhile (or SQL decided a file): look every contract up from now on."""
        self.loaded.clear()
        self._keys = self._slots = self._maybe = None
        self.empty = False
        self.mark = ledger_id


def worth_analyzing(added: int, tuples: float) -> bool:
    """Autovacuum's rule (its defaults): a table gets new statistics once over 50 rows + 10 % of the rows its
    statistics count (``pg_class.reltuples``; -1: never analyzed) have changed."""
    return tuples < 0 or added > 50 + 0.1 * tuples


class Loader:
    """Loads files of one feed, one transaction per file, each committed on its own.

    The connection must be in autocommit mode (``ingest_feed`` opens it so):
    each ``conn.transaction()`` is then a real transaction, committed when
    the file is done, not a savepoint of one transaction around the feed.
    """

    def __init__(self, conn: psycopg.Connection, feed: str, *, pii_key: bytes,
                 parse: Callable[..., ParsedFile] | None = None, landing_dir: Path | None = None,
                 workers: int | None = None, spool_dir: str | None = None, progress_stream: Any = None) -> None:
        if not conn.autocommit:
            raise ValueError("Loader needs an autocommit connection: each file commits on its own")
        # A file's commit does not wait for the WAL flush (thousands of small files: one fsync each
        # otherwise). Still one atomic transaction per file: a server crash may lose the last few
        # commits, ledger row and rows together, and the next run loads those files again.
        conn.execute("set synchronous_commit = off")
        self.conn = conn
        self.feed = feed
        self.pii_key = pii_key
        self.parse = parse  # None: the feed's own parser (which worker processes can run too)
        self.landing_dir = landing_dir
        self.workers = workers or ingest_workers()
        self.spool_dir = spool_dir
        self.progress_stream = progress_stream  # where the live progress line goes (a terminal); None: stderr
        self._raw_columns: dict[str, list[str]] | None = None
        self._prefetcher: Prefetcher | None = None
        self._touched: set[str] = set()
        self._quarantined = 0  # rows this loader has put in ops.quarantine since its last ANALYZE
        self._copy_statements: dict[tuple[str, tuple[str, ...]], str] = {}  # (table, columns) -> its COPY
        self._real_folder: tuple[Path, Path | None] | None = None  # the landing folder, resolved once a run
        self._contracts: ContractDuplicates | None = None  # techmarket: its cross-file rule, decided here
        self._stamps: dict[str, tuple[int, datetime, str, int]] = {}  # file name -> size, mtime, sha, ledger
        self._ledger_lock_held = False  # by the file being opened (_open_file)

    # -- ledger look-ups ---------------------------------------------------
    def _loaded(self) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[str, int]]]:
        rows = self.conn.execute(
            "select file_name, sha256, ledger_id, bytes, mtime from ops.load_ledger "
            "where feed = %s and status = 'loaded' order by ledger_id",
            (self.feed,),
        ).fetchall()
        by_name = {name: (sha, lid) for name, sha, lid, _, _ in rows}
        by_sha: dict[str, tuple[str, int]] = {}
        for name, sha, lid, _, _ in rows:
            by_sha.setdefault(sha, (name, lid))
        self._stamps = {name: (size, mtime, sha, lid) for name, sha, lid, size, mtime in rows if mtime is not None}
        return by_name, by_sha

    def load_all(self, files: Iterable[Path]) -> FeedSummary:
        started = time.perf_counter()
        summary = FeedSummary(self.feed)
        by_name, by_sha = self._loaded()
        files = list(files)
        candidates = [p for p in files if self._worth_parsing(p)]
        if self.feed == "techmarket" and candidates:
            self._contracts = ContractDuplicates(self.conn)
        if self.parse is None and len(candidates) > 1:
            # in workers whenever an earlier feed of the process started them (they cost nothing more then),
            # whatever there is to parse; else only when there is enough to pay for starting them
            parallel = self.workers > 1 and (
                _PARSE_POOL.warm(self.workers)
                or sum(os.lstat(p).st_size for p in candidates) >= PARALLEL_MIN_BYTES * PARALLEL_FACTOR.get(self.feed, 1))
            self._prefetcher = Prefetcher(self, candidates, self.workers if parallel else 0)
        progress = Progress(f"ingest {self.feed}", total=len(files), unit="files", log=log,
                            every=PROGRESS_EVERY, stream=self.progress_stream)
        try:
            with progress:
                for path in files:
                    outcome = self._one(path, by_name, by_sha)
                    if outcome.status in ("loaded", "duplicate"):
                        sha = outcome.sha256
                        by_name[path.name] = (sha, outcome.ledger_id)
                        by_sha.setdefault(sha, (path.name, outcome.ledger_id))
                    summary.files.append(outcome)
                    progress.advance(1, rows=outcome.rows_received)
        finally:
            if self._prefetcher is not None:
                self._prefetcher.close()
                self._prefetcher = None
        if self._touched:
            self._analyze()
        summary.seconds = time.perf_counter() - started
        return summary

    def _worth_parsing(self, path: Path) -> bool:
        """A regular file with a good name that is not already loaded as it is (a guess, for prefetching)."""
        try:
            st = os.lstat(path)
            file_meta(self.feed, path.name)
        except (OSError, BadFileName):
            return False
        return stat.S_ISREG(st.st_mode) and not self._unchanged(path.name, st)

    def _unchanged(self, name: str, st: os.stat_result) -> bool:
        """Loaded before under this name with this size and modification time."""
        stamp = self._stamps.get(name)
        return bool(stamp) and stamp[:2] == (st.st_size, _mtime(st))

    def raw_columns(self) -> dict[str, list[str]]:
        """Every raw table's columns in order, ledger_id excluded (what a parser's rows must give)."""
        if self._raw_columns is None:
            rows = self.conn.execute(
                "select table_schema || '.' || table_name, array_agg(column_name::text order by ordinal_position)"
                " from information_schema.columns where table_schema = 'raw' and column_name <> 'ledger_id'"
                " group by 1").fetchall()
            self._raw_columns = dict(rows)
        return self._raw_columns

    def _one(self, path: Path, by_name: dict, by_sha: dict) -> FileOutcome:
        """One directory entry: checked, hashed, then loaded, skipped or rejected; never raises for the file."""
        try:
            st = os.lstat(path)
        except OSError as exc:
            return self._reject(path, "", f"{path.name} cannot be read: {exc.strerror}")
        if not stat.S_ISREG(st.st_mode):
            return self._reject(path, "", f"{path.name} is {kind_of(st.st_mode)}, not a regular file: "
                                          "not followed, not read")
        folder = self.landing_dir / FEEDS[self.feed].folder if self.landing_dir else path.parent
        if self._real_folder is None or self._real_folder[0] != folder:
            try:
                self._real_folder = (folder, folder.resolve())
            except (OSError, RuntimeError):
                self._real_folder = (folder, None)
        if not _inside(path, folder, self._real_folder[1]):
            return self._reject(path, "", f"{path.name} resolves outside the landing folder {folder}: not read")
        try:
            file_meta(self.feed, path.name)
        except BadFileName as exc:
            return self._reject(path, "", str(exc))
        stamp = self._stamps.get(path.name)
        if self._unchanged(path.name, st):
            # Same name, size and modification time as when it was loaded: not re-read.
            return FileOutcome(path.name, "unchanged", stamp[3], message="already loaded", sha256=stamp[2])
        # The file's parse, when a worker made it: with its sha256, taken before the worker read the file. A file
        # changed since (another stamp now, after waiting for the parse) is hashed and parsed again here.
        ahead = self._prefetcher.take(path) if self._prefetcher is not None else None
        if ahead is not None:
            try:
                now = _stamp(os.lstat(path))
            except OSError:
                now = None
            if ahead.sha256 is None or ahead.stamp != now:
                ahead.remove()
                ahead = None
        try:
            sha = ahead.sha256 if ahead is not None else sha256_of(path)
        except FileRejected as exc:  # swapped for a link or a FIFO since it was looked at
            return self._reject(path, "", str(exc))
        except OSError as exc:
            return self._reject(path, "", f"{path.name} cannot be read: {exc.strerror}")
        same_bytes = by_sha.get(sha)
        restating = same_bytes is not None and restates(self.feed, path.name, same_bytes[0])
        if ahead is not None and (path.name in by_name or (same_bytes is not None and not restating)):
            ahead.remove()  # not loaded: its parse is not needed
        if path.name in by_name:
            known_sha, lid = by_name[path.name]
            if known_sha == sha:  # touched, or loaded before mtimes were kept: remember it as it is now
                self.conn.execute("update ops.load_ledger set mtime = %s where ledger_id = %s", (_mtime(st), lid))
                return FileOutcome(path.name, "unchanged", lid, message="already loaded", sha256=sha)
            return self._reject(path, sha, (
                f"{path.name} was already loaded (ledger {lid}) with different content; "
                "a delivered file is never changed in place: a correction must arrive "
                "as a new file"))
        if restating:  # a later version of the same area-month: it replaces the area-month, whatever it holds
            return self.load_file(path, sha, spooled=ahead, restating=same_bytes)
        if same_bytes is not None:
            return self._record_duplicate(path, sha, *same_bytes)
        return self.load_file(path, sha, spooled=ahead)

    def _analyze(self) -> None:
        """Refresh planner statistics of the load ledger (and of ops.quarantine by autovacuum's rule).

        The raw tables are not analyzed here: the dbt build does it before its
        models run, once per build, for each raw table that received enough
        rows since it was last analyzed (dbt_project/macros/analyze_raw_tables.sql;
        dbt must never plan on empty-table statistics: minutes instead of seconds).
        """
        tables = {"ops.load_ledger"}
        if self._quarantined:
            # ops.quarantine (read by no model, only by the gate's reconciliation) as autovacuum would: when
            # this run added over 50 rows + 10 % of what its statistics counted (~0.1 s of server CPU a feed
            # at province scale, the feeds after the first adding a few percent).
            tuples = self.conn.execute("select reltuples from pg_class where oid = 'ops.quarantine'::regclass"
                                       ).fetchone()[0]
            if worth_analyzing(self._quarantined, tuples):
                tables.add("ops.quarantine")
        for table in sorted(tables):
            schema, name = table.split(".")
            self.conn.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, name)))
        self._touched.clear()
        self._quarantined = 0

    # -- one file ------------------------------------------------------------
    def load_file(self, path: Path, sha: str | None = None, *, spooled: Spooled | None = None,
                  restating: tuple[str, int] | None = None) -> FileOutcome:
        """Load one file in one transaction (parsed into spools first, before it begins, unless ``spooled``); on any
        failure roll it back and reject the file.

        ``spooled``: the file's parse, which the caller took from the prefetcher (the only place a file's parse
        is taken from it) and found still of the bytes ``sha`` is of: the ledger row gets the size and
        modification time the worker saw (``Spooled.stamp``), so that a file changed since is read again by the
        next run. Without it the file is parsed here.

        ``restating``: (name, ledger id) of an earlier version of the same area-month with these very bytes
        (:func:`corridor.feeds.restates`): the file is loaded all the same, and its ledger message says so.

        Whatever goes wrong (an unreadable file, a parser bug, a value the
        database refuses inside COPY, a reconciliation failure) costs this
        file only: nothing of it stays, a ``rejected`` ledger row names the
        file and the cause, and the loader goes on with the next file. Only a
        lost connection (nothing can be recorded then) propagates, and an error
        that is the warehouse's, not the file's (a lock or statement timeout, a
        cancel, a deadlock, a full disk: ``_not_the_files``), which rolls the file
        back and stops the run as ``WarehouseTrouble``, rejecting nothing.
        """
        sha = sha or sha256_of(path)
        started_at = datetime.now(UTC)
        try:
            file_meta(self.feed, path.name)
        except BadFileName as exc:
            if spooled is not None:
                spooled.remove()
            return self._reject(path, sha, str(exc), started_at)
        # The transaction is begun and ended by hand so that its statements share round trips
        # (pipelines): BEGIN + lock + check + ledger row (+ techmarket's contract look-up), then COPY, then
        # the quarantine + the ledger's counts + COMMIT. A file costs 3-4 round trips.
        try:
            if spooled is not None and spooled.stamp is not None:
                size, mtime = spooled.stamp[1], _mtime_of_ns(spooled.stamp[2])
            else:
                st = os.lstat(path)
                size, mtime = st.st_size, _mtime(st)
            if spooled is None:
                spooled = spool_file(self.feed, path, self.pii_key, self.raw_columns(), self.parse,
                                     self.spool_dir)
            # techmarket: its contract keys (None: the SQL statement decides its cross-file duplicates)
            contracts = spooled.keys if self._contracts is not None else None
            if contracts is not None and spooled.key_ints is not None:
                self._contracts.preset(contracts[0], spooled.key_ints)
            cur, looked = self._open_file(path, sha, size, mtime, started_at, contracts, wait=False,
                                          same_bytes_loaded=restating is not None)
            row = cur.fetchone()
            if not self._ledger_lock_held:
                # A dbt command that writes holds the ledger's lock (or waits for it): nothing of this transaction
                # may commit. Say so, wait for the command, then begin again.
                self.conn.execute("rollback")
                log.info("%s/%s: a dbt command is writing the warehouse: the file waits for it (loading pauses"
                         " while one runs)", self.feed, path.name)
                waiting = time.monotonic()
                cur, looked = self._open_file(path, sha, size, mtime, started_at, contracts, wait=True,
                                              same_bytes_loaded=restating is not None)
                log.info("%s/%s: waited %.1f s for the dbt command", self.feed, path.name, time.monotonic() - waiting)
                row = cur.fetchone()
            if row is None:
                self.conn.execute("rollback")
                spooled.remove()
                return FileOutcome(path.name, "unchanged", message="loaded meanwhile by another run", sha256=sha)
            ledger_id = row[0]
            try:
                if spooled.rejected:
                    raise FileRejected(spooled.rejected)
                if spooled.failed:
                    raise ParseFailed(f"{path.name}: could not be parsed ({spooled.failed}); "
                                      "nothing of it was loaded")
                try:
                    repeats = self._contract_repeats(spooled, contracts, (row[1], looked), ledger_id, path.name)
                except psycopg.Error:
                    raise
                except Exception:  # a bug here must not cost the file: the SQL statement decides
                    log.exception("techmarket: deciding the cross-file duplicates of %s failed; SQL decides",
                                  path.name)
                    repeats = None
                for table, columns, spool in spooled.tables:
                    self._copy_spool(table, columns, spool, ledger_id)
                if repeats is None:
                    moved = self._quarantine_cross_file_duplicates(ledger_id, path.name)
                else:
                    moved = len(repeats)
                quarantined = spooled.quarantined + moved
                loaded = spooled.rows_loaded - moved
                parsed = spooled
                if parsed.rows_received != loaded + quarantined:
                    raise ReconciliationError(
                        f"{path.name}: received {parsed.rows_received} rows but loaded {loaded} "
                        f"and quarantined {quarantined}; nothing committed")
                notes = [f"a restatement with the bytes of {restating[0]} (ledger {restating[1]}), an earlier"
                         " version of the same area-month: loaded, this version counts"] if restating else []
                message = "; ".join([*notes, *parsed.notes]) or None
                few = spooled.quarantined <= QUARANTINE_INSERT_MAX
                if not few:
                    self._insert_quarantine_rows(ledger_id, path.name, repeats or [])
                    self._copy_quarantine(spooled, ledger_id, path.name)
                with self.conn.pipeline():
                    # the repeats (cross-file duplicates) and the file's own few quarantined rows: one INSERT
                    if few:
                        self._insert_quarantine_rows(ledger_id, path.name,
                                                     [*(repeats or ()), *self._quarantine_records(spooled)])
                    self.conn.execute(
                        "update ops.load_ledger set rows_received = %s, rows_loaded = %s, rows_quarantined = %s,"
                        " finished_at = %s, message = %s where ledger_id = %s",
                        (parsed.rows_received, loaded, quarantined, datetime.now(UTC), message, ledger_id))
                    self.conn.execute("commit")
                self._quarantined += quarantined
                if self._contracts is not None and loaded:
                    self._remember_contracts(contracts, repeats, ledger_id)
            finally:
                spooled.remove()
        except (FileRejected, BadFileName, ParseFailed) as exc:
            self._rollback()
            if spooled is not None:
                spooled.remove()
            return self._reject(path, sha, str(exc), started_at)
        except Exception as exc:
            if spooled is not None:
                spooled.remove()
            if self.conn.broken or self.conn.closed:
                raise  # the server is gone: nothing can be recorded, the run must stop
            self._rollback()
            if _not_the_files(exc):
                # Rejecting the file would blame it, and its successors would be committed before it (out of
                # delivery order); every next file would likely meet the same lock or timeout. Stop here.
                raise WarehouseTrouble(
                    f"{self.feed}/{path.name}: the warehouse did not take the file ({_one_line(exc)}); not the "
                    "file's fault: nothing of it was committed, the files before it stay loaded and the run stops "
                    "here (the files after it wait, in delivery order). Find what holds the lock or takes the time "
                    "(pg_locks, pg_stat_activity; the lock_timeout / statement_timeout of the loader's user or "
                    "database), then run the ingest again: it loads this file and the rest") from exc
            if isinstance(exc, psycopg.Error):
                cause = f"the database refused it ({_one_line(exc)})"
            else:  # a parser bug must not hide the file, nor stop the others
                log.exception("loading %s/%s failed", self.feed, path.name)
                cause = f"could not be loaded ({_one_line(exc)})"
            return self._reject(path, sha, f"{path.name}: {cause}; nothing of it was loaded", started_at)
        return FileOutcome(path.name, "loaded", ledger_id, parsed.rows_received, loaded, quarantined,
                           message or "", sha256=sha)

    # -- techmarket's cross-file duplicates, decided here (ContractDuplicates) --------------------------
    def _contract_repeats(self, spooled: Spooled, contracts: Any, checks: Any, ledger_id: int,
                          file_name: str) -> list[str] | None:
        """The quarantine records (JSON, as a parse spools them) of the file's contract rows repeating their latest
        registration, removed from its spool; None when the SQL check must decide (another loader committed
        meanwhile, or an odd value)."""
        if contracts is None:
            return None
        other, looked = checks  # other: another loader committed meanwhile (see load_file)
        tracker = self._contracts
        if other:
            log.info("techmarket: another loader committed files meanwhile; checking duplicates in SQL")
            tracker.reset(ledger_id)
            return None
        tracker.mark = ledger_id
        # the latest row of each candidate contract in the other files, as the database has it
        latest = {regno: tuple(key) for regno, *key in (looked.fetchall() if looked is not None else [])}
        regnos, hashes, _ = contracts
        # only rows whose contract was looked up can repeat one (every row, when the table was not empty)
        hits = [i for i in np.flatnonzero(tracker.maybe(regnos)).tolist()
                if (k := latest.get(regnos[i])) is not None and k[3] == hashes[i]] if latest else []
        if not hits:
            return []
        table, columns, spool = spooled.tables[0]
        data = spool_bytes(spool)
        # where each line ends (a newline byte only ever ends a row in COPY text): the hits are cut out of the
        # spool by these offsets, not by splitting it into a bytes object per line and joining them again
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10).tolist()
        if len(ends) != len(regnos) or not data.endswith(b"\n"):
            return None
        out = []
        for i in hits:
            line = data[ends[i - 1] + 1 if i else 0:ends[i]]
            values = dict(zip(columns, line.decode("utf-8").split("\t"), strict=True))
            parts = []
            for column, raw in values.items():
                if column == "row_hash":
                    continue
                value = _copy_text_value(raw)
                if value is None:
                    parts.append(f"{json.dumps(column)}: null")
                elif column in ContractDuplicates.NUMERIC:
                    if not _JSON_NUMBER.fullmatch(value):
                        return None  # to_jsonb would print it otherwise: the SQL check decides
                    parts.append(f"{json.dumps(column)}: {value}")
                else:
                    parts.append(f"{json.dumps(column)}: {json.dumps(value, ensure_ascii=False)}")
            regno, row = regnos[i], values["source_row"]
            _, _, earlier_row, _, earlier_file = latest[regno]
            out.append(json.dumps([None, int(row), "duplicate_row",
                                   f"{file_name} row {row}: 合同登记号 {regno} repeats exactly its latest "
                                   f"registration, {earlier_file} row {earlier_row}", "{" + ", ".join(parts) + "}"],
                                  ensure_ascii=False))
        kept, start = [], 0
        for i in sorted(hits):  # the lines between the hits, each with its newline
            kept.append(data[start:ends[i - 1] + 1 if i else 0])
            start = ends[i] + 1
        kept.append(data[start:])
        _remove_spool(spool)
        spooled.tables[0] = (table, columns, b"".join(kept))
        return out

    def _remember_contracts(self, contracts: Any, repeats: list[str] | None, ledger_id: int) -> None:
        """After the file's commit: its contracts are in the table. A file the SQL check decided: every later
        file looks all its contracts up."""
        if contracts is None or repeats is None:
            self._contracts.reset(ledger_id)
            return
        self._contracts.remember(contracts[0])

    def _insert_quarantine_rows(self, ledger_id: int, file_name: str, records: list[str]) -> None:
        """A file's quarantine rows in one INSERT: ``records``, each a JSON array [sheet, source_row, rule_code,
        message, record] as the parse spools them (the record: its JSON text).

        One statement whatever their number, the records sent as one JSON array that the server unnests in
        order (an INSERT a row, in a pipeline, cost the loader and the server a statement each: some 7,300 at
        province; arrays of each column cost psycopg more to write than the rows' own JSON).
        """
        if not records:
            return
        self.conn.execute(
            "insert into ops.quarantine (ledger_id, feed, file_name, sheet, source_row, rule_code, message, record)"
            " select %s, %s, %s, e.v ->> 0, (e.v ->> 1)::integer, e.v ->> 2, e.v ->> 3, (e.v ->> 4)::jsonb"
            " from json_array_elements(%s::json) with ordinality as e (v, n) order by e.n",
            (ledger_id, self.feed, file_name, f"[{','.join(records)}]"))

    def _rollback(self) -> None:
        """End the file's transaction, if one is open, without committing anything of it."""
        if not (self.conn.broken or self.conn.closed) and \
                self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.execute("rollback")

    def _open_file(self, path: Path, sha: str, size: int, mtime: datetime, started_at: datetime, contracts: Any,
                   wait: bool, same_bytes_loaded: bool = False) -> tuple[Any, Any]:
        """A file's first round trip: BEGIN, the ledger's and the feed's locks, the ledger row unless another
        loader took the file meanwhile: its name, or its bytes (unless ``same_bytes_loaded``: a restatement's)
        (+ techmarket's contract look-ups). (cursor of the ledger row, the look-ups);
        ``self._ledger_lock_held`` says whether the ledger's lock was had.

        The ledger's lock (db.LEDGER_LOCK) is held shared from before the ledger id is drawn to COMMIT: no dbt
        command that writes runs while the file is being committed. Without ``wait`` it is only tried; when it
        was not had, the caller rolls the transaction back (its ledger row and id go with it), says it waits,
        and begins again with ``wait``: a file never waits for a dbt command without the log saying so first.
        """
        with self.conn.pipeline():
            self.conn.execute("begin")
            free = self.conn.execute(
                "select true from (select pg_advisory_xact_lock_shared(hashtext(%s))) as waited" if wait
                else "select pg_try_advisory_xact_lock_shared(hashtext(%s))", (db.LEDGER_LOCK,))
            # The feed's lock, in a statement of its own: the check below then reads the ledger as of after
            # the lock was granted (a statement's snapshot is taken when it starts, so a check in the
            # statement that waited would miss what the lock's holder committed meanwhile).
            self.conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"corridor.ingest.{self.feed}",))
            # Has another loader taken the file meanwhile? If not, its ledger row (techmarket: and has another
            # loader committed a file since the contracts were last looked at?).
            other = ContractDuplicates.OTHER if contracts else "null"
            cur = self.conn.execute(
                "insert into ops.load_ledger (feed, file_name, sha256, bytes, mtime, status, started_at,"
                " finished_at) select %s, %s, %s, %s, %s, 'loaded', %s, %s"
                " where not exists (select from ops.load_ledger where feed = %s and status = 'loaded'"
                f" and (file_name = %s or (sha256 = %s and not %s))) returning ledger_id, {other}",
                (self.feed, path.name, sha, size, mtime, started_at, started_at,
                 self.feed, path.name, sha, same_bytes_loaded, *((self._contracts.mark,) if contracts else ())))
            looked = self._contracts.statements(self.conn, contracts[0]) if contracts else None
        self._ledger_lock_held = bool(free.fetchone()[0])
        return cur, looked

    def _reject(self, path: Path, sha: str, reason: str, started_at: datetime | None = None) -> FileOutcome:
        started_at = started_at or datetime.now(UTC)
        try:
            size = os.lstat(path).st_size
        except OSError:
            size = 0
        reason = escape_unstorable(reason)
        with self.conn.transaction():
            self.conn.execute("select pg_advisory_xact_lock_shared(hashtext(%s))", (db.LEDGER_LOCK,))
            ledger_id = self.conn.execute(
                "insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at,"
                " finished_at, message) values (%s, %s, %s, %s, 'rejected', %s, %s, %s) returning ledger_id",
                (self.feed, escape_unstorable(path.name), sha, size, started_at, datetime.now(UTC), reason),
            ).fetchone()[0]
        log.warning("rejected %s/%s: %s", self.feed, path.name, reason)
        return FileOutcome(path.name, "rejected", ledger_id, message=reason, sha256=sha)

    def _record_duplicate(self, path: Path, sha: str, original: str, original_id: int) -> FileOutcome:
        now = datetime.now(UTC)
        message = f"identical bytes to {original} (ledger {original_id}), already loaded: nothing loaded"
        st = os.lstat(path)
        with self.conn.transaction():
            self.conn.execute("select pg_advisory_xact_lock_shared(hashtext(%s))", (db.LEDGER_LOCK,))
            ledger_id = self.conn.execute(
                "insert into ops.load_ledger (feed, file_name, sha256, bytes, mtime, status, started_at,"
                " finished_at, message) values (%s, %s, %s, %s, %s, 'loaded', %s, %s, %s) returning ledger_id",
                (self.feed, path.name, sha, st.st_size, _mtime(st), now, now, message),
            ).fetchone()[0]
        return FileOutcome(path.name, "duplicate", ledger_id, message=message, sha256=sha)

    # -- COPY ----------------------------------------------------------------
    def _copy_spool(self, table: str, columns: list[str], spool: Spool, ledger_id: int) -> None:
        """COPY a spooled table into ``table``, adding the file's ledger_id to every row.

        In COPY text format a newline byte only ever ends a row (one inside a
        value is written as ``\\n``), so the ledger_id is appended by a byte
        replace, chunk by chunk.
        """
        stmt = self._copy_statements.get((table, tuple(columns)))
        if stmt is None:
            schema, name = table.split(".")
            stmt = sql.SQL("copy {} ({}) from stdin").format(
                sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, [*columns, "ledger_id"])))
            stmt = self._copy_statements[(table, tuple(columns))] = stmt.as_string(self.conn)
        suffix = f"\t{ledger_id}\n".encode()
        with self.conn.cursor() as cur, cur.copy(stmt) as copy:
            if isinstance(spool, bytes):
                copy.write(spool.replace(b"\n", suffix))
            else:
                with open(spool, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        copy.write(chunk.replace(b"\n", suffix))
        self._touched.add(table)

    @staticmethod
    def _quarantine_records(spooled: Spooled) -> list[str]:
        """A file's quarantined records as spooled (JSON arrays: :meth:`_insert_quarantine_rows`)."""
        return list(spool_lines(spooled.quarantine_path)) if spooled.quarantine_path else []

    def _copy_quarantine(self, spooled: Spooled, ledger_id: int, file_name: str) -> int:
        if not spooled.quarantine_path:
            return 0
        stmt = ("copy ops.quarantine (ledger_id, feed, file_name, sheet, source_row, rule_code, message, record)"
                " from stdin")
        with self.conn.cursor() as cur, cur.copy(stmt) as copy:
            for line in spool_lines(spooled.quarantine_path):
                sheet, source_row, rule_code, message, record = json.loads(line)
                copy.write_row([ledger_id, self.feed, file_name, sheet, source_row, rule_code, message, record])
        return spooled.quarantined

    # -- feed-specific rule needing the warehouse ------------------------------
    def _quarantine_cross_file_duplicates(self, ledger_id: int, file_name: str) -> int:
        """A contract row identical to that contract's latest loaded row is a duplicate: move it to quarantine.

        Only the *latest* state counts: a row repeating an older state after a
        change (有效 → 撤销 → 有效) is news, not a duplicate. Done in SQL after
        the file's COPY, so the file never has to be held in memory.
        """
        if self.feed != "techmarket":
            return 0
        return self.conn.execute(
            """
            with new_contracts as (
                select distinct registration_no
                from raw.techmarket_contracts
                where ledger_id = %(ledger_id)s::bigint
            ),
            latest as (
                -- per contract of this file, its latest row in other files: an index look-up each
                -- (a join over all contracts cost a scan of the whole table per file)
                select n.registration_no, c.row_hash, c.file_name, c.source_row
                from new_contracts as n
                cross join lateral (
                    select c.row_hash, l.file_name, c.source_row
                    from raw.techmarket_contracts as c
                    inner join ops.load_ledger as l on l.ledger_id = c.ledger_id
                    where c.registration_no = n.registration_no
                        and c.ledger_id <> %(ledger_id)s::bigint
                    order by c.export_date desc, c.ledger_id desc, c.source_row desc
                    limit 1
                ) as c
            ),
            moved as (
                delete from raw.techmarket_contracts as n
                using latest
                where n.ledger_id = %(ledger_id)s::bigint
                    and n.registration_no = latest.registration_no
                    and n.row_hash = latest.row_hash
                returning n.*, latest.file_name as earlier_file, latest.source_row as earlier_row
            ),
            filed as (
                insert into ops.quarantine (ledger_id, feed, file_name, sheet, source_row, rule_code, message, record)
                select
                    %(ledger_id)s::bigint, 'techmarket', %(file_name)s::text, null, source_row, 'duplicate_row',
                    format('%%s row %%s: 合同登记号 %%s repeats exactly its latest registration, %%s row %%s',
                           %(file_name)s::text, source_row, registration_no, earlier_file, earlier_row),
                    to_jsonb(moved) - 'row_hash' - 'ledger_id' - 'earlier_file' - 'earlier_row'
                from moved
                returning 1
            )
            select count(*) from filed
            """, {"ledger_id": ledger_id, "file_name": file_name}).fetchone()[0]


def silence_warning(conn: psycopg.Connection, feed: str, as_of: datetime) -> str | None:
    """A warning when the feed has received nothing new for longer than its delivery rhythm allows."""
    last = conn.execute(
        "select max(finished_at) from ops.load_ledger where feed = %s and status = 'loaded' and rows_received > 0",
        (feed,)).fetchone()[0]
    limit = FEEDS[feed].max_silence
    if last is None:
        return f"{feed}: nothing has ever been loaded from this feed"
    if as_of - last > limit:
        days = (as_of - last).total_seconds() / 86400
        return (f"{feed}: nothing new received for {days:.0f} days (last file loaded {last:%Y-%m-%d %H:%M} UTC; "
                f"the feed delivers at least every {limit.days} days)")
    return None


# Every this many seconds a feed's ingest looks whether its session waits for a lock another session holds on a
# table (a raw table, the ledger: an ALTER TABLE, a VACUUM FULL, a LOCK), and logs who holds it.
LOCK_WATCH_SECONDS = 30.0


class _LockWatch:
    """While the loader's session (backend ``pid``) waits for a lock another session holds on a table or row, log
    every ``LOCK_WATCH_SECONDS`` how long, which backend holds it and how to end it. The advisory locks are left
    out: the waits for a dbt command are logged by the loader itself, those for another loader of the feed last
    one file. Its own connection is opened at the first look only (a short ingest opens none); any error of its
    own ends the watch, never the load."""

    QUERY = ("select extract(epoch from now() - w.state_change)::int, b.pid, b.application_name, b.usename,"
             " b.state, left(regexp_replace(b.query, '\\s+', ' ', 'g'), 120)"
             " from pg_stat_activity as w cross join lateral unnest(pg_blocking_pids(w.pid)) as h(pid)"
             " join pg_stat_activity as b on b.pid = h.pid"
             " where w.pid = %s and w.wait_event_type = 'Lock' and w.wait_event <> 'advisory' limit 1")

    def __init__(self, url: str, pid: int, feed: str) -> None:
        self.url, self.pid, self.feed = url, pid, feed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"ingest-{feed}-lock-watch", daemon=True)

    def __enter__(self) -> _LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        conn = None
        try:
            while not self._stop.wait(LOCK_WATCH_SECONDS):
                if conn is None:
                    conn = psycopg.connect(self.url, autocommit=True, application_name="corridor ingest lock watch")
                row = conn.execute(self.QUERY, (self.pid,)).fetchone()
                if row is not None:
                    waited, holder, application, user, state, query = row
                    log.warning("%s: the loader (backend %d) has waited %d s for a lock held by backend %d (%s, user "
                                "%s, %s: %s); it goes on when that session commits, rolls back or ends (select "
                                "pg_terminate_backend(%d) ends it)", self.feed, self.pid, waited, holder,
                                application or "no application name", user, state, query, holder)
        except Exception as exc:  # the watch is a courtesy: it never stops a load
            log.debug("%s: lock watch ended: %s", self.feed, exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()


def ingest_feed(url: str, feed: str, landing_dir: Path, *, pii_key: bytes,
                as_of: datetime | None = None) -> FeedSummary:
    """Load every new file of a feed's landing folder; return what happened.

    Raises LandingFolderMissing when the feed's folder is missing or not a
    folder. ``as_of`` (the run's data interval end; default now) judges
    whether the feed has gone silent for longer than its rhythm (a warning).
    """
    if feed not in FEEDS:
        raise KeyError(f"unknown feed {feed!r}; expected one of {', '.join(FEEDS)}")
    files = discover(landing_dir, feed)
    try:
        with db.connect(url, autocommit=True) as conn, _LockWatch(url, conn.info.backend_pid, feed):
            summary = Loader(conn, feed, pii_key=pii_key, landing_dir=Path(landing_dir)).load_all(files)
            warning = silence_warning(conn, feed, as_of or datetime.now(UTC))
    except BaseException:
        close_parse_pool()  # the run stops here: no parse workers left behind
        raise
    if warning:
        summary.warnings.append(warning)
        log.warning("%s", warning)
    log.info("ingested %s: %s", feed, json.dumps(summary.as_dict(), ensure_ascii=False))
    return summary


__all__ = ["FeedSummary", "FileOutcome", "LandingFolderMissing", "Loader", "WarehouseTrouble", "close_parse_pool",
           "discover", "ingest_feed", "silence_warning"]
