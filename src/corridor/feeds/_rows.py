"""What the four parsers share: file names and decoding, header matching, and
turning records into raw rows or quarantine entries.

A parser describes a table as a tuple of :class:`Field` (source header or
JSON key -> raw column, converter, required?) plus an optional row ``check``
for rules across fields; a :class:`RowLoader` applies them to each record,
and :func:`load_table` drives a header + rows table (xlsx sheet or CSV).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corridor.feeds import BadFileName, FileMeta, file_meta
from corridor.feeds.base import FileRejected, ParsedFile
from corridor.normalize import MISSING, NormalizeError, as_text, header, is_blank, text

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


def read_text(path: Path, encoding: str) -> str:
    """The whole file decoded strictly; a bad byte rejects the file, naming where it is."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        offset = len(data) - len(exc.object) + exc.start  # utf-8-sig reports offsets after the BOM
        line = data.count(b"\n", 0, offset) + 1
        raise FileRejected(
            f"{path.name} is not valid {encoding.removesuffix('-sig').upper()}: "
            f"byte 0x{data[offset]:02x} at offset {offset} (line {line}) {exc.reason}") from None


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
                 check: Check | None = None, sheet: str | None = None, row_word: str = "row") -> None:
        self.parsed = parsed
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

    def note_skipped(self, count: int) -> None:
        if count:
            self.parsed.notes.append(f"{self.where}: skipped {count} empty row{'s' * (count != 1)}")

    def _quarantine(self, source_row: int, rule_code: str, message: str, raw: Any) -> None:
        self.parsed.quarantine(source_row, rule_code, f"{self.where} {self.row_word} {source_row}: {message}",
                               self.record(raw), self.sheet)


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
            raise FileRejected(f"{where}: the header has no column {', '.join(missing)}")
        return cls(index, tuple(text(c) or name_of(i) for i, c in enumerate(cells)), name_of)

    def values(self, cells: Sequence[Any]) -> dict[str, Any]:
        n = len(cells)
        return {source: cells[i] if i < n else None for source, i in self.index.items()}

    def record(self, cells: Sequence[Any]) -> dict[str, Any]:
        """The cells keyed by their headers (cells beyond the header only when not empty)."""
        width = len(self.keys)
        return {self.keys[i] if i < width else self.name_of(i): render(c)
                for i, c in enumerate(cells) if i < width or not is_blank(c)}


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
        if all(is_blank(c) for c in cells):
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


def load_csv(parsed: ParsedFile, path: Path, *, encoding: str, table: str, fields: Sequence[Field],
             constants: Mapping[str, Any], check: Check | None = None) -> None:
    """Load a comma-separated, quoted CSV file with one header line (= row 1)."""
    reader = csv.reader(io.StringIO(read_text(path, encoding), newline=""))
    rows = _csv_rows(reader, path.name)
    try:
        _, header_cells = next(rows)
    except StopIteration:
        raise FileRejected(f"{path.name} is empty: no header line") from None
    layout = Layout.from_header(header_cells, fields, path.name)
    loader = RowLoader(parsed, table, fields, where=path.name, constants=constants,
                       record=layout.record, check=check)
    load_table(loader, layout, rows, exact_width=True)


def _csv_rows(reader: Any, file_name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number of the record, fields); a malformed file (NUL byte …) is rejected."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileRejected(f"{file_name} row {reader.line_num}: unreadable CSV ({exc})") from None
        yield reader.line_num, cells
