"""高层次人才引育 — ``hr/talent_{YYYYMM}.jsonl`` -> ``raw.hr_talents``.

Spec: shared/feeds/README.md §4. UTF-8 JSON Lines, one object per line.
Personal data (PIPL): the ID number becomes ``person_key`` (HMAC-SHA256 with
the PII key) and the name is dropped; a quarantined record keeps both masked.
Nothing of either reaches the ParsedFile in clear.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from corridor import config
from corridor.config import Limits
from corridor.feeds import _fast
from corridor.feeds._rows import (
    BoundedLines,
    Check,
    Field,
    RecordTooLong,
    RowLoader,
    meta_for,
    open_regular,
    too_long_record,
)
from corridor.feeds.base import FileRejected, ParsedFile, Sink
from corridor.normalize import (
    NormalizeError,
    area_code,
    choice,
    code,
    id_number,
    parse_bool,
    parse_date,
    show,
    text,
    uscc,
)
from corridor.pii import (
    mask_json_text,
    mask_text,
    mask_value,
    person_key,
    person_keys,
)

log = logging.getLogger(__name__)

TABLE = "raw.hr_talents"
CATEGORIES = ("A", "B", "C", "D", "E")
INTAKE_TYPES = ("引进", "培育")
ACTIONS = ("new", "update", "withdraw")
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def category(value: Any) -> str:
    s = code(value).upper()
    if s not in CATEGORIES:
        raise NormalizeError("unknown_category", f"{show(value)} is not a talent category A..E")
    return s


def _pseudonym(pii_key: bytes) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        return person_key(id_number(value), pii_key)

    return convert


def fields(period_end: date, pii_key: bytes) -> tuple[Field, ...]:
    return (
        Field("record_id", "record_id", code, required=True),
        Field("id_number", "person_key", _pseudonym(pii_key), required=True),
        Field("category", "category", category, required=True),
        Field("title", "title", text),
        Field("employer_name", "employer_name", text),
        Field("employer_uscc", "employer_uscc", uscc),
        Field("area", "area_code", area_code, required=True),
        Field("intake_date", "intake_date", partial(parse_date, hi=period_end), required=True),
        Field("intake_type", "intake_type", partial(choice, accepted=INTAKE_TYPES), required=True),
        Field("overseas", "is_overseas", parse_bool),
        Field("team_id", "team_id", code),
        Field("action", "action", partial(choice, accepted=ACTIONS), required=True),
    )


def _unique_record_id(seen: dict[str, int] | None = None) -> Check:
    seen = {} if seen is None else seen  # record_id -> line of its first loaded occurrence

    def check(row: dict[str, Any], line: int) -> None:
        first = seen.setdefault(row["record_id"], line)
        if first != line:
            raise NormalizeError("duplicate_record_id",
                                 f"record_id {row['record_id']!r} was already received on line {first}")

    return check


def masked(obj: Any) -> dict[str, Any]:
    """A record as quarantine keeps it: its name and ID number masked (under the spec's keys or renamed ones:
    :func:`corridor.pii.personal_field`, in nested objects too), ID shapes elsewhere too."""
    if not isinstance(obj, dict):  # a line that is not a JSON object
        return {"line": mask_json_text(obj)}
    return mask_value(obj)


_TRAILING_DIGITS = re.compile(r"[0-9]{6,17}$")


def _masked_head(head: str) -> str:
    """The first KB of a line, masked; an ID number cut short at the end is masked too."""
    return _TRAILING_DIGITS.sub(lambda m: m[0][:6] + "*" * (len(m[0]) - 6), mask_json_text(head))


def _no_constants(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (RFC 8259), though Python's json reads them."""
    raise ValueError(f"{name} is not a valid JSON value")


