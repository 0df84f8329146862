"""The vectorised fast path of the parsers: the common clean shape, many rows at once (polars).

The per-row path (``_rows.RowLoader`` and the feeds' converters) stays the
rule. This module only *accepts* a value when it is certain the per-row rule
gives the same result (a plain decimal, an ISO date within range, an ASCII
code, a USCC passing GB 32100 computed with expressions …); every row with a
value it does not accept goes through the per-row code unchanged, so rule
codes, messages, masking, ``row_hash`` values and duplicate detection stay
exactly what they were. ``tests/test_fast_path.py`` holds the two paths to
the same COPY bytes, quarantine entries and counts for every demo and
fixture file.

What a file must be to take the fast path at all (else it streams, per row,
with the size, record-length, NUL and encoding guards of ``_rows``): under
:data:`MAX_BYTES`, strictly decodable, without NUL, every line well under
the record and field limits, and (CSV) every line either all fields quoted
without a quote inside, or no quote at all: a shape whose split on ``","``
or ``,`` is exactly what Python's csv module reads; (JSON Lines, hr) a line
is a candidate only when it is its file's layout exactly (``hr._layout``: a
flat object of known keys in order, plain strings without escapes, null,
true / false), the shape whose regular expression reads what json.loads
reads. Clean rows are written straight as COPY text (psycopg's escaping) to
the loader's spool.

``CORRIDOR_INGEST_FAST=0`` (or false/no/off, config.env_flag) turns the fast path off (everything per row).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from corridor.config import env_flag
from corridor.feeds.base import ParsedFile
from corridor.normalize import _AREAS, _STRIP, EARLIEST, USCC_ALPHABET, _squash


class _OnFirstUse:
    """A module imported when first used: a run with nothing to parse (a no-op ingest) never pays for polars."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:  # importlib.import_module on every use cost ~30 µs: a second per 20,000 uses
            self._module = importlib.import_module(self._name)
        value = getattr(self._module, attr)
        # kept on the proxy: the next use is a plain attribute look-up, not this method (the loader's numpy
        # calls: 27,000 at province scale)
        setattr(self, attr, value)
        return value


log = logging.getLogger(__name__)

pl: Any = _OnFirstUse("polars")
np: Any = _OnFirstUse("numpy")

# polars' engine for the vectorised pass: in memory (polars 2's default, streaming, cost ~10 % more CPU on
# techmarket's province batches, one thread: 5.1-5.9 s against 5.8-7.7 s, interleaved runs)
ENGINE = "in-memory"

MAX_BYTES = 8 * 1024 * 1024  # a larger file streams per row (memory stays bounded; polars needs a few times it)
ENABLED = env_flag("CORRIDOR_INGEST_FAST", True)

# printable ASCII without space and CJK unified ideographs (U+4E00..U+9FFF, no decomposition): NFKC-stable,
# no whitespace, so code() keeps them as they are (e.g. 质押登记号 "(温)股质登记设字[2019]第2425号")
_ASCII_CODE = "^[!-~\u4e00-\u9fff]+$"
# str(Decimal(s without commas)) == s without commas; at most 15 characters is checked apart
_PLAIN_DECIMAL = r"^(0|[1-9][0-9]*|[1-9][0-9]{0,2}(,[0-9]{3})+)(\.[0-9]{1,6})?$"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# What normalize._read_date reads without NFKC, whitespace or a time: 2021-3-5, 2021/3/5, 2021.3.5 (one separator
# throughout), 2021年3月5日 (日 optional), 20210305; its month and its day (every such value starts with its year)
_LENIENT_DATE = (r"^[0-9]{4}(?:-[0-9]{1,2}-[0-9]{1,2}|/[0-9]{1,2}/[0-9]{1,2}|\.[0-9]{1,2}\.[0-9]{1,2}"
                 r"|年[0-9]{1,2}月[0-9]{1,2}日?|[0-9]{4})$")
_LENIENT_MONTH = r"^[0-9]{4}[-/.年]?([0-9]{1,2})"
_LENIENT_DAY = r"([0-9]{1,2})日?$"
# Full-width ASCII (U+FF01..U+FF5E) is what NFKC turns into ASCII, one character for one.
_FULL_WIDTH_ASCII = {chr(0xFF01 + i): chr(0x21 + i) for i in range(94)}


def _ascii_of(e: pl.Expr) -> pl.Expr:
    """The value with full-width ASCII made ASCII and surrounding whitespace stripped: what NFKC and _squash
    make of it wherever the result is ASCII (or CJK ideographs) without inner whitespace."""
    return e.str.replace_many(_FULL_WIDTH_ASCII).str.strip_chars(_STRIP)
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def usable(parsed: ParsedFile) -> bool:
    """The fast path writes COPY text: only into a sink that takes it (the loader's spool)."""
    return ENABLED and parsed.sink is not None and hasattr(parsed.sink, "add_block")


# -- vectorised converters ------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """How one field is converted on the fast path."""

    name: str                      # text | code | choice | area | uscc | id | date | number | month | ip | bool
    accepted: tuple[str, ...] = ()
    lo: date | None = EARLIEST
    hi: date | str | None = None   # "file": the file's own bound (its _p_hi parameter)
    check: Callable[[pl.Expr], pl.Expr] | None = None  # an extra range test of a number (as Float64)
    pattern: str | None = None     # code: the shape it must have (default: printable ASCII, no space)


@dataclass
class Col:
    copy: pl.Expr   # the value as COPY text would hold it before escaping (null: NULL)
    canon: pl.Expr  # as row_hash canonicalises it (null: "\x00")
    ok: pl.Expr     # the per-row rule certainly gives ``copy``
    num: pl.Expr | None = None


def _blank(e: pl.Expr) -> pl.Expr:
    return e.is_null() | (e.str.strip_chars(_STRIP) == "")


