"""Personal data (PIPL): the keyed pseudonym of a person, and masking for quarantine.

Only ``raw.hr_talents`` concerns people. The warehouse keeps a person as
``person_key`` = HMAC-SHA256(CORRIDOR_PII_KEY, normalised resident ID), never
the ID number or the name; a quarantined record keeps them masked.
"""

from __future__ import annotations

import hmac
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

# An 18-character resident ID anywhere in a text (\d also matches full-width digits).
_ID_SHAPE = re.compile(r"\d{17}[\dXx]")
# A key (escapes read: personal_field decides whether its value is personal) and its value in raw (possibly
# broken) JSON text: a double-quoted string with its escapes (\" \\ \uXXXX: an ASCII-only exporter writes a
# Chinese name as \uXXXX escapes), a single-quoted one or a bare value; the closing quote optional (a truncated
# line still gets masked).
_PII_FIELD = re.compile(r"""(["']((?:[^"'\\\n]|\\[^\n]){1,60})["']\s*:\s*)"""
                        r"""(?:"((?:[^"\\]|\\.?)*)("?)|'([^']*)('?)|([^"',}\]\s]*))""", re.DOTALL)
# One escape of a JSON string, or what is left of one at the end of a truncated line.
_JSON_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|u[0-9a-fA-F]{0,3}$|.|$)", re.DOTALL)
_JSON_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


# The keys a talent record's personal data may come under: the spec's ``name`` and ``id_number``, and what an
# exporter renaming its keys writes (case, spaces, underscores, full-width forms, the Chinese labels). A record
# under such keys fails the spec (its id_number is blank) and is quarantined: it keeps these values masked.
_NAME_KEYS = frozenset({"name", "姓名", "fullname", "personname", "realname"})
_ID_KEYS = frozenset({"idnumber", "idno", "idcard", "idcardno", "idcardnumber", "身份证", "身份证号", "身份证号码",
                      "证件号", "证件号码", "公民身份号码"})
_KEY_NOISE = re.compile(r"[\s_\-.]")


def personal_field(key: object) -> str | None:
    """``"name"`` or ``"id_number"`` when ``key`` names a person's name or ID number (``Name``, ``姓名``,
    ``ID_Number``, ``身份证号``, ``name `` …), else None."""
    folded = _KEY_NOISE.sub("", unicodedata.normalize("NFKC", str(key))).casefold()
    return "name" if folded in _NAME_KEYS else "id_number" if folded in _ID_KEYS else None


def person_key(id_number: str, key: bytes) -> str:
    """The pseudonym of a person: hex HMAC-SHA256 of the *normalised* ID number."""
    if not key:
        raise ValueError("the PII key is empty: set CORRIDOR_PII_KEY")
    return hmac.digest(key, id_number.encode("ascii"), "sha256").hex()


def person_keys(id_numbers: Iterable[str], key: bytes) -> list[str]:
    """:func:`person_key` of many normalised ID numbers: one keyed HMAC object copied per number, so the key is
    prepared once, not once per number (hr's 64,000 province records: 0.08 s instead of 0.12 s)."""
    if not key:
        raise ValueError("the PII key is empty: set CORRIDOR_PII_KEY")
    keyed = hmac.new(key, digestmod="sha256")
    out = []
    for id_number in id_numbers:
        h = keyed.copy()
        h.update(id_number.encode("ascii"))
        out.append(h.hexdigest())
    return out


def mask_id(value: str) -> str:
    """The first 6 characters (the issuing region) and 12 asterisks: ``330303************``."""
    value = str(value).strip()
    return value[:6] + "*" * 12 if len(value) > 6 else "*" * len(value)


def mask_name(value: str) -> str:
    """The first character and one asterisk per further character: ``张三`` -> ``张*``."""
    value = str(value).strip()
    return value[:1] + "*" * (len(value) - 1)


def mask_text(text: str) -> str:
    """``text`` with every resident-ID-shaped substring masked."""
    return _ID_SHAPE.sub(lambda m: mask_id(m[0]), text)


def mask_value(value: Any, kind: str | None = None) -> Any:
    """``value`` (a record, a sample row, a message, a GX result: nested dicts and lists) with a name or ID number
    under a personal key masked (:func:`personal_field`) and every ID shape elsewhere; ``kind`` ("name",
    "id_number") masks ``value`` itself as such."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {key: mask_value(item, personal_field(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(item, kind) for item in value]
    if kind == "id_number":
        return mask_id(str(value))
    if kind == "name":
        return mask_name(str(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int):  # an integer of an ID's shape: masked as text
        text = str(value)
        return value if mask_text(text) == text else mask_text(text)
    return value  # a float's digits are no ID (and a GX result's percentages must stay numbers)


def _json_string_value(body: str) -> str:
    """The characters of a JSON string's body (between its quotes), its escapes read; an escape cut short by
    the end of a truncated line, or a surrogate left unpaired, is one character ``*`` (it cannot be stored)."""
    def char(m: re.Match[str]) -> str:
        escape = m[0][1:]
        if escape.startswith("u") and len(escape) == 5:
            return chr(int(escape[1:], 16))
        if escape.startswith("u") or not escape:  # cut short
            return "\ufffd"
        return _JSON_SIMPLE_ESCAPES.get(escape, escape)

    value = _JSON_ESCAPE.sub(char, body)
    value = value.encode("utf-16", "surrogatepass").decode("utf-16", errors="replace")  # pairs joined
    return value.replace("\ufffd", "*")


def mask_json_text(text: str) -> str:
    """Raw JSON text (perhaps broken) with ``name``/``id_number`` values and ID shapes masked.

    A double-quoted value is read with its escapes (``"\\u5f20\\u4e09"`` is 张三, masked ``"张*"``) and
    written back as JSON; the rest of the text is left as it is, but for ID shapes (:func:`mask_text`).
    """
    def field(m: re.Match[str]) -> str:
        kind = personal_field(_json_string_value(m[2]) if "\\" in m[2] else m[2])
        if kind is None:  # another key: its value as it is (ID shapes masked below)
            return m[0]
        mask = mask_name if kind == "name" else mask_id
        if m[3] is not None:  # "…": the escapes read, the masked value written back as a JSON string body
            return m[1] + '"' + json.dumps(mask(_json_string_value(m[3])), ensure_ascii=False)[1:-1] + m[4]
        if m[5] is not None:  # '…' (not JSON, but a careless exporter's)
            return m[1] + "'" + mask(m[5]) + m[6]
        return m[1] + (m[7] if m[7] in ("null", "true", "false") else mask(m[7]))

    return mask_text(_PII_FIELD.sub(field, text))


__all__ = ["mask_id", "mask_json_text", "mask_name", "mask_text", "person_key", "person_keys", "personal_field"]