# json.loads(line, parse_constant=_no_constants), without building a decoder per line
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def _take_line(loader: RowLoader, line_no: int, line: str, limits: Limits) -> bool:
    """One line (its end stripped) to the loader: loaded or quarantined; False when it is blank (skipped)."""
    if not line.strip():
        return False
    try:
        obj = _DECODER.decode(line)
    except (ValueError, RecursionError) as exc:
        reason = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        loader.refuse(line_no, "invalid_json", f"the line is not valid JSON ({reason})", line)
        return True
    if not isinstance(obj, dict):
        loader.refuse(line_no, "invalid_json",
                      f"the line is a JSON {_JSON_TYPES.get(type(obj), 'value')}, not an object", line)
        return True
    if len(obj) > limits.fields:
        loader.refuse_record(line_no, "too_many_fields",
                             f"has {len(obj):,} keys, over the limit of {limits.fields:,} (CORRIDOR_MAX_FIELDS)",
                             {"record_head": _masked_head(line[:4096]), "record_bytes": len(line.encode())})
        return True
    loader.take(line_no, obj, obj)
    return True


def _loader(parsed: ParsedFile, path: Path, meta: Any, pii_key: bytes, limits: Limits, seen: dict | None = None):
    return RowLoader(parsed, TABLE, fields(meta.period_end, pii_key), where=path.name, row_word="line",
                     constants={"file_month": meta.period_start, "file_version": 1},
                     record=masked, check=_unique_record_id(seen), limits=limits, mask=mask_text)


def _no_record(path: Path, parsed: ParsedFile) -> None:
    """Reject a file that holds no record (0 bytes, or blank lines only): a month's talent file is named by its
    month alone, so one loaded empty (a transfer cut short) would leave the month's real file no name to load
    under (a loaded name with other bytes is refused); rejected, it may be delivered again under its own name."""
    if parsed.rows_received == 0:
        try:
            size = os.lstat(path).st_size
        except OSError:
            size = 0
        held = "0 bytes" if size == 0 else f"{size:,} bytes, blank lines only"
        raise FileRejected(f"{path.name} holds no record ({held}): nothing was loaded; a month's talent file has"
                           " one record a line: deliver the month's file again (under the same name)")