def _check_digit_ok(alphabet: str, weights: Sequence[int], digits: str, shape: str) -> Callable[[Any], Any]:
    """A function of a string Series: its values of ``shape`` whose last character is the check character.

    The check sum runs in numpy over the ASCII bytes of the well-shaped values
    (one array of n x 18 bytes): a few milliseconds for 100,000 codes, where
    17 polars passes per column cost a hundred times that. Per row it is
    exactly GB 32100 / GB 11643 as normalize.uscc / id_number compute it.
    """
    value = np.zeros(256, dtype=np.int64)
    for i, ch in enumerate(alphabet):
        value[ord(ch)] = i
    check = np.frombuffer(digits.encode("ascii"), dtype=np.uint8)
    w = np.asarray(weights, dtype=np.int64)
    modulus = len(digits)

    def ok(s: Any) -> Any:
        good = s.str.contains(shape).fill_null(False)
        out = np.zeros(len(s), dtype=bool)
        if good.any():
            # joined by polars: no Python string per value (the shape: 18 ASCII characters each)
            codes = np.frombuffer(s.filter(good).str.join("").cast(pl.Binary).item(), dtype=np.uint8).reshape(-1, 18)
            total = value[codes[:, :17]] @ w
            out[good.to_numpy()] = check[total % modulus] == codes[:, 17]
        return pl.Series(s.name, out, dtype=pl.Boolean)

    return ok


def _uscc_ok(e: pl.Expr) -> pl.Expr:
    # expected character: USCC_ALPHABET[(31 - total % 31) % 31], i.e. indexed by total % 31 in this order
    digits = "".join(USCC_ALPHABET[(31 - r) % 31] for r in range(31))
    return e.map_batches(_check_digit_ok(USCC_ALPHABET, _USCC_WEIGHTS, digits, f"^[{USCC_ALPHABET}]{{18}}$"),
                         return_dtype=pl.Boolean)


def _id_ok(e: pl.Expr) -> pl.Expr:
    return e.map_batches(_check_digit_ok("0123456789", _ID_WEIGHTS, "10X98765432", r"^[0-9]{17}[0-9X]$"),
                         return_dtype=pl.Boolean)


def _self_stable(values: Sequence[str]) -> None:
    for v in values:
        if _squash(v) != v:  # the fast path compares raw values with these: they must be their own normal form
            raise ValueError(f"{v!r} is not in normal form")


def convert(e: pl.Expr, kind: Kind, required: bool, lenient: bool = False) -> Col:
    """The fast conversion of a string column ``e`` by ``kind``.

    ``lenient`` (the second pass, over the rows the first refused: see :func:`_convert`) also takes what
    NFKC and stripping make plain as the per-row rule does: full-width ASCII, surrounding whitespace,
    lower-case letters of a USCC or ID, a date of another form than ISO (20210305, 2021/3/5, 2021.3.5,
    2021年3月5日). Each costs a few passes over a column,
    so the first pass, over every row, does without them.
    """
    if kind.name == "text":  # blank (null, or nothing once stripped) -> NULL: one when/then, not three
        v = e.str.strip_chars(_STRIP)
        if required:
            return Col(v, v, (v != "").fill_null(False))
        copy = pl.when(v != "").then(v)
        return Col(copy, copy.fill_null("\x00"), pl.lit(True))
    blank = _blank(e)
    null = pl.lit(None, pl.String)
    num = None
    if lenient and kind.name in ("code", "uscc", "id", "number"):
        e = _ascii_of(e)  # _squash: full-width ASCII -> ASCII, no surrounding whitespace (inner: refused below)
    if kind.name == "code":
        copy, ok = e, e.str.contains(_ASCII_CODE)
        if kind.pattern:
            ok = ok & e.str.contains(kind.pattern)
    elif kind.name == "choice":
        _self_stable(kind.accepted)
        copy, ok = e, e.is_in(list(kind.accepted))
    elif kind.name == "area":
        keys = [k for k in _AREAS if _squash(k).upper() == k]
        copy, ok = e.replace_strict({k: _AREAS[k] for k in keys}, default=None), e.is_in(keys)
    elif kind.name in ("uscc", "id"):
        if lenient:  # upper(): only ASCII letters here (a dotless i, a long s … go per row)
            e = pl.when(e.str.contains("^[0-9A-Za-z]+$")).then(e.str.to_uppercase()).otherwise(e)
        copy, ok = e, (_uscc_ok(e) if kind.name == "uscc" else _id_ok(e))
    elif kind.name == "date":
        if lenient:
            # _read_date's patterns without a time or inner whitespace (2021-3-5, 2021/3/5, 2021.3.5, 2021年3月5日,
            # 20210305), between whitespace, a day of the calendar: as its ISO day
            # (one regular expression with groups per form cost ten times these four: a struct field is computed anew)
            v = e.str.strip_chars(_STRIP)
            year = v.str.slice(0, 4)
            iso = pl.concat_str(year, pl.lit("-"), v.str.extract(_LENIENT_MONTH, 1).str.zfill(2), pl.lit("-"),
                                v.str.extract(_LENIENT_DAY, 1).str.zfill(2))
            d = pl.when(v.str.contains(_LENIENT_DATE)).then(iso).str.to_date("%Y-%m-%d", strict=False)
            e = d.dt.strftime("%Y-%m-%d")
            ok = d.is_not_null() & (e == iso) & (year != "0000")  # date() takes years 1..9999
        else:
            d = e.str.to_date("%Y-%m-%d", strict=False)
            ok = e.str.contains(_ISO_DATE) & d.is_not_null() & (d.dt.strftime("%Y-%m-%d") == e)
        if kind.lo is not None:
            ok = ok & (d >= kind.lo)
        if kind.hi is not None:
            ok = ok & (d <= (pl.col("_p_hi") if kind.hi == "file" else kind.hi))
        copy = e
    elif kind.name == "number":
        ok = e.str.contains(_PLAIN_DECIMAL)
        e = e.str.replace_all(",", "", literal=True)
        num = e.cast(pl.Float64, strict=False)
        ok = ok & (e.str.len_bytes() <= 15)  # <= 14 significant digits: Float64 compares them exactly
        if kind.check is not None:
            ok = ok & kind.check(num)
        copy = e
        canon = pl.when(e.str.contains(".", literal=True)).then(
            e.str.strip_chars_end("0").str.strip_chars_end(".")).otherwise(e)
    elif kind.name == "month":
        copy, ok = pl.col("_p_month_iso"), e == pl.col("_p_month")  # the file's month only
    elif kind.name == "bool":  # already "t" / "f" (a JSON true / false); anything else goes per row
        copy, ok = e, e.is_in(["t", "f"])
    elif kind.name == "ip":  # 知识产权编号: ASCII numbers with a digit each, split on ; or ；
        part = r"[A-Za-z.]*[0-9][A-Za-z0-9.]*"
        copy = pl.concat_str(pl.lit("{"), e.str.replace_all("[;；]", ","), pl.lit("}"))
        ok = e.str.contains(f"^{part}([;；]{part})*$")
    else:
        raise ValueError(f"unknown fast kind {kind.name}")
    if kind.name != "number":
        canon = copy
    if kind.name == "ip":  # blank: the feed's check makes it an empty array
        return Col(pl.when(blank).then(pl.lit("{}")).otherwise(copy), canon, pl.when(blank).then(True).otherwise(ok))
    if required:
        return Col(copy, canon, ~blank & ok.fill_null(False), num)
    return Col(pl.when(blank).then(null).otherwise(copy), pl.when(blank).then(pl.lit("\x00")).otherwise(canon),
               (blank | ok).fill_null(False), num)


