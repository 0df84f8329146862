"""What the four parsers share: file names and decoding, header matching, and
turning records into raw rows or quarantine entries.

A parser describes a table as a tuple of :class:`Field` (source header or
JSON key -> raw column, converter, required?) plus an optional row ``check``
for rules across fields; a :class:`RowLoader` applies them to each record,
and :func:`load_table` drives a header + rows table (xlsx sheet or CSV).
"""

from __future__ import annotations

import csv
import errno
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from corridor.config import Limits
from corridor.feeds import BadFileName, FileMeta, _fast, file_meta
from corridor.feeds.base import FileRejected, ParsedFile, Quarantined
from corridor.normalize import MISSING, NormalizeError, as_text, header, is_blank, show, text

log = logging.getLogger(__name__)

Converter = Callable[[Any], Any]
# A rule across fields, run on a converted row (before the constant columns
# are added) with its source row; raises NormalizeError, may add columns.
Check = Callable[[dict[str, Any], int], None]

TOTAL_LABELS = frozenset({"合计", "总计"})


@dataclass(frozen=True, slots=True)
class Field:
    source: str              # the header as the spec writes it, or the JSON key
    column: str              # the raw table's column
    convert: Converter       # never called with a blank value
    required: bool = False   # blank -> missing_value; otherwise blank -> None


def meta_for(feed: str, path: Path) -> FileMeta:
    """What the file's name says; a name breaking the spec's pattern rejects the file."""
    try:
        return file_meta(feed, path.name)
    except BadFileName as exc:
        raise FileRejected(str(exc)) from exc


# -- reading untrusted files -----------------------------------------------------------

HEAD_BYTES = 4096  # what a quarantined over-long record keeps of itself


def kind_of(mode: int) -> str:
    """What a directory entry is, as a rejection message says it."""
    for test, word in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def open_regular(path: Path, *, max_bytes: int | None = None,
                 limit_name: str = "CORRIDOR_MAX_FILE_BYTES") -> BinaryIO:
    """Open a landing file for reading, binary: a regular file only, never through a symbolic link.

    ``O_NOFOLLOW`` refuses a link in the last component even if one was put
    there after the loader looked; ``O_NONBLOCK`` keeps a FIFO from blocking
    the open; the open file is checked again with ``fstat``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRejected(f"{path.name} is a symbolic link: not followed, not read") from None
        raise FileRejected(f"{path.name} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRejected(f"{path.name} is {kind_of(st.st_mode)}, not a regular file: not read")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileRejected(f"{path.name} is {st.st_size:,} bytes, over the limit of {max_bytes:,} ({limit_name})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class RecordTooLong(Exception):
    """A record over the limit: what is kept of it (its first bytes) and its length."""

    def __init__(self, line: int, head: bytes, length: int) -> None:
        super().__init__(f"record of {length:,} bytes")
        self.line, self.head, self.length = line, head, length


class BoundedLines:
    """The lines of a text file, decoded strictly, read so that memory stays bounded.

    Iterating gives each physical line (split on ``\\n`` only, kept at its
    end). A record (one or more lines, ended by :meth:`record_done`) longer
    than ``limit`` bytes raises :class:`RecordTooLong` once the rest of its
    physical line has been skipped unread into memory; iteration may then go
    on with the next line. A byte that is not valid in ``encoding`` rejects
    the file, naming its offset and line. A leading UTF-8 BOM is dropped.
    """

    def __init__(self, fh: BinaryIO, file_name: str, encoding: str, limit: int) -> None:
        self.fh = fh
        self.file_name = file_name
        self.encoding = "utf-8" if encoding == "utf-8-sig" else encoding
        self.limit = limit
        self.offset = 0          # bytes read so far
        self.line_no = 0         # physical lines read so far
        self.record_bytes = 0
        self.head = bytearray()  # the first HEAD_BYTES of the current record

    def __iter__(self) -> BoundedLines:
        return self

    def record_done(self) -> None:
        self.record_bytes = 0
        self.head.clear()

    def head_text(self) -> str:
        return bytes(self.head).decode(self.encoding, errors="ignore")  # a character cut at the end

    def __next__(self) -> str:
        line = self.fh.readline(self.limit - self.record_bytes + 1)
        if not line:
            raise StopIteration
        start = self.offset
        self.offset += len(line)
        self.line_no += 1
        if len(self.head) < HEAD_BYTES:
            self.head += line[: HEAD_BYTES - len(self.head)]
        self.record_bytes += len(line)
        if self.record_bytes > self.limit:
            length = self.record_bytes
            while not line.endswith(b"\n"):  # skip the rest of the line, 1 MiB at a time
                line = self.fh.readline(1 << 20)
                if not line:
                    break
                self.offset += len(line)
                length += len(line)
            exc = RecordTooLong(self.line_no, bytes(self.head), length)
            self.record_done()
            raise exc
        try:
            decoded = line.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise FileRejected(
                f"{self.file_name} is not valid {self.encoding.upper()}: byte 0x{line[exc.start]:02x} at offset "
                f"{start + exc.start} (line {self.line_no}) {exc.reason}{_other_encoding(line, self.encoding)}"
            ) from None
        if start == 0:
            decoded = decoded.removeprefix("\ufeff")
        return decoded


def _other_encoding(line: bytes, encoding: str) -> str:
    """What a rejection adds when the line that failed reads in the feeds' other encoding: the file was exported
    in the wrong one (the bank feed is GB18030, the others UTF-8), and what to do."""
    other = "gb18030" if encoding == "utf-8" else "utf-8"
    try:
        line.decode(other)
    except UnicodeDecodeError:
        return ""
    name = "UTF-8" if other == "utf-8" else "GB18030 (GBK)"
    return (f"; the line reads as {name}: was the file exported in {name}? This feed must be {encoding.upper()}:"
            f" re-export it in {encoding.upper()} and deliver it again")


def dates_in_order(row: dict[str, Any], start: str, end: str, start_name: str, end_name: str) -> None:
    """A record's ``end`` date not before its ``start`` date (either blank: nothing to compare), else
    ``dates_out_of_order`` naming both columns; the vectorised path's rule is :func:`_fast.in_order`."""
    if row[start] is not None and row[end] is not None and row[end] < row[start]:
        raise NormalizeError("dates_out_of_order", f"{end_name} {row[end]} is before {start_name} {row[start]}")


