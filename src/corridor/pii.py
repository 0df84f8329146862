"""Personal data (PIPL): the keyed pseudonym of a person, and masking for quarantine.

Only ``raw.hr_talents`` concerns people. The warehouse keeps a person as
``person_key`` = HMAC-SHA256(CORRIDOR_PII_KEY, normalised resident ID), never
the ID number or the name; a quarantined record keeps them masked.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable

# An 18-character resident ID anywhere in a text (\d also matches full-width digits).
_ID_SHAPE = re.compile(r"\d{17}[\dXx]")
# The value of a "name" or "id_number" key in raw (possibly broken) JSON text:
# quoted or not, closing quote optional (a truncated line still gets masked).
_PII_FIELD = re.compile(r"""(["'](name|id_number)["']\s*:\s*["']?)([^"',}\\]*)""")


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


def mask_json_text(text: str) -> str:
    """Raw JSON text (perhaps broken) with ``name``/``id_number`` values and ID shapes masked."""
    def field(m: re.Match[str]) -> str:
        mask = mask_name if m[2] == "name" else mask_id
        return m[1] + mask(m[3])

    return mask_text(_PII_FIELD.sub(field, text))


__all__ = ["mask_id", "mask_json_text", "mask_name", "mask_text", "person_key", "person_keys"]