# the characters copy_escape writes as escapes
_ESCAPED = "[\\\\\b\t\n\v\f\r]"
# a CSV line of which no value converted on the fast path holds one of them: none of them, nor the full-width
# backslash (U+FF3C), which the lenient conversions make ASCII (_ascii_of); no other conversion makes one
_ESCAPED_IN_LINE = "[\\\\\b\t\n\v\f\r\uff3c]"


def in_order(cols: dict[str, Col], start: str, end: str) -> pl.Expr:
    """``_rows.dates_in_order`` as an expression: true where the rule certainly passes (ISO dates compare as
    text; either blank passes)."""
    return cols[start].copy.is_null() | cols[end].copy.is_null() | (cols[end].copy >= cols[start].copy)


def copy_escape(e: pl.Expr) -> pl.Expr:
    """A value as COPY text writes it (psycopg's escapes), NULL as \\N."""
    for char, esc in (("\\", "\\\\"), ("\b", "\\b"), ("\t", "\\t"), ("\n", "\\n"), ("\v", "\\v"),
                      ("\f", "\\f"), ("\r", "\\r")):
        e = e.str.replace_all(char, esc, literal=True)
    return e.fill_null("\\N")


# -- a table's fast rows and its merge with the per-row path ----------------------------------

@dataclass
class Spec:
    """What the fast path needs to know of a table beyond its fields."""

    kinds: Mapping[str, Kind]                     # field source -> kind
    row_ok: Callable[[dict[str, Col]], pl.Expr] | None = None  # rules across fields (column -> Col)
    row_hash: bool = False                        # add row_hash (techmarket)
    # the COPY text of this column, row_hash and source_row of the filed rows, handed to the sink as
    # ``contract_keys`` (techmarket's registration_no: the loader's cross-file rule reads them)
    keys_column: str | None = None
    dedup: str | None = None                      # the column whose repeats the check quarantines
    dedup_rule: str = "duplicate_row"
    dedup_message: Callable[[Any, int], str] | None = None
    # a per-row value computed in Python from the accepted rows' column (hr: person_key from id_number)
    python_columns: Mapping[str, Callable[[list[str]], list[str]]] = field(default_factory=dict)
    # a second, lenient pass over the rows the first refused (:func:`_convert`): worth its cost where many
    # rows carry full-width, spaced or compact values (techmarket; on bank and hr, with the dates of every form
    # and the first pass's plan not split, no cheaper: bank 0.52-0.53 s either way, hr 0.54 s without, 0.59 s with)
    lenient: bool = False


class NoDedup(dict):
    """A ``seen`` dict for the per-row check that never finds a repeat (the fast path dedups after)."""

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return default


@dataclass
class Result:
    """One file's outcome of the vectorised pass: its fast rows, and the rows for the per-row path."""

    fast: pl.DataFrame            # source_row, line (COPY text), and _key (the dedup key) if any
    slow: list[tuple[int, list[str]]]  # (source_row, cells) of the rows the fast path did not take


@dataclass
class CsvFile:
    """A CSV file ready for the vectorised pass: its data lines (from line 2), where its fields sit, its values."""

    lines: list[str]
    width: int                     # fields in the header
    index: dict[str, int]          # field source -> position
    params: dict[str, Any]         # the spec's per-file values (hi, month …)
    constants: dict[str, str]      # constant columns, as COPY text
    # a UTF-8 file's data lines not made Python strings (:func:`csv_body`; ``lines`` then empty): polars splits,
    # decodes and checks them (a file whose bytes are not UTF-8, with a line over the limits or a CR but a CR LF's
    # streams per row)
    body: bytes | None = None

    def __post_init__(self) -> None:
        if self.body is not None and self.lines:
            raise ValueError("a CsvFile holds its lines or its body, not both")


# A field: quoted without a quote inside, or unquoted without a quote or comma (QUOTE_MINIMAL's output for
# clean values). A line of such fields is read by Python's csv module exactly as split here.
_FIELD = r'(?:"[^"]*"|[^",]*)'
_SAFE_LINE = f"^{_FIELD}(?:,{_FIELD})*$"


_QUOTED_LINE = r'^"[^"]*"(?:,"[^"]*")*$'
# a line with a character other than quotes, commas and what strip() takes: one not blank once split
_NOT_BLANK_LINE = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(set(_STRIP + '",'))) + "]"


