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
from collections.abc import Callable
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
from corridor.feeds.base import ParsedFile, Sink
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
from corridor.pii import mask_id, mask_json_text, mask_name, mask_text, person_key

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
    """A record as quarantine keeps it: id_number and name masked, ID shapes elsewhere too."""
    if not isinstance(obj, dict):  # a line that is not a JSON object
        return {"line": mask_json_text(obj)}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if value is None or isinstance(value, bool):
            out[key] = value
        elif key == "id_number":
            out[key] = mask_id(str(value))
        elif key == "name":
            out[key] = mask_name(str(value))
        elif isinstance(value, str):
            out[key] = mask_text(value)
        else:  # numbers, lists, objects: masked as JSON text if they hold an ID shape
            as_json = json.dumps(value, ensure_ascii=False)
            out[key] = value if mask_text(as_json) == as_json else mask_text(as_json)
    return out


_TRAILING_DIGITS = re.compile(r"[0-9]{6,17}$")


def _masked_head(head: str) -> str:
    """The first KB of a line, masked; an ID number cut short at the end is masked too."""
    return _TRAILING_DIGITS.sub(lambda m: m[0][:6] + "*" * (len(m[0]) - 6), mask_json_text(head))


def _no_constants(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (RFC 8259), though Python's json reads them."""
    raise ValueError(f"{name} is not a valid JSON value")


# json.loads(line, parse_constant=_no_constants), without building a decoder per line
_DECODER = json.JSONDecoder(parse_constant=_no_constants)
_SCAN = _DECODER.scan_once  # the C scanner behind it


def _decode_line(line: str) -> Any:
    """``_DECODER.decode(line)``: the C scanner called directly when the value fills the line (no surrounding
    whitespace: what decode() then returns), sparing decode()'s Python wrapper (a third of hr's JSON time)."""
    try:
        obj, end = _SCAN(line, 0)
    except StopIteration:  # leading whitespace, or no JSON value: decode() says which
        end = -1
    if end != len(line):
        return _DECODER.decode(line)
    return obj


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
                     record=masked, check=_unique_record_id(seen), limits=limits)


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
        python_columns={"person_key": lambda ids: [person_key(i, pii_key) for i in ids]})


_TEXT_TYPES = frozenset({str, type(None)})
_FLAG_TYPES = frozenset({bool, type(None)})
_SOURCES = ("record_id", "id_number", "category", "title", "employer_name", "employer_uscc", "area",
            "intake_date", "intake_type", "overseas", "team_id", "action")


def run_batch(paths: list[Path], *, pii_key: bytes, sinks: list[Sink], limits: Limits | None = None
              ) -> list[tuple[ParsedFile | None, BaseException | None]]:
    """Parse several files, their clean records vectorised together; (parsed, error) per file."""
    limits = limits or config.load().limits
    out: list[tuple[ParsedFile | None, BaseException | None]] = [(None, None)] * len(paths)
    ready = []
    for i, (path, sink) in enumerate(zip(paths, sinks, strict=True)):
        try:
            prep = _prepare(path, sink, limits) if _fast.usable(ParsedFile("hr", path.name, sink=sink)) else None
            if prep is None:
                out[i] = (parse(path, pii_key=pii_key, sink=sink, limits=limits), None)
            else:
                ready.append((i, path, sink, *prep))
        except Exception as exc:
            out[i] = (None, exc)
    if not ready:
        return out
    spec = fast_spec(pii_key)
    table_fields = fields(date.today(), pii_key)
    try:
        results = _fast.fast_json([r[4] for r in ready], table_fields, spec, ready[0][2].columns_of(TABLE))
    except Exception:
        log.exception("the vectorised parse of %d file(s) failed: parsing them per row", len(ready))
        results = None
    for n, (i, path, sink, meta, _jfile, lines, slow_lines) in enumerate(ready):
        try:
            if results is None:
                out[i] = (parse(path, pii_key=pii_key, sink=sink, limits=limits), None)
                continue
            fast, refused = results[n]
            parsed = ParsedFile("hr", path.name, sink=sink)
            slow = ParsedFile("hr", path.name)
            loader = _loader(slow, path, meta, pii_key, limits, _fast.NoDedup())
            skipped = 0
            for line_no in sorted(set(refused) | set(slow_lines)):
                if not _take_line(loader, line_no, lines[line_no - 1], limits):
                    skipped += 1
            loader.note_skipped(skipped)
            _fast.merge(parsed, loader, TABLE, _fast.Result(fast, []), slow, spec,
                        lambda line_no, lines=lines: json.loads(lines[line_no - 1]),
                        lambda r, sink=sink: sink.format_row(TABLE, r), slow.rows_received + fast.height)
            out[i] = (parsed, None)
        except Exception as exc:
            out[i] = (None, exc)
    return out


def _prepare(path: Path, sink: Any, limits: Limits):
    """(meta, the candidate records, the lines, the lines for the per-row path), or None: stream it."""
    meta = meta_for("hr", path)
    with open_regular(path, max_bytes=limits.file_bytes) as fh:
        if os.fstat(fh.fileno()).st_size > _fast.MAX_BYTES:
            return None
        data = fh.read()
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lines and (4 * max(map(len, lines)) + 2 > limits.record_bytes or max(map(len, lines)) > limits.field_chars):
        return None
    lines = [line.removesuffix("\r") for line in lines]
    rows, slow_lines, records, overseas = [], [], [], []
    decode, max_fields = _decode_line, limits.fields
    for n, line in enumerate(lines, 1):
        obj = None
        if "\\u" not in line and line.strip():  # an escape may make a NUL or a lone surrogate: per row
            try:
                obj = decode(line)
            except (ValueError, RecursionError):
                obj = None
        if type(obj) is not dict or len(obj) > max_fields:
            slow_lines.append(n)
            continue
        flag = obj.pop("overseas", None)  # obj is this loop's own: the values but overseas are strings or null
        if type(flag) not in _FLAG_TYPES or not _TEXT_TYPES.issuperset(map(type, obj.values())):
            slow_lines.append(n)
            continue
        rows.append(n)
        records.append(obj)
        overseas.append(flag)
    values: dict[str, list[Any]] = {k: [r.get(k) for r in records] for k in _SOURCES if k != "overseas"}
    values["overseas"] = overseas
    constants = {"file_month": sink.format_value(meta.period_start), "file_version": sink.format_value(1)}
    return meta, _fast.JsonFile(rows, values, {"hi": meta.period_end}, constants), lines, slow_lines