def too_long_record(exc: RecordTooLong, head: str, limit: int, what: str) -> tuple[str, dict[str, Any]]:
    """The message and the kept record of an over-long record."""
    return (f"the {what} is {exc.length:,} bytes, over the limit of {limit:,} (CORRIDOR_MAX_RECORD_BYTES); "
            f"its first {len(exc.head):,} bytes are kept",
            {"record_head": head, "record_bytes": exc.length})


# Characters PostgreSQL text cannot hold: NUL, and UTF-16 surrogates without a partner
# (a JSON "\\ud800" escape decodes to one).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _strings(value: Any, key: str | None, out: list[tuple[str | None, str]]) -> None:
    if isinstance(value, str):
        out.append((key, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append((key, str(k)))  # keys too: they end up in the quarantined record
            _strings(v, str(k) if key is None else f"{key}.{k}", out)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _strings(v, key if key is not None else column_number(i), out)


def storable(raw: Any, limits: Limits, keys: Callable[[int], str] | None = None) -> tuple[str, str] | None:
    """The first reason the database could not store a record's text, as (rule code, message), or None.

    A NUL or an unpaired surrogate -> invalid_character; a field longer than
    ``limits.field_chars`` -> field_too_long; a float NaN/Infinity (an xlsx
    cell) -> invalid_number. ``keys`` names a position of a row of cells.
    Cheap for the common case (one join and one regex search per record);
    the names are worked out only when something is wrong.
    """
    if isinstance(raw, list | tuple):
        joined = "".join([c for c in raw if isinstance(c, str)])
        if (not _UNSTORABLE.search(joined) and len(joined) <= limits.field_chars
                and not any(isinstance(c, float) and not math.isfinite(c) for c in raw)):
            return None
        strings = [(keys(i) if keys else column_number(i), c) for i, c in enumerate(raw) if isinstance(c, str)]
        for i, c in enumerate(raw):
            if isinstance(c, float) and not math.isfinite(c):
                return "invalid_number", f"{keys(i) if keys else column_number(i)} is {c}, not a number"
    else:
        strings: list[tuple[str | None, str]] = []
        _strings(raw, None, strings)
        joined = "".join(s for _, s in strings)
    if _UNSTORABLE.search(joined):
        for k, s in strings:
            m = _UNSTORABLE.search(s)
            if m:
                what = "a NUL byte (U+0000)" if m.group() == "\x00" else f"an unpaired surrogate U+{ord(m.group()):04X}"
                return "invalid_character", (f"{k or 'a key'} holds {what} at character {m.start() + 1}, "
                                             "which cannot be stored as text")
    for k, s in strings:
        if len(s) > limits.field_chars:
            return "field_too_long", (f"{k or 'a key'} is {len(s):,} characters, over the limit of "
                                      f"{limits.field_chars:,} (CORRIDOR_MAX_FIELD_CHARS)")
    return None


def escape_unstorable(value: Any) -> Any:
    """A record with NUL and lone surrogates written as visible escapes (\\u0000), NaN as text: valid jsonb."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {escape_unstorable(str(k)): escape_unstorable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_unstorable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def convert(values: Mapping[str, Any], fields: Sequence[Field]) -> dict[str, Any]:
    """The raw row of a record; NormalizeError messages name the field."""
    row: dict[str, Any] = {}
    for f in fields:
        value = values.get(f.source)
        if is_blank(value):
            if f.required:
                raise NormalizeError("missing_value", f"{f.source} {MISSING}")
            row[f.column] = None
            continue
        try:
            row[f.column] = f.convert(value)
        except NormalizeError as exc:
            raise NormalizeError(exc.rule_code, f"{f.source} {exc.message}") from None
    return row


def render(value: Any) -> str | None:
    """A cell as a quarantined record keeps it: a string (dates ISO), or None when empty."""
    return None if value is None else as_text(value)


class RowLoader:
    """Counts, converts and files the records of one table of one file."""

    def __init__(self, parsed: ParsedFile, table: str, fields: Sequence[Field], *,
                 where: str, constants: Mapping[str, Any], record: Callable[[Any], dict[str, Any]],
                 check: Check | None = None, sheet: str | None = None, row_word: str = "row",
                 limits: Limits | None = None, keys: Callable[[int], str] | None = None,
                 mask: Callable[[str], str] | None = None) -> None:
        self.parsed = parsed
        self.mask = mask              # a message as kept (hr: ID shapes masked, as in its records)
        self.limits = limits or Limits()
        self.keys = keys              # names a cell's position in messages (the header)
        self.table = table
        self.fields = fields
        self.where = where            # "LW_202103_v1.xlsx 企业认定", "talent_202103.jsonl"
        self.row_word = row_word      # "row" (xlsx, CSV) or "line" (JSON Lines)
        self.constants = constants    # columns every row gets (area_code, report_month, file_version …)
        self.record = record          # raw record -> the JSON-serialisable record kept in quarantine
        self.check = check
        self.sheet = sheet

    def take(self, source_row: int, values: Mapping[str, Any], raw: Any) -> None:
        """Load the record, or quarantine it with the first rule it breaks."""
        self.parsed.rows_received += 1
        problem = storable(raw, self.limits, self.keys)
        if problem is not None:
            self._quarantine(source_row, *problem, raw)
            return
        try:
            row = convert(values, self.fields)
            if self.check is not None:
                self.check(row, source_row)
        except NormalizeError as exc:
            self._quarantine(source_row, exc.rule_code, exc.message, raw)
            return
        row.update(self.constants)
        row["source_row"] = source_row
        self.parsed.add(self.table, row)

    def refuse(self, source_row: int, rule_code: str, message: str, raw: Any) -> None:
        """Quarantine a received record without converting it."""
        self.parsed.rows_received += 1
        self._quarantine(source_row, rule_code, message, raw)

    def refuse_record(self, source_row: int, rule_code: str, message: str, record: dict[str, Any]) -> None:
        """Quarantine a received record kept as ``record`` (e.g. the head of an over-long one)."""
        self.parsed.rows_received += 1
        self.parsed.quarantine(source_row, rule_code, self._message(source_row, message), record, self.sheet)

    def note_skipped(self, count: int) -> None:
        if count:
            self.parsed.notes.append(f"{self.where}: skipped {count} empty {self.row_word}{'s' * (count != 1)}")

    def dup_entry(self, source_row: int, rule_code: str, message: str, raw: Any) -> Quarantined:
        """The quarantine entry of a repeated record found after the fact (the fast path's dedup)."""
        return Quarantined(source_row, rule_code, self._message(source_row, message), self.record(raw), self.sheet)

    def _message(self, source_row: int, message: str) -> str:
        message = f"{self.where} {self.row_word} {source_row}: {message}"
        return message if self.mask is None else self.mask(message)

    def _quarantine(self, source_row: int, rule_code: str, message: str, raw: Any) -> None:
        self.parsed.quarantine(source_row, rule_code, self._message(source_row, message), self.record(raw),
                               self.sheet)


def column_number(i: int) -> str:
    return f"column {i + 1}"


@dataclass(frozen=True)
class Layout:
    """Where a table's fields sit, found from its header row."""

    index: dict[str, int]               # field source -> position
    keys: tuple[str, ...]               # record key per position: the header as delivered
    name_of: Callable[[int], str]       # record key of a position without a header

    @classmethod
    def from_header(cls, cells: Sequence[Any], fields: Sequence[Field], where: str,
                    name_of: Callable[[int], str] = column_number) -> Layout:
        """Match the header cells to the fields (NFKC, whitespace ignored); extra columns are ignored.

        A missing or repeated column rejects the file: the table cannot be read reliably.
        """
        position: dict[str, int] = {}
        for i, cell in enumerate(cells):
            name = header(cell)
            if name and position.setdefault(name, i) != i:
                raise FileRejected(f"{where}: column {text(cell)} appears twice in the header")
        index, missing = {}, []
        for f in fields:
            i = position.get(header(f.source))
            if i is None:
                missing.append(f.source)
            else:
                index[f.source] = i
        if missing:
            raise FileRejected(f"{where}: the header has no column {', '.join(missing)}{_unmatched(cells, fields)}")
        return cls(index, tuple(text(c) or name_of(i) for i, c in enumerate(cells)), name_of)

    def key(self, i: int) -> str:
        """The name of a position: its header, or the position itself beyond the header."""
        return self.keys[i] if i < len(self.keys) and self.keys[i] else self.name_of(i)

    def values(self, cells: Sequence[Any]) -> dict[str, Any]:
        n = len(cells)
        return {source: cells[i] if i < n else None for source, i in self.index.items()}

    def record(self, cells: Sequence[Any]) -> dict[str, Any]:
        """The cells keyed by their headers (cells beyond the header only when not empty)."""
        width = len(self.keys)
        return {self.keys[i] if i < width else self.name_of(i): render(c)
                for i, c in enumerate(cells) if i < width or not is_blank(c)}


def _unmatched(cells: Sequence[Any], fields: Sequence[Field], most: int = 10, width: int = 60) -> str:
    """What a header holds besides the spec's columns, as a rejection shows it (a typo, another delimiter)."""
    known = {header(f.source) for f in fields}
    others = [show(shown if len(shown := text(c)) <= width else shown[:width] + "…")
              for c in cells if header(c) and header(c) not in known]
    if not others:
        return " (the header row is empty)" if all(is_blank(c) for c in cells) else ""
    more = f" and {len(others) - most} more" if len(others) > most else ""
    return f" (columns in the header that match none: {', '.join(others[:most])}{more})"


def is_total_row(cells: Iterable[Any]) -> bool:
    return any(isinstance(c, str) and "计" in c and header(c) in TOTAL_LABELS for c in cells)


def load_table(loader: RowLoader, layout: Layout, rows: Iterable[tuple[int, Sequence[Any]]], *,
               exact_width: bool = False) -> None:
    """Load the data rows of a table: empty rows skipped (and noted), 合计 rows quarantined.

    ``exact_width`` (CSV): a record with more or fewer fields than the header
    is quarantined, as its values cannot be trusted to sit in their columns.
    """
    skipped = 0
    width = len(layout.keys)
    for source_row, cells in rows:
        if isinstance(cells, Refused):
            loader.refuse_record(source_row, cells.rule_code, cells.message, cells.record)
        elif all(is_blank(c) for c in cells):
            skipped += 1
        elif is_total_row(cells):
            loader.refuse(source_row, "total_row", "a 合计 (total) row is a sum, not a record", cells)
        elif exact_width and len(cells) != width:
            loader.refuse(source_row, "invalid_value",
                          f"has {len(cells)} fields where the header has {width} (a stray comma or quote?)",
                          cells)
        else:
            loader.take(source_row, layout.values(cells), cells)
    loader.note_skipped(skipped)


@dataclass(frozen=True)
class Refused:
    """A record a reader could not hand over as cells: quarantined as ``record``."""

    rule_code: str
    message: str
    record: dict[str, Any]


@dataclass
class CsvJob:
    """One CSV file to load into ``parsed``: what :func:`parse_job` and :func:`run_csv_jobs` take, kept so that files can be batched."""

    parsed: ParsedFile
    path: Path
    encoding: str
    table: str
    fields: Sequence[Field]
    constants: Mapping[str, Any]
    check: Check | None = None
    limits: Limits | None = None
    fast: _fast.Spec | None = None
    fast_check: Callable[[dict], Check | None] | None = None
    params: Mapping[str, Any] | None = None   # the file's values the fast spec refers to (hi, month)
    error: BaseException | None = None        # what loading this file raised


# One file alone takes the fast path only when it is this large: polars costs some 0.1 s per call,
# which pays from a few thousand rows; many files take it together (run_csv_jobs, the loader's batches).
SINGLE_FAST_BYTES = 4 * 1024 * 1024


def parse_job(job: CsvJob) -> ParsedFile:
    """One file alone (the fast path only from SINGLE_FAST_BYTES on); its failure raised."""
    run_csv_jobs([job], min_fast_bytes=SINGLE_FAST_BYTES)
    if job.error is not None:
        raise job.error
    return job.parsed


def run_csv_jobs(jobs: Sequence[CsvJob], *, min_fast_bytes: int = 0) -> None:
    """Load CSV files, the ones of the safe shape vectorised together; each job's failure lands on its ``error``.

    A file not of the safe shape (or under ``min_fast_bytes``, or without a
    fast spec, or without a sink taking COPY text) streams per row as
    always. Should the vectorised batch itself fail (a bug), its files are
    loaded per row instead: nothing of them was filed yet.
    """
    prepared: list[_Prepared] = []
    for job in jobs:
        job.limits = job.limits or Limits()
        try:
            prep = (_prepare_fast(job, min_fast_bytes)
                    if job.fast is not None and _fast.usable(job.parsed) else None)
            if prep is None:
                _stream_csv(job)
            else:
                prepared.append(prep)
        except Exception as exc:
            job.error = exc
    groups: dict[tuple, list[_Prepared]] = {}
    for prep in prepared:  # files whose fields sit alike are converted together
        groups.setdefault((id(prep.job.fast), tuple(prep.file.index.items())), []).append(prep)
    for group in groups.values():
        first = group[0].job
        try:
            batch = _fast.fast_csv_batch([p.file for p in group], first.fields, first.fast,
                                         first.parsed.sink.columns_of(first.table), first.limits)
        except Exception:
            log.exception("the vectorised parse of %d file(s) failed: parsing them per row", len(group))
            batch = None
        merging = []
        for i, prep in enumerate(group):
            try:
                if batch is None or not batch.ok[i]:
                    _stream_csv(prep.job)
                else:
                    merging.append(_slow_part(prep, batch, i))
            except Exception as exc:
                prep.job.error = exc
        if merging:
            for i, exc in _fast.merge_batch(batch.fast, merging, first.table, first.fast).items():
                group[i].job.error = exc


def _stream_csv(job: CsvJob) -> None:
    """A comma-separated, quoted CSV file with one header line (= row 1), streamed per row.

    Memory stays bounded whatever the file holds: records are read one at a
    time under the record, field and field-count limits; a record breaking
    one is quarantined (an over-long one with its first bytes and length).
    """
    parsed, path, limits = job.parsed, job.path, job.limits
    with open_regular(path, max_bytes=limits.file_bytes) as fh:
        lines = BoundedLines(fh, path.name, job.encoding, limits.record_bytes)
        rows = _csv_rows(lines, path.name, limits)
        try:
            _, header_cells = next(rows)
        except StopIteration:
            raise FileRejected(f"{path.name} is empty: no header line") from None
        if isinstance(header_cells, Refused):
            raise FileRejected(f"{path.name} row 1: the header line cannot be read ({header_cells.message})")
        layout = Layout.from_header(header_cells, job.fields, f"{path.name} row 1")
        loader = RowLoader(parsed, job.table, job.fields, where=path.name, constants=job.constants,
                           record=layout.record, check=job.check, limits=limits, keys=layout.key)
        load_table(loader, layout, rows, exact_width=True)


@dataclass
class _Prepared:
    job: CsvJob
    file: _fast.CsvFile
    layout: Layout


def _prepare_fast(job: CsvJob, min_bytes: int) -> _Prepared | None:
    """Read a file of the safe shape whole, its header matched; None (nothing read into it) otherwise."""
    path, limits = job.path, job.limits
    with open_regular(path, max_bytes=limits.file_bytes) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > _fast.MAX_BYTES or size < min_bytes:
            return None
        data = fh.read()
    body = None
    if job.encoding in ("utf-8", "utf-8-sig"):  # the data lines stay bytes, for polars
        split = _fast.csv_body(data, limits)
        if split is None:
            return None
        (header, body), lines = split, []
    else:
        lines = _fast.csv_lines(data, job.encoding, limits)
        if lines is None:
            return None
        header, lines = lines[0], lines[1:]
    if not _fast.safe_line(header):
        return None
    header_cells = next(csv.reader([header]))
    if len(header_cells) > limits.fields:
        return None
    layout = Layout.from_header(header_cells, job.fields, f"{path.name} row 1")
    sink = job.parsed.sink
    constants = {k: sink.format_value(v) for k, v in job.constants.items()}
    return _Prepared(job, _fast.CsvFile(lines, len(layout.keys), layout.index, dict(job.params or {}), constants,
                                        body), layout)


def _slow_part(prep: _Prepared, batch: _fast.CsvBatch, index: int) -> _fast.MergeJob:
    """The file's rows the vectorised pass did not take, through the per-row path: what ``_fast.merge_batch``
    files with its fast rows."""
    job, layout, rows = prep.job, prep.layout, batch.slow.get(index, [])
    sink = job.parsed.sink
    slow = ParsedFile(job.parsed.feed, job.parsed.file_name, job.parsed.file_version)
    loader = RowLoader(slow, job.table, job.fields, where=job.path.name, constants=job.constants,
                       record=layout.record, check=job.fast_check(_fast.NoDedup()) if job.fast_check else None,
                       limits=job.limits, keys=layout.key)
    load_table(loader, layout, rows, exact_width=True)

    def record_of(source_row: int) -> list[str]:  # a safe line: csv reads it as the fast path split it
        return next(csv.reader([batch.line(index, source_row)]))

    return _fast.MergeJob(index, job.parsed, loader, slow, record_of, lambda r: sink.format_row(job.table, r))


def _csv_rows(lines: BoundedLines, file_name: str, limits: Limits) -> Iterator[tuple[int, list[str] | Refused]]:
    """(line number of the record's first line, its fields or why it was refused), one record at a time.

    A record quoted over several lines is named by the line where it starts (what a person opening the file
    at that line sees), as a one-line record is; the next record starts after its last line.
    """
    csv.field_size_limit(limits.field_chars)
    reader = csv.reader(lines)
    while True:
        line = lines.line_no + 1  # the record's first line
        try:
            cells = next(reader)
        except StopIteration:
            return
        except RecordTooLong as exc:
            message, record = too_long_record(exc, exc.head.decode(lines.encoding, errors="ignore"),
                                              limits.record_bytes, "record")
            yield line, Refused("record_too_long", message, record)
            continue
        except csv.Error as exc:
            head = lines.head_text()
            lines.record_done()
            rule = "field_too_long" if "field limit" in str(exc) else "invalid_csv"
            detail = (f"a field is over the limit of {limits.field_chars:,} characters (CORRIDOR_MAX_FIELD_CHARS)"
                      if rule == "field_too_long" else f"unreadable CSV ({exc})")
            yield line, Refused(rule, f"{detail}; its first {len(head):,} characters are kept",
                                {"record_head": head})
            continue
        if len(cells) > limits.fields:
            head = lines.head_text()
            lines.record_done()
            yield line, Refused("too_many_fields",
                                f"has {len(cells):,} fields, over the limit of {limits.fields:,} (CORRIDOR_MAX_FIELDS);"
                                f" its first {len(head):,} characters are kept", {"record_head": head})
            continue
        lines.record_done()
        yield line, cells