def _cells_of(line: pl.Expr, quoted: pl.Expr | None = None, bare: pl.Expr | None = None,
              mixed_lines: bool = True, quoted_cells: pl.Expr | None = None) -> tuple[pl.Expr, pl.Expr]:
    """(is the line of the safe shape, its cells).

    The two common shapes are split on a literal: every field quoted (no quote
    inside, so ``","`` only ever sits between two fields) or no quote at all
    (a comma only ever ends a field). The regular expression, many times
    slower, only reads the other safe lines (some fields quoted, some not):
    each split runs on a column holding only its own lines (null elsewhere).
    ``quoted`` and ``bare`` may be given already computed (and the quoted
    lines' split, ``quoted_cells``: see :func:`_shapes`); ``mixed_lines``
    False (no line is of neither shape) leaves the regular expressions out
    (even over a column of nulls they cost as much as the splits).
    """
    quoted = line.str.contains(_QUOTED_LINE) if quoted is None else quoted
    bare = ~line.str.contains('"', literal=True) if bare is None else bare
    if quoted_cells is None:
        quoted_cells = _quoted_split(pl.when(quoted).then(line))
    cells = [pl.when(quoted).then(quoted_cells), pl.when(bare).then(line).str.split(",")]
    if not mixed_lines:
        return quoted | bare, pl.coalesce(cells)
    mixed = pl.when(~quoted & ~bare).then(line)
    by_regex = pl.concat_str(pl.lit(","), mixed).str.extract_all(f",{_FIELD}").list.eval(
        pl.element().str.strip_prefix(",").pipe(
            lambda e: pl.when(e.str.starts_with('"')).then(e.str.slice(1, e.str.len_chars() - 2)).otherwise(e)))
    return quoted | bare | mixed.str.contains(_SAFE_LINE).fill_null(False), pl.coalesce(*cells, by_regex)


def _quoted_split(line: pl.Expr) -> pl.Expr:
    # a quoted line starts and ends with its one quote: stripping them is slice(1, len - 2), without counting
    # the characters of every line
    return line.str.strip_prefix('"').str.strip_suffix('"').str.split('","')


def _shapes(frame: pl.DataFrame) -> pl.DataFrame:
    """The lines' shapes for :func:`_cells_of`: _quoted (every field quoted, no quote inside), _bare (no quote)
    and _split (the cells of a line starting and ending with a quote, split on ``","``).

    Without the regular expression (_QUOTED_LINE, a third of the cost of splitting the lines): a line
    between quotes split on ``","`` into n cells is of the quoted shape exactly when it holds 2n quotes
    (the separators' and the ends'), i.e. when no cell holds one.
    """
    line = pl.col("line")
    frame = frame.with_columns((line.str.starts_with('"') & line.str.ends_with('"')).alias("_ends"),
                               line.str.count_matches('"', literal=True).alias("_quotes"))
    frame = frame.with_columns(_quoted_split(pl.when(pl.col("_ends")).then(line)).alias("_split"))
    return frame.with_columns(
        (pl.col("_ends") & (pl.col("_quotes") == 2 * pl.col("_split").list.len())).fill_null(False).alias("_quoted"),
        (pl.col("_quotes") == 0).alias("_bare")).drop("_ends", "_quotes")


# CJK unified ideographs: NFKC-stable and never whitespace, so a cell holding three of them never squashes
# (header()) to a two-character 合计 / 总计 label.
_IDEOGRAPH = "[\u4e00-\u9fff]"
TOTAL_CHAR = "计"


def _total_like(cells: pl.Expr) -> pl.Expr:
    """The row may be a 合计 row for ``_rows.is_total_row``: a cell with 计 and fewer than three ideographs
    (设计, 计算机 … in longer names do not send a row to the per-row path)."""
    return cells.list.eval(pl.element().str.contains(TOTAL_CHAR, literal=True)
                           & (pl.element().str.count_matches(_IDEOGRAPH) < 3)).list.any().fill_null(True)


def total_like(strings: Sequence[str]) -> bool:
    """:func:`_total_like` for the string cells of one row."""
    return any(TOTAL_CHAR in s and len(re.findall(_IDEOGRAPH, s)) < 3 for s in strings)


def safe_line(line: str) -> bool:
    """:func:`_cells_of`'s shape test for one line (the header)."""
    return re.fullmatch(_SAFE_LINE[1:-1], line) is not None


@dataclass
class CsvBatch:
    """:func:`fast_csv_batch`'s outcome: every file's fast rows in one frame, the others' per file."""

    fast: pl.DataFrame                              # _file, source_row, line, (_key, _carry)
    slow: dict[int, list[tuple[int, list[str]]]]    # file -> (source_row, cells) of its rows for the per-row path
    ok: list[bool]                                  # file -> took the vectorised pass (else: it streams per row)
    lines: Any = None                               # every file's data lines (a polars Series), file after file
    first: list[int] = field(default_factory=list)  # file -> where its first data line (row 2) sits in ``lines``

    def line(self, file: int, source_row: int) -> str:
        """A data line of a file, as it was read (without its end)."""
        return self.lines[self.first[file] + source_row - 2]