def parse(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> ParsedFile:
    """Read the file one line at a time (lines split on \\n only: a JSON string may hold U+2028)."""
    limits = limits or config.load().limits
    meta = meta_for("hr", path)
    parsed = ParsedFile("hr", path.name, sink=sink)
    loader = _loader(parsed, path, meta, pii_key, limits)
    skipped = 0
    with open_regular(path, max_bytes=limits.file_bytes) as fh:
        lines = BoundedLines(fh, path.name, "utf-8-sig", limits.record_bytes)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                break
            except RecordTooLong as exc:
                head = _masked_head(exc.head.decode("utf-8", errors="ignore"))
                message, record = too_long_record(exc, head, limits.record_bytes, "line")
                loader.refuse_record(exc.line, "record_too_long", message, record)
                continue
            lines.record_done()
            if not _take_line(loader, lines.line_no, line.removesuffix("\n").removesuffix("\r"), limits):
                skipped += 1
    loader.note_skipped(skipped)
    _no_record(path, parsed)
    return parsed


# -- the fast path (feeds/_fast.py): many files' clean records converted together ------------------

def fast_spec(pii_key: bytes) -> _fast.Spec:
    return _fast.Spec(
        kinds={"record_id": _fast.Kind("code"), "id_number": _fast.Kind("id"),
               "category": _fast.Kind("choice", CATEGORIES), "title": _fast.Kind("text"),
               "employer_name": _fast.Kind("text"), "employer_uscc": _fast.Kind("uscc"),
               "area": _fast.Kind("area"), "intake_date": _fast.Kind("date", hi="file"),
               "intake_type": _fast.Kind("choice", INTAKE_TYPES), "overseas": _fast.Kind("bool"),
               "team_id": _fast.Kind("code"), "action": _fast.Kind("choice", ACTIONS)},
        dedup="record_id", dedup_rule="duplicate_record_id",
        dedup_message=lambda key, first: f"record_id {key!r} was already received on line {first}",
        python_columns={"person_key": lambda ids: person_keys(ids, pii_key)})


_SOURCES = ("record_id", "id_number", "category", "title", "employer_name", "employer_uscc", "area",
            "intake_date", "intake_type", "overseas", "team_id", "action")
_FLAG = "overseas"  # the one source taken as a JSON true / false; every other value is a string or null

# A JSON string without an escape or a control character (which json.loads refuses in a string): its text is
# exactly what is between its quotes. A line of the layout below holds nothing else but null, true and false.
_PLAIN_TEXT = r'[^"\\\x00-\x1f]*'
_PLAIN_STRING = f'"{_PLAIN_TEXT}"'
_LAYOUT_KEY = re.compile(r"[A-Za-z0-9_]+")  # a key that is its own JSON text and regular expression
_LAYOUT_PROBES = 8  # the first lines of a file looked at for its layout


@dataclass
class _Ready:
    """A file read for the vectorised pass: its bytes and, once split (:func:`_vectorised`), its lines."""

    index: int                  # its number among the files read (its rows' _file)
    at: int                     # its place in the batch
    path: Path
    sink: Any
    meta: Any
    body: bytes | None          # no BOM, no last line end; None: the file is empty (no line at all)
    lines: Any = None           # the batch's lines (a polars Series, without their CR), file after file
    first: int = 0              # where its line 1 sits in ``lines``

    def line(self, line_no: int) -> str:
        return self.lines[self.first + line_no - 1]


class _Pairs(list):
    """A JSON object's (key, value) pairs in order, as json.loads's object_pairs_hook gives them."""


def _layout(lines: Sequence[str], limits: Limits) -> tuple[str, ...] | None:
    """The keys, in order, of the first flat record among a file's first lines (a JSON object of distinct plain
    keys whose values are strings without escapes, null, true or false): the shape its other lines are matched
    against (:func:`_layout_pattern`); None when none of them is one."""
    for line in lines[:_LAYOUT_PROBES]:
        try:
            pairs = json.loads(line, object_pairs_hook=_Pairs)
        except (ValueError, RecursionError):
            continue
        if type(pairs) is _Pairs and pairs:
            keys = tuple(k for k, _ in pairs)
            if (len(set(keys)) == len(keys) <= limits.fields and all(_LAYOUT_KEY.fullmatch(k) for k in keys)
                    and re.fullmatch(_layout_pattern(keys), line)):
                return keys
    return None


def _layout_pattern(keys: tuple[str, ...]) -> str:
    """A regular expression matching exactly the lines that are a JSON object of ``keys`` in this order, spaces
    around the colons and commas allowed, every value a plain string (:data:`_PLAIN_STRING`) or null, the flag's
    true, false or null. Groups: ``m`` (always, empty), then per source key ``s<i>`` (its position in
    _SOURCES): a string's text (null for a null), the flag's true / false / null. Such a line is one json.loads
    reads as those keys with those values: nothing else (no duplicate key, number, escape, nesting) matches."""
    parts = []
    for key in keys:
        if key == _FLAG:
            value = f"(?P<s{_SOURCES.index(key)}>true|false|null)"
        elif key in _SOURCES:
            value = f'(?:"(?P<s{_SOURCES.index(key)}>{_PLAIN_TEXT})"|null)'
        else:  # a key loaded nowhere (the name, extra keys): a string or null still
            value = f"(?:{_PLAIN_STRING}|null)"
        parts.append(f' *"{key}" *: *{value} *')
    return "^(?P<m>)\\{" + ",".join(parts) + "\\}$"


def _read(path: Path, limits: Limits) -> tuple[Any, bytes | None] | None:
    """(meta, the bytes: no BOM, no last line end; None for an empty file) of a file for the vectorised pass, or
    None: it streams (over _fast.MAX_BYTES, or a NUL). Its lines are those bytes split on \\n: those BoundedLines
    reads (a file of a BOM or a line end alone holds one, blank). :func:`_vectorised` decodes them (a file not
    UTF-8, or with a line over the record or field limits, streams then)."""
    meta = meta_for("hr", path)
    with open_regular(path, max_bytes=limits.file_bytes) as fh:
        if os.fstat(fh.fileno()).st_size > _fast.MAX_BYTES:
            return None
        data = fh.read()
    if b"\x00" in data:
        return None
    if not data:
        return meta, None
    return meta, data.removeprefix(b"\xef\xbb\xbf").removesuffix(b"\n")  # as BoundedLines


def run_batch(paths: list[Path], *, pii_key: bytes, sinks: list[Sink], limits: Limits | None = None
              ) -> list[tuple[ParsedFile | None, BaseException | None]]:
    """Parse several files, their clean records vectorised together; (parsed, error) per file.

    A line of its file's layout (:func:`_layout`: in practice every record of a delivery's files) is read by
    one regular expression over the batch's lines (polars), its values converted vectorised; every other line
    (blank, broken, nested, escaped, of another layout) and every record the conversion refuses takes the
    per-row path (:func:`_take_line`), without duplicate memory: the merge (``_fast.merge_batch``) finds the
    repeats over both, in line order.
    """
    limits = limits or config.load().limits
    out: list[tuple[ParsedFile | None, BaseException | None]] = [(None, None)] * len(paths)
    ready: list[_Ready] = []
    for i, (path, sink) in enumerate(zip(paths, sinks, strict=True)):
        try:
            read = _read(path, limits) if _fast.usable(ParsedFile("hr", path.name, sink=sink)) else None
            if read is None:
                out[i] = (parse(path, pii_key=pii_key, sink=sink, limits=limits), None)
            else:
                meta, body = read
                ready.append(_Ready(len(ready), i, path, sink, meta, body))
        except Exception as exc:
            out[i] = (None, exc)
    if not ready:
        return out
    spec = fast_spec(pii_key)
    try:
        fast, slow, stream = _vectorised(ready, spec, pii_key, limits)
    except Exception:
        log.exception("the vectorised parse of %d file(s) failed: parsing them per row", len(ready))
        for r in ready:
            try:
                out[r.at] = (parse(r.path, pii_key=pii_key, sink=r.sink, limits=limits), None)
            except Exception as exc:
                out[r.at] = (None, exc)
        return out
    jobs = []
    for r in ready:
        try:
            if r.index in stream:
                out[r.at] = (parse(r.path, pii_key=pii_key, sink=r.sink, limits=limits), None)
                continue
            parsed = ParsedFile("hr", r.path.name, sink=r.sink)
            part = ParsedFile("hr", r.path.name)
            loader = _loader(part, r.path, r.meta, pii_key, limits, _fast.NoDedup())
            skipped = 0
            for line_no in slow.get(r.index, ()):
                if not _take_line(loader, line_no, r.line(line_no), limits):
                    skipped += 1
            loader.note_skipped(skipped)
            jobs.append(_fast.MergeJob(r.index, parsed, loader, part,
                                       lambda line_no, r=r: json.loads(r.line(line_no)),
                                       lambda row, sink=r.sink: sink.format_row(TABLE, row)))
        except Exception as exc:
            out[r.at] = (None, exc)
    errors = _fast.merge_batch(fast, jobs, TABLE, spec) if jobs else {}
    for job in jobs:
        error = errors.get(job.index)
        if error is None:
            try:
                _no_record(ready[job.index].path, job.parsed)
            except FileRejected as exc:
                error = exc
        out[ready[job.index].at] = (None, error) if error is not None else (job.parsed, None)
    return out


def _vectorised(ready: list[_Ready], spec: _fast.Spec, pii_key: bytes, limits: Limits
                ) -> tuple[Any, dict[int, list[int]], set[int]]:
    """The batch's lines of their file's layout read and converted in polars: (the accepted rows for
    ``_fast.merge_batch``; file -> the line numbers for the per-row path, in order; the files to stream per row:
    not UTF-8, or with a line over the record or field limits)."""
    pl, np = _fast.pl, _fast.np
    stream: set[int] = set()
    read = [r for r in ready if r.body is not None]
    try:
        texts = pl.Series([r.body for r in read], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.ComputeError:  # a file not UTF-8 (the per-row path rejects it, naming the byte)
        decoded = []
        for r in read:
            try:
                decoded.append(pl.Series([r.body], dtype=pl.Binary).cast(pl.String))
            except pl.exceptions.ComputeError:
                stream.add(r.index)
        read = [r for r in read if r.index not in stream]
        texts = pl.concat(decoded) if decoded else pl.Series([], dtype=pl.String)
    split = texts.str.split("\n")
    sizes = split.list.len().to_numpy().astype(np.int64)
    lines = split.explode()
    starts = (np.cumsum(sizes) - sizes).astype(np.int64)
    def over(n: int) -> bool:
        return 4 * n + 2 > limits.record_bytes or n > limits.field_chars

    # the per-row path streams a file with a line over the limits (in characters, its CR counted, as there; its
    # bytes, never fewer, are counted first: without a look at the characters when no line is that long)
    if len(read) and over(int(lines.str.len_bytes().max())):
        longest = np.maximum.reduceat(lines.str.len_chars().to_numpy(), starts)
        stream.update(r.index for r, n in zip(read, longest.tolist(), strict=True) if over(n))
    lines = lines.str.strip_suffix("\r")
    for r, first in zip(read, starts.tolist(), strict=True):
        r.lines, r.first = lines, first
    frame = pl.DataFrame({
        "_file": np.repeat(np.asarray([r.index for r in read], dtype=np.int32), sizes),
        "source_row": (np.arange(len(lines), dtype=np.int64) - np.repeat(starts, sizes) + 1).astype(np.int32),
        "line": lines})
    if stream:
        frame = frame.filter(~pl.col("_file").is_in(sorted(stream)))
    layouts: dict[tuple[str, ...], list[int]] = {}
    for r, first, n in zip(read, starts.tolist(), sizes.tolist(), strict=True):
        layout = _layout(lines.slice(first, min(n, _LAYOUT_PROBES)).to_list(), limits) if r.index not in stream \
            else None
        if layout is not None:
            layouts.setdefault(layout, []).append(r.index)
    lines = frame
    texts = [r for r in read if r.index not in stream]
    taken = []
    for keys, files in layouts.items():
        part = lines if len(files) == len(texts) else lines.filter(pl.col("_file").is_in(files))
        groups = part["line"].str.extract_groups(_layout_pattern(keys)).struct.unnest()
        values = {}
        for n, source in enumerate(_SOURCES):
            value = groups[f"s{n}"] if f"s{n}" in groups.columns else pl.repeat(None, part.height, dtype=pl.String,
                                                                                eager=True)
            if source == _FLAG:
                value = value.replace_strict({"true": "t", "false": "f"}, default=None, return_dtype=pl.String)
            values[source] = value
        taken.append(part.select("_file", "source_row").with_columns(
            pl.Series("_m", groups["m"].is_not_null()), **values))
    candidates = pl.concat(taken) if taken else None
    if candidates is not None:
        matched = candidates.filter(pl.col("_m")).drop("_m")
        unmatched = candidates.filter(~pl.col("_m")).select("_file", "source_row")
    else:
        matched = None
        unmatched = lines.select("_file", "source_row").clear()
    others = lines.filter(~pl.col("_file").is_in([i for files in layouts.values() for i in files])).select(
        "_file", "source_row")
    table_fields = fields(date.today(), pii_key)
    columns = ready[0].sink.columns_of(TABLE)
    params = [{"hi": r.meta.period_end} for r in ready]
    constants = [{"file_month": r.sink.format_value(r.meta.period_start), "file_version": r.sink.format_value(1)}
                 for r in ready]
    if matched is not None and matched.height:
        fast, refused = _fast.fast_records(matched, params, constants, table_fields, spec, columns)
    else:
        fast = None
        refused = unmatched.clear()
    slow: dict[int, list[int]] = {}
    rest = pl.concat([unmatched, others, refused.select("_file", "source_row")]).sort("_file", "source_row")
    for f, r in zip(*rest.to_dict(as_series=False).values(), strict=True):
        slow.setdefault(f, []).append(r)
    if fast is None:
        fast = pl.DataFrame({"_file": [], "source_row": [], "line": [], "_key": []},
                            schema={"_file": pl.Int32, "source_row": pl.Int32, "line": pl.String, "_key": pl.String})
    return fast, slow, stream
