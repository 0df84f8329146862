"""高层次人才引育 — ``hr/talent_{YYYYMM}.jsonl`` -> ``raw.hr_talents``.

Spec: shared/feeds/README.md §4. UTF-8 JSON Lines, one object per line.
Personal data (PIPL): the ID number becomes ``person_key`` (HMAC-SHA256 with
the PII key) and the name is dropped; a quarantined record keeps both masked.
Nothing of either reaches the ParsedFile in clear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from corridor import config
from corridor.config import Limits
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


def _unique_record_id() -> Check:
    seen: dict[str, int] = {}  # record_id -> line of its first loaded occurrence

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


def parse(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> ParsedFile:
    """Read the file one line at a time (lines split on \\n only: a JSON string may hold U+2028)."""
    limits = limits or config.load().limits
    meta = meta_for("hr", path)
    parsed = ParsedFile("hr", path.name, sink=sink)
    loader = RowLoader(parsed, TABLE, fields(meta.period_end, pii_key), where=path.name, row_word="line",
                       constants={"file_month": meta.period_start, "file_version": 1},
                       record=masked, check=_unique_record_id(), limits=limits)
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
            line_no = lines.line_no
            line = line.removesuffix("\n").removesuffix("\r")
            if not line.strip():
                skipped += 1
                continue
            try:
                obj = json.loads(line, parse_constant=_no_constants)
            except (ValueError, RecursionError) as exc:
                reason = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
                loader.refuse(line_no, "invalid_json", f"the line is not valid JSON ({reason})", line)
                continue
            if not isinstance(obj, dict):
                loader.refuse(line_no, "invalid_json",
                              f"the line is a JSON {_JSON_TYPES.get(type(obj), 'value')}, not an object", line)
                continue
            if len(obj) > limits.fields:
                loader.refuse_record(line_no, "too_many_fields",
                                     f"has {len(obj):,} keys, over the limit of {limits.fields:,} (CORRIDOR_MAX_FIELDS)",
                                     {"record_head": _masked_head(line[:4096]), "record_bytes": len(line.encode())})
                continue
            loader.take(line_no, obj, obj)
    loader.note_skipped(skipped)
    return parsed