def fast_csv_batch(files: Sequence[CsvFile], fields: Sequence[Any], spec: Spec, columns: Sequence[str],
                   limits: Any) -> CsvBatch:
    """The vectorised pass over the data lines of several CSV files at once (polars costs per call); the fast
    rows of all of them in one frame (:func:`merge_batch` files them).

    A file with a line of an unsafe shape, or more fields than the limit, is
    not ``ok`` (it streams per row instead). The files must share the field
    positions (``index``).
    """
    lines, sizes, unreadable = _data_lines(files)
    frame = pl.DataFrame({
        "_file": pl.Series(np.repeat(np.arange(len(files), dtype=np.int32), sizes)),
        "source_row": pl.Series(np.concatenate([np.arange(2, n + 2, dtype=np.int32) for n in sizes])
                                if files else np.zeros(0, np.int32)),
        "line": lines})
    line = pl.col("line")
    frame = _shapes(frame)
    mixed_lines = bool(frame.select((~pl.col("_quoted") & ~pl.col("_bare")).any()).item())
    per_file = pl.DataFrame(
        {"_file": pl.Series(range(len(files)), dtype=pl.Int32), "_width": [f.width for f in files],
         **{f"_p_{k}": [f.params[k] for f in files] for k in files[0].params},
         **{f"_c_{k}": pl.Series([f.constants[k] for f in files], dtype=pl.String) for k in files[0].constants}})
    safe, cells = _cells_of(line, pl.col("_quoted"), pl.col("_bare"), mixed_lines, pl.col("_split"))
    index = files[0].index
    lf = frame.lazy().join(per_file.lazy(), on="_file", how="left", maintain_order="left").with_columns(
        safe.alias("_safe"), cells.alias("cells")).drop("_split")
    longest = line.str.len_chars().max()  # csv_lines' checks, for the lines it left to polars (csv_body)
    lf = lf.with_columns(
        (pl.col("_safe").all() & (pl.col("cells").list.len().max() <= limits.fields)
         & (4 * longest + 2 <= limits.record_bytes) & (longest <= limits.field_chars)
         & ~line.str.contains("\r", literal=True).any()).over("_file").alias("_file_ok"),
        ((pl.col("cells").list.len() == pl.col("_width"))
         & pl.col("line").str.contains(_NOT_BLANK_LINE)).alias("_shaped"),
        *[pl.col("cells").list.get(index[f.source], null_on_oob=True).alias(f.source) for f in fields])
    # a line with 计 anywhere waits for the second pass, which looks at its cells (_total_like)
    lf = lf.with_columns((pl.col("_shaped") & ~pl.col("line").str.contains(TOTAL_CHAR, literal=True)).alias("_candidate"),
                         line.str.contains(_ESCAPED_IN_LINE).alias("_escaped"))  # one pass, not one per column
    out, slow = _convert(lf, fields, spec, columns, list(files[0].constants), ["cells"],
                         pl.col("_shaped") & ~_total_like(pl.col("cells")), escaped=True)
    slow_of: dict[int, list[tuple[int, list[str]]]] = {}
    for f, r, c in zip(*slow.to_dict(as_series=False).values(), strict=True):
        slow_of.setdefault(f, []).append((r, c))
    ok_files = set(pl.Series(out["_file"]).unique().to_list()) | set(slow_of) | {
        i for i, n in enumerate(sizes) if not n and i not in unreadable}
    return CsvBatch(out, slow_of, [i in ok_files for i in range(len(files))], lines,
                    np.concatenate((np.zeros(1, np.int64), np.cumsum(sizes, dtype=np.int64)))[:-1].tolist())


