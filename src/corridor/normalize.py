"""Normalisation of the values the feeds deliver (shared/feeds/README.md).

Pure functions: each takes a raw value (a ``str`` from CSV/JSON, or whatever
openpyxl gives for a cell: ``str``, ``int``, ``float``, ``datetime``) and
returns the normalised value, or raises :class:`NormalizeError` with a rule
code of :data:`corridor.feeds.base.RULES`.

A :class:`NormalizeError` message is phrased to follow the name of the field
it concerns, so a parser can prefix it with where the value came from:
``"LW_202103_v1.xlsx 企业认定 row 17: 统一社会信用代码" + " " + message``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import date, datetime, timedelta
from decimal import Decimal
from operator import mul
from typing import Any

from corridor.feeds.base import RULES


class NormalizeError(ValueError):
    """A value breaks a rule; ``message`` reads after the field's name."""

    def __init__(self, rule_code: str, message: str) -> None:
        if rule_code not in RULES:
            raise ValueError(f"unknown rule code {rule_code!r}")
        super().__init__(message)
        self.rule_code = rule_code
        self.message = message


# Whitespace as Unicode knows it (incl. U+3000 ideographic space, U+00A0),
# plus the invisible characters spreadsheets leave behind.
_SPACE = re.compile(r"[\s\u200b\ufeff]+")
_STRIP = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace()) + "\u200b\ufeff"

MISSING = "is blank but required"


def is_blank(value: Any) -> bool:
    """None, or a string of nothing but whitespace."""
    return value is None or (isinstance(value, str) and not value.strip(_STRIP))


def show(value: Any) -> str:
    """A value as a message quotes it: strings quoted (stray characters visible), dates ISO."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def as_text(value: Any) -> str:
    """Any cell value as the string it stands for (an integral float as an integer)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _squash(value: Any) -> str:
    """NFKC (full-width -> half-width, （）-> ()) and no whitespace at all."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", as_text(value)))


def _required(value: Any) -> str:
    """The squashed value; missing_value when there is nothing left."""
    s = "" if value is None else _squash(value)
    if not s:
        raise NormalizeError("missing_value", MISSING)
    return s


# -- text, codes, headers, accepted values -------------------------------------

def text(value: Any) -> str | None:
    """Free text (names, titles): surrounding whitespace stripped, nothing else; blank -> None.

    No NFKC: a name keeps its full-width punctuation (（）、·) as written.
    """
    if value is None:
        return None
    return as_text(value).strip(_STRIP) or None


def code(value: Any) -> str:
    """An identifier (平台编号, 证书编号, 贷款编号, record_id …): NFKC, no whitespace.

    Full-width characters and stray spaces must not split one business key
    into two. Case is kept. Blank -> missing_value.
    """
    return _required(value)


def header(value: Any) -> str:
    """A header cell (or sheet name) as compared: NFKC, no whitespace.

    ``孵化面积(平方米)``, ``孵化面积（平方米）`` and `` 孵化面积 （平方米）`` all
    become ``孵化面积(平方米)``.
    """
    return "" if value is None else _squash(value)


def choice(value: Any, accepted: Collection[str]) -> str:
    """One of the accepted values (after removing stray spaces); else invalid_value."""
    s = _required(value)
    if s not in accepted:
        raise NormalizeError("invalid_value", f"{show(value)} is not one of {', '.join(accepted)}")
    return s


_TRUE = frozenset({"true", "1", "yes", "y", "是"})
_FALSE = frozenset({"false", "0", "no", "n", "否"})


def parse_bool(value: Any) -> bool:
    """true/false, 是/否, yes/no, 1/0 (any case); else invalid_value."""
    if isinstance(value, bool):
        return value
    s = _required(value).lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise NormalizeError("invalid_value", f"{show(value)} is not a yes/no value (true/false, 是/否)")


# -- areas -----------------------------------------------------------------------

_AREA_NAMES: dict[str, tuple[str, str]] = {
    "LW": ("龙湾区", "龙湾"),
    "OH": ("瓯海区", "瓯海"),
    "YQ": ("乐清市", "乐清"),
    "RA": ("瑞安市", "瑞安"),
    "ZN": ("浙南产业集聚区", "浙南"),
    "OJK": ("瓯江口产业集聚区", "瓯江口"),
}
_AREAS: dict[str, str] = {
    name: area for area, names in _AREA_NAMES.items() for name in (area, *names)
}


def area_code(value: Any) -> str:
    """The area code (LW, OH, YQ, RA, ZN, OJK) of a code, full name or short name."""
    s = _required(value).upper()
    try:
        return _AREAS[s]
    except KeyError:
        raise NormalizeError(
            "unknown_area", f"{show(value)} is none of the six corridor areas ({', '.join(_AREA_NAMES)})"
        ) from None


# -- identifiers -------------------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_SHAPE = re.compile(f"[{USCC_ALPHABET}]{{18}}")


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character of the first 17 characters of a USCC."""
    if len(first17) != 17:
        raise ValueError(f"a USCC body has 17 characters, not {len(first17)}")
    try:
        total = sum(map(mul, map(_USCC_VALUE.__getitem__, first17), _USCC_WEIGHTS))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not in the GB 32100-2015 alphabet") from None
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc(value: Any) -> str:
    """A 统一社会信用代码: NFKC, no whitespace, upper case, GB 32100-2015 checked."""
    s = _required(value).upper()
    if not _USCC_SHAPE.fullmatch(s):
        raise NormalizeError(
            "invalid_uscc", f"{show(value)} is not 18 characters of the GB 32100-2015 alphabet")
    expected = uscc_check_char(s[:17])
    if s[17] != expected:
        raise NormalizeError(
            "invalid_uscc", f"{show(value)} fails the GB 32100-2015 check character (expected {expected!r})")
    return s


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