def _data_lines(files: Sequence[CsvFile]) -> tuple[Any, list[int], set[int]]:
    """(the data lines of the files, file after file, as a polars Series; their number per file; the files whose
    body is not UTF-8: no line, and not taken)."""
    bodies = [i for i, f in enumerate(files) if f.body is not None]
    sizes = [len(f.lines) for f in files]
    unreadable: set[int] = set()
    if not bodies:
        return pl.Series([line for f in files for line in f.lines], dtype=pl.String), sizes, unreadable
    try:
        texts = pl.Series([files[i].body for i in bodies], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.ComputeError:  # a body not UTF-8 (the per-row path rejects its file, naming the byte)
        readable = []
        for i in bodies:
            try:
                readable.append(pl.Series([files[i].body], dtype=pl.Binary).cast(pl.String))
            except pl.exceptions.ComputeError:
                unreadable.add(i)
        bodies = [i for i in bodies if i not in unreadable]
        texts = pl.concat(readable) if readable else pl.Series([], dtype=pl.String)
    split = texts.str.split("\n")
    for i, n in zip(bodies, split.list.len().to_list(), strict=True):
        sizes[i] = n
    if len(bodies) == len(files):  # a CR LF's CR dropped (another CR: _file_ok)
        return split.explode().str.strip_suffix("\r").alias("line"), sizes, unreadable
    split = split.list.eval(pl.element().str.strip_suffix("\r"))
    of_body = dict(zip(bodies, split.to_list(), strict=True))  # files of both kinds in one batch (not the loader's)
    return pl.Series("line", [line for i, f in enumerate(files) for line in of_body.get(i, f.lines)],
                     dtype=pl.String), sizes, unreadable


def _convert(lf: pl.LazyFrame, fields: Sequence[Any], spec: Spec, columns: Sequence[str],
             constants: Sequence[str], keep_slow: Sequence[str], retry_candidate: pl.Expr | None = None,
             escaped: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the accepted rows as COPY text lines: _file, source_row, line, _key; the others: _file, source_row, …).

    ``lf`` holds _file, source_row, _candidate, _file_ok, one string column
    per field source, the spec's parameters (_p_*) and the constants as COPY
    text (_c_*). Every row goes through the plain conversions; with
    ``spec.lenient`` the rows they refused go through the lenient ones
    (:func:`convert`) too, ``retry_candidate`` (default: ``_candidate``)
    deciding which may be taken there. What is refused goes to the per-row
    path.
    """
    def select(lenient: bool) -> list[pl.Expr]:
        cols = {f.column: convert(pl.col(f.source), spec.kinds[f.source], f.required, lenient) for f in fields}
        ok = pl.col("_candidate")
        for c in cols.values():
            ok = ok & c.ok
        if spec.row_ok is not None:
            ok = ok & spec.row_ok(cols).fill_null(False)
        exprs = [pl.col("_file"), pl.col("source_row"), ok.fill_null(False).alias("_ok"),
                 *[pl.col(c) for c in keep_slow]]
        exprs += [c.copy.alias(name) for name, c in cols.items()]
        exprs += [pl.col(f"_c_{k}") for k in constants]
        if escaped:
            exprs.append(pl.col("_escaped"))
        if spec.row_hash:
            exprs.append(pl.concat_str([c.canon for c in cols.values()], separator="\x1f").alias("_canon"))
        return exprs

    if not spec.lenient:
        first = lf.filter(pl.col("_file_ok")).select(select(False)).collect(engine=ENGINE)
        # the per-row path's columns (the cells: a list each) dropped before the accepted rows are copied out
        out = first.drop(keep_slow).filter(pl.col("_ok"))
        slow = first.filter(~pl.col("_ok")).select("_file", "source_row", *keep_slow)
        return _lines(out, spec, columns), slow
    # The first pass carries what the second needs of the rows it refuses (their values, the file's parameters,
    # what decides a retry), renamed apart from its own columns: one plan over every row, not the frame
    # materialised whole first (which cost as much as the first pass itself).
    schema = lf.collect_schema().names()
    needed = sorted({f.source for f in fields} | {n for n in schema if n.startswith("_p_")}
                    | (set(retry_candidate.meta.root_names()) - set(keep_slow) if retry_candidate is not None
                       else {"_candidate"}))
    first = lf.filter(pl.col("_file_ok")).select(
        *select(False), *[pl.col(n).alias(f"_raw:{n}") for n in needed]).collect(engine=ENGINE)
    carried = [f"_raw:{n}" for n in needed]
    out = first.drop(*keep_slow, *carried).filter(pl.col("_ok"))
    rest = first.filter(~pl.col("_ok"))
    if rest.height:
        rest = rest.select("_file", "source_row", *keep_slow, *[c for c in rest.columns if c.startswith("_c_")],
                           *(["_escaped"] if escaped else []), *[pl.col(f"_raw:{n}").alias(n) for n in needed])
        if retry_candidate is not None:
            rest = rest.with_columns(retry_candidate.alias("_candidate"))
        second = rest.lazy().select(select(True)).collect(engine=ENGINE)
        out = pl.concat([out, second.drop(keep_slow).filter(pl.col("_ok"))], how="vertical_relaxed")
        slow = second.filter(~pl.col("_ok")).select("_file", "source_row", *keep_slow)
    else:
        slow = rest.select("_file", "source_row", *keep_slow)
    return _lines(out, spec, columns), slow


def _lines(out: pl.DataFrame, spec: Spec, columns: Sequence[str]) -> pl.DataFrame:
    """The accepted rows as COPY text lines: _file, source_row, line, _key."""
    extra: dict[str, pl.Series] = {}
    if spec.row_hash:
        md5 = hashlib.md5
        extra["row_hash"] = pl.Series([md5(b, usedforsecurity=False).hexdigest()
                                       for b in out["_canon"].cast(pl.Binary).to_list()], dtype=pl.String)
    for name, fn in spec.python_columns.items():
        extra[name] = pl.Series(fn(out[name].to_list()), dtype=pl.String)
    if extra:
        out = out.with_columns(**extra)
    def line(escape: bool) -> pl.Expr:
        parts = []
        for name in columns:
            if name == "source_row":
                parts.append(pl.col("source_row").cast(pl.String))
            elif f"_c_{name}" in out.columns:
                parts.append(pl.col(f"_c_{name}"))
            else:
                parts.append(copy_escape(pl.col(name)) if escape else pl.col(name).cast(pl.String).fill_null("\\N"))
        return pl.concat_str(parts, separator="\t").alias("line")

    # copy_escape is seven passes over every column: only the rows with a character it escapes take them
    values = [name for name in columns if name != "source_row" and f"_c_{name}" not in out.columns]
    escaped = out["_escaped"] if "_escaped" in out.columns else out.select(pl.any_horizontal(
        [pl.col(name).cast(pl.String).str.contains(_ESCAPED).fill_null(False) for name in values] or [pl.lit(False)]
    ).alias("_escaped"))["_escaped"] if out.height else pl.Series("_escaped", [], dtype=pl.Boolean)
    keep = [pl.col("_file"), pl.col("source_row"), line(False)]
    if escaped.any():
        keep[-1] = pl.when(pl.lit(escaped)).then(line(True)).otherwise(line(False)).alias("line")
    if spec.dedup:
        keep.append(pl.col(spec.dedup).alias("_key"))
    if spec.keys_column:  # as the line writes it (escaped if need be)
        value = pl.col(spec.keys_column).cast(pl.String)
        keep.append(pl.when(pl.lit(escaped)).then(copy_escape(value)).otherwise(value.fill_null("\\N")).alias("_carry")
                    if escaped.any() else value.fill_null("\\N").alias("_carry"))
    return out.select(keep)


@dataclass
class JsonFile:
    """A JSON Lines file's candidate records (already decoded), its values and constants."""

    rows: list[int]                  # line numbers of the candidate records
    values: dict[str, list[Any]]     # field source -> value per candidate (str or None; bool for "bool" kinds)
    params: dict[str, Any]
    constants: dict[str, str]


def fast_json(files: Sequence[JsonFile], fields: Sequence[Any], spec: Spec,
              columns: Sequence[str]) -> list[tuple[pl.DataFrame, list[int]]]:
    """The vectorised pass over the candidate records of several JSON Lines files: (fast rows, refused lines)."""
    sizes = [len(f.rows) for f in files]
    data: dict[str, Any] = {
        "_file": pl.Series(np.repeat(np.arange(len(files), dtype=np.int32), sizes)),
        "source_row": pl.Series([r for f in files for r in f.rows], dtype=pl.Int32)}
    for fld in fields:
        values = [v for f in files for v in f.values[fld.source]]
        if spec.kinds[fld.source].name == "bool":
            values = [None if v is None else ("t" if v else "f") for v in values]
        data[fld.source] = pl.Series(values, dtype=pl.String)
    out, slow = fast_records(pl.DataFrame(data), [f.params for f in files], [f.constants for f in files], fields,
                             spec, columns)
    fast_of = out.partition_by("_file", as_dict=True, include_key=False)
    slow_of: dict[int, list[int]] = {}
    for f, r in zip(*slow.to_dict(as_series=False).values(), strict=True):
        slow_of.setdefault(f, []).append(r)
    empty = out.clear().drop("_file")
    return [(fast_of.get((i,), empty), slow_of.get(i, [])) for i in range(len(files))]


def fast_records(frame: pl.DataFrame, params: Sequence[Mapping[str, Any]], constants: Sequence[Mapping[str, str]],
                 fields: Sequence[Any], spec: Spec, columns: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The vectorised pass over candidate records of several files, already in a frame: (the accepted rows as COPY
    text, _file, source_row, line, _key: what :func:`merge_batch` takes; the refused ones: _file, source_row).

    ``frame``: _file (the file's number: its ``params`` and ``constants``, as COPY text), source_row, and a
    string column per field source (a "bool" kind's as "t" / "f" / null).
    """
    per_file = pl.DataFrame(
        {"_file": pl.Series(range(len(params)), dtype=pl.Int32),
         **{f"_p_{k}": [p[k] for p in params] for k in params[0]},
         **{f"_c_{k}": pl.Series([c[k] for c in constants], dtype=pl.String) for k in constants[0]}})
    lf = frame.lazy().with_columns(pl.col("_file").cast(pl.Int32)).join(
        per_file.lazy(), on="_file", how="left", maintain_order="left").with_columns(
        pl.lit(True).alias("_candidate"), pl.lit(True).alias("_file_ok"))
    return _convert(lf, fields, spec, columns, list(constants[0]), [])


def merge(parsed: ParsedFile, loader: Any, table: str, result: Result, slow: ParsedFile, spec: Spec,
          record_of: Callable[[int], Any], format_row: Callable[[dict[str, Any]], str],
          received: int) -> None:
    """File the fast rows and the per-row path's output (``slow``) in source order, duplicates resolved.

    The per-row check ran without duplicate memory (:class:`NoDedup`): a
    repeat is found here over the rows both paths accepted, in source
    order, the first occurrence kept, exactly as the per-row check does.
    (In Python: a polars frame per file, sorted and keyed, measured slower
    on files of a few hundred rows, its per-call cost above the loop's.)
    """
    slow_rows = slow.tables.get(table, [])
    rows = result.fast["source_row"].to_list()
    lines: list[Any] = result.fast["line"].to_list()  # a fast row's COPY text, or a per-row row's dict
    keys = result.fast["_key"].to_list() if spec.dedup else None
    carry = result.fast["_carry"].to_list() if spec.keys_column and "_carry" in result.fast.columns else None
    if slow_rows:
        rows += [r["source_row"] for r in slow_rows]
        lines += slow_rows
        if keys is not None:
            keys += [r[spec.dedup] for r in slow_rows]
        if carry is not None:
            carry += [None] * len(slow_rows)  # read from the row's COPY text below
    # in source order (polars does not promise the fast rows' order: joins, threads)
    if any(a > b for a, b in zip(rows, rows[1:], strict=False)):
        order = sorted(range(len(rows)), key=rows.__getitem__)
        rows, lines = [rows[i] for i in order], [lines[i] for i in order]
        keys = [keys[i] for i in order] if keys is not None else None
        carry = [carry[i] for i in order] if carry is not None else None
    quarantined = list(slow.quarantined)
    if keys is not None and len(set(keys)) != len(keys):  # a repeat: the first occurrence is kept
        repeated = {k for k, n in Counter(keys).items() if n > 1}
        first: dict[Any, int] = {}
        drop = []
        for i in [i for i, k in enumerate(keys) if k in repeated]:
            earlier = first.setdefault(keys[i], rows[i])
            if earlier != rows[i]:
                quarantined.append(loader.dup_entry(rows[i], spec.dedup_rule, spec.dedup_message(keys[i], earlier),
                                                    record_of(rows[i])))
                drop.append(i)
        for i in reversed(drop):  # rows, lines, keys (and carry) stay aligned
            del lines[i], rows[i], keys[i]
            if carry is not None:
                del carry[i]
    parsed.rows_received += received
    if lines:
        lines = [x if type(x) is str else format_row(x) for x in lines] if slow_rows else lines
        if carry is not None and keys is not None and spec.dedup == "row_hash":
            if slow_rows:
                at = parsed.sink.columns_of(table).index(spec.keys_column)
                carry = [c if c is not None else line.split("\t")[at] for c, line in zip(carry, lines, strict=True)]
            parsed.sink.contract_keys = (carry, keys, rows)
        lines.append("")
        parsed.add_block(table, "\n".join(lines).encode("utf-8"), len(lines) - 1)
    for entry in sorted(quarantined, key=lambda q: q.source_row):
        parsed.quarantine(entry.source_row, entry.rule_code, entry.message, entry.record, entry.sheet)
    parsed.notes.extend(slow.notes)



@dataclass
class MergeJob:
    """One file of a batch for :func:`merge_batch`: what :func:`merge` takes of it."""

    index: int                                        # the file's number in the batch (its fast rows' _file)
    parsed: ParsedFile
    loader: Any                                       # the per-row path's RowLoader (its dup_entry)
    slow: ParsedFile                                  # the per-row path's output for the file's other rows
    record_of: Callable[[int], Any]
    format_row: Callable[[dict[str, Any]], str]


def merge_batch(fast: pl.DataFrame, jobs: Sequence[MergeJob], table: str, spec: Spec) -> dict[int, BaseException]:
    """:func:`merge` for every file of a batch at once: the same rows, bytes, entries and counts per file.

    The fast rows of all the files (``fast``, with _file) and their per-row
    rows (formatted as COPY text here) are sorted by file and row in one
    frame; a repeat of a key in its file (after its first occurrence) is
    quarantined as :func:`merge` does; the COPY text of the whole batch is
    joined once (polars) and cut into files by byte offsets, so no line
    becomes a Python string (per file, polars' cost per call lost to
    :func:`merge`'s Python loop). Returns the files that failed (index ->
    exception); should the batch's part fail (a bug), every file is merged
    by :func:`merge` instead (nothing was filed before).
    """
    errors: dict[int, BaseException] = {}
    names = ["_file", "source_row", "line"] + (["_key"] if spec.dedup else [])
    carried = spec.keys_column is not None and "_carry" in fast.columns
    if carried:
        names.append("_carry")
    extra: dict[str, list[Any]] = {name: [] for name in names}
    at = None
    for job in jobs:
        rows = job.slow.tables.get(table, [])
        if not rows:
            continue
        try:
            lines = [job.format_row(r) for r in rows]
            if carried and at is None:
                at = job.parsed.sink.columns_of(table).index(spec.keys_column)
            keys = [r[spec.dedup] for r in rows] if spec.dedup else None
            carry = [line.split("\t")[at] for line in lines] if carried else None
        except Exception as exc:
            errors[job.index] = exc
            continue
        extra["_file"] += [job.index] * len(rows)
        extra["source_row"] += [r["source_row"] for r in rows]
        extra["line"] += lines
        if keys is not None:
            extra["_key"] += keys
        if carry is not None:
            extra["_carry"] += carry
    jobs = [job for job in jobs if job.index not in errors]
    if not jobs:
        return errors
    try:
        frame, dups, cut = _merged(fast, jobs, names, extra, spec)
    except Exception:
        log.exception("the merge of a batch of %d file(s) failed: merging them one by one", len(jobs))
        fast_of = fast.partition_by("_file", as_dict=True, include_key=False)
        empty = fast.clear().drop("_file")
        for job in jobs:
            try:
                merge(job.parsed, job.loader, table, Result(fast_of.get((job.index,), empty), []), job.slow, spec,
                      job.record_of, job.format_row, job.slow.rows_received + fast_of.get((job.index,), empty).height)
            except Exception as exc:
                errors[job.index] = exc
        return errors
    received, counts, starts, offsets, data = cut
    contract = carried and spec.dedup == "row_hash"
    if contract:
        carry_list, key_list, row_list = (frame[c].to_list() for c in ("_carry", "_key", "source_row"))
    for job in jobs:
        i = job.index
        try:
            quarantined = list(job.slow.quarantined) + [
                job.loader.dup_entry(row, spec.dedup_rule, spec.dedup_message(key, first), job.record_of(row))
                for row, key, first in dups.get(i, [])]
            job.parsed.rows_received += job.slow.rows_received + received[i]
            n = counts[i]
            if n:
                a, b = starts[i], starts[i] + n
                if contract:
                    job.parsed.sink.contract_keys = (carry_list[a:b], key_list[a:b], row_list[a:b])
                job.parsed.add_block(table, data[offsets[a]:offsets[b]], n)
            for entry in sorted(quarantined, key=lambda q: q.source_row):
                job.parsed.quarantine(entry.source_row, entry.rule_code, entry.message, entry.record, entry.sheet)
            job.parsed.notes.extend(job.slow.notes)
        except Exception as exc:
            errors[i] = exc
    return errors


def _merged(fast: pl.DataFrame, jobs: Sequence[MergeJob], names: list[str], extra: dict[str, list[Any]],
            spec: Spec) -> tuple[pl.DataFrame, dict[int, list[tuple[int, Any, int]]], tuple]:
    """:func:`merge_batch`'s polars part: (the rows to file, sorted; the repeats per file; where each file's
    rows and bytes are: fast rows received, rows, first row, byte offset of each row, the COPY text)."""
    size = max(job.index for job in jobs) + 1
    frame = fast.select(names)
    indices = {job.index for job in jobs}
    if set(frame["_file"].unique().to_list()) - indices:  # a file whose per-row part failed: none of its rows
        frame = frame.filter(pl.col("_file").is_in(sorted(indices)))
    received = np.bincount(frame["_file"].to_numpy(), minlength=size)
    if extra["_file"]:
        frame = pl.concat([frame, pl.DataFrame(extra, schema=frame.schema)])
    frame = frame.sort("_file", "source_row")  # source order (polars does not promise the fast rows': joins, threads)
    dups: dict[int, list[tuple[int, Any, int]]] = {}
    if spec.dedup:  # a repeat: the first occurrence in the file is kept
        first = frame.select(pl.col("source_row").first().over("_file", "_key"))["source_row"]
        repeat = first != frame["source_row"]
        if repeat.any():
            for f, row, key, earlier in frame.with_columns(first.alias("_first")).filter(repeat).select(
                    "_file", "source_row", "_key", "_first").rows():
                dups.setdefault(f, []).append((row, key, earlier))
            frame = frame.filter(~repeat)
    counts = np.bincount(frame["_file"].to_numpy(), minlength=size)
    starts = (np.cumsum(counts, dtype=np.int64) - counts).tolist()
    offsets = np.concatenate((np.zeros(1, np.int64),
                              np.cumsum(frame["line"].str.len_bytes().to_numpy(), dtype=np.int64)
                              + np.arange(1, frame.height + 1, dtype=np.int64))).tolist()
    data = frame.select(pl.concat_str(pl.col("line"), pl.lit("\n")).str.join("").cast(pl.Binary)).item()
    return frame, dups, (received.tolist(), counts.tolist(), starts, offsets, data or b"")


# -- CSV ------------------------------------------------------------------------------------

def _decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode("utf-8" if encoding == "utf-8-sig" else encoding)
    except UnicodeDecodeError:
        return None


def csv_body(data: bytes, limits: Any) -> tuple[str, bytes | None] | None:
    """:func:`csv_lines` of a UTF-8 file without making its data lines Python strings: (its header line, the
    rest as bytes, its last LF dropped; None without a data line), or None when not fit. What csv_lines
    checks of every line, :func:`fast_csv_batch` checks of the rest: UTF-8, the longest line, no CR but the
    one of a CR LF (which it drops: ``bytes.replace`` of every CR LF cost more than the rest of the reading)."""
    if len(data) > MAX_BYTES or not data or b"\x00" in data:
        return None
    data = data.removeprefix(b"\xef\xbb\xbf")  # as BoundedLines: one BOM at the start
    if data.endswith(b"\r"):  # a CR without its LF at the end (polars would take it for a CR LF's)
        return None
    head, _, body = data.partition(b"\n")
    header = _decode(head.removesuffix(b"\r"), "utf-8")
    if (header is None or "\r" in header or 4 * len(header) + 2 > limits.record_bytes
            or len(header) > limits.field_chars):
        return None
    return header, body.removesuffix(b"\n") if body else None


def csv_lines(data: bytes, encoding: str, limits: Any) -> list[str] | None:
    """The file's physical lines (without their ends) when it is fit for the fast path, else None."""
    if len(data) > MAX_BYTES or b"\x00" in data:
        return None
    text = _decode(data, encoding)
    if text is None:
        return None
    text = text.removeprefix("\ufeff")  # as BoundedLines: one BOM at the start
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return None
    longest = max(map(len, lines))
    if 4 * longest + 2 > limits.record_bytes or longest > limits.field_chars:
        return None
    return lines


__all__ = ["ENABLED", "MAX_BYTES", "CsvBatch", "CsvFile", "JsonFile", "Kind", "MergeJob", "NoDedup", "Result", "Spec",
           "convert", "csv_body", "csv_lines", "fast_csv_batch", "fast_json", "fast_records", "merge",
           "merge_batch", "safe_line", "usable"]