def id_check_char(first17: str) -> str:
    """The GB 11643-1999 check character of the first 17 digits of a resident ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("a resident ID body is 17 digits")
    return "10X98765432"[sum(map(mul, map(int, first17), _ID_WEIGHTS)) % 11]


def id_number(value: Any) -> str:
    """A 居民身份证号码: NFKC, no whitespace, ``x`` -> ``X``, GB 11643-1999 checked.

    Messages never quote the number: it is personal data.
    """
    s = _required(value).upper()
    if not _ID_SHAPE.fullmatch(s):
        raise NormalizeError("invalid_id_number",
                             f"is not 17 digits plus a check character (GB 11643-1999; {len(s)} characters)")
    if s[17] != id_check_char(s[:17]):
        raise NormalizeError("invalid_id_number", "fails the GB 11643-1999 check digit")
    return s


# -- dates -------------------------------------------------------------------------

EARLIEST = date(2015, 1, 1)
_EXCEL_EPOCH = date(1899, 12, 30)  # 1900 date system (serial 60 is Excel's phantom 1900-02-29)
_EXCEL_MAX = 2958465  # 9999-12-31
_YYYYMMDD_MIN, _YYYYMMDD_MAX = 10000101, 99991231  # a date written as the number 20210305
_DATE_PATTERNS = (
    # 2021-03-05, 2021/3/5, 2021.3.5 (one separator throughout), optionally with a time of day
    re.compile(r"(?P<y>[0-9]{4})(?P<sep>[-/.])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})"
               r"(?:[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?"),
    re.compile(r"(?P<y>[0-9]{4})\s*年\s*(?P<m>[0-9]{1,2})\s*月\s*(?P<d>[0-9]{1,2})\s*日?"),  # 2021年3月5日
    re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})"),  # 20210305
)
_MONTH = re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})|(?P<y2>[0-9]{4})[-/.年](?P<m2>[0-9]{1,2})月?")


def _read_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if 0 < value <= _EXCEL_MAX:
            return _EXCEL_EPOCH + timedelta(days=int(value))
        if _YYYYMMDD_MIN <= value <= _YYYYMMDD_MAX and value == int(value):
            # 20210305 typed into a cell (or a JSON value) is a number; no serial has eight digits
            return _read_date(str(int(value)))
        raise NormalizeError("invalid_date", f"{show(value)} is neither an Excel date serial nor a YYYYMMDD date")
    s = unicodedata.normalize("NFKC", as_text(value)).strip(_STRIP)
    for pattern in _DATE_PATTERNS:
        m = pattern.fullmatch(s)
        if m:
            try:
                return date(int(m["y"]), int(m["m"]), int(m["d"]))
            except ValueError:
                raise NormalizeError("invalid_date", f"{show(value)} is not a date of the calendar") from None
    raise NormalizeError("invalid_date", f"{show(value)} is not a readable date (e.g. 2021-03-05)")


def parse_date(value: Any, *, lo: date | None = EARLIEST, hi: date | None = None) -> date:
    """A date from a date/datetime, an Excel serial or a string in one of the spec's forms.

    Blank -> missing_value; unreadable -> invalid_date; outside [lo, hi]
    (None: unbounded) -> date_out_of_range.
    """
    if is_blank(value):
        raise NormalizeError("missing_value", MISSING)
    d = _read_date(value)
    if (lo is not None and d < lo) or (hi is not None and d > hi):
        shown = "" if isinstance(value, date) else f"{show(value)} = "
        raise NormalizeError(
            "date_out_of_range", f"{shown}{d.isoformat()} lies outside {lo or ''}..{hi or ''}")
    return d


def parse_month(value: Any) -> date:
    """A month (``202103``, ``2021-03``, ``2021年03月``, or a date) as its first day."""
    if is_blank(value):
        raise NormalizeError("missing_value", MISSING)
    if isinstance(value, date):
        return date(value.year, value.month, 1)
    m = _MONTH.fullmatch(_squash(value))
    if m:
        year, month = int(m["y"] or m["y2"]), int(m["m"] or m["m2"])
        if 1 <= month <= 12:
            return date(year, month, 1)
    raise NormalizeError("invalid_date", f"{show(value)} is not a month (YYYYMM)")


# -- numbers -------------------------------------------------------------------------

# Unit suffixes after NFKC (which turns ㎡ into "m2" and ％ into "%"), longest first,
# mapped to the unit they denote.
_UNIT_SUFFIXES = (("平方米", "㎡"), ("万元", "万元"), ("m2", "㎡"), ("元", "元"), ("%", "%"))
_SCALE = {("元", "万元"): Decimal("0.0001"), ("万元", "元"): Decimal(10000)}
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|[+-]?\.[0-9]+")


def _read_number(value: Any) -> tuple[Decimal, str | None]:
    """The number and the unit suffix it carried (None if none)."""
    if isinstance(value, bool):
        raise NormalizeError("invalid_number", f"{show(value)} is not a number")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))  # via str: no binary noise
    else:
        s = _squash(value)
        suffix = None
        for written, unit in _UNIT_SUFFIXES:
            if s.endswith(written):
                s, suffix = s[: -len(written)], unit
                break
        if not _NUMBER.fullmatch(s):
            raise NormalizeError("invalid_number", f"{show(value)} is not a number")
        return Decimal(s.replace(",", "")), suffix
    if not number.is_finite():
        raise NormalizeError("invalid_number", f"{show(value)} is not a number")
    return number, None


def parse_number(value: Any, *, unit: str | None = None, allow_negative: bool = False) -> Decimal:
    """A number in the column's ``unit`` (万元, 元, ㎡, % or None).

    Accepts thousands separators, full-width digits, surrounding spaces and a
    unit suffix: 元 in a 万元 column is divided by 10,000, 万元 in a 元 column
    multiplied by 10,000, 平方米 is ㎡; any other suffix -> invalid_number.
    Blank -> missing_value; negative (unless allowed) -> negative_amount.
    """
    if is_blank(value):
        raise NormalizeError("missing_value", MISSING)
    number, suffix = _read_number(value)
    if suffix is not None and suffix != unit:
        scale = _SCALE.get((suffix, unit))
        if scale is None:
            raise NormalizeError(
                "invalid_number", f"{show(value)} is in {suffix} but the column is in {unit or 'no unit'}")
        number *= scale
    if number < 0 and not allow_negative:
        raise NormalizeError("negative_amount", f"{show(value)} is negative")
    return number


__all__ = [
    "EARLIEST", "MISSING", "NormalizeError", "USCC_ALPHABET", "area_code", "as_text", "choice", "code", "header",
    "id_check_char", "id_number", "is_blank", "parse_bool", "parse_date", "parse_month", "parse_number",
    "show", "text", "uscc", "uscc_check_char",
]
