"""How numbers and dates read on a scorecard (HTML, PDF, e-mail; the XLSX keeps numbers as numbers)."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

DASH = "—"


def _q(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _plain(value: Decimal, max_places: int) -> str:
    """Thousands separators, at most max_places decimals, no trailing zeros."""
    text = f"{_q(value, max_places):,.{max_places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def value(v, measure_type: str) -> str:
    """An actual value: counts as integers (2 decimals if fractional), sums with 2 decimals, rates in %."""
    if v is None:
        return DASH
    d = Decimal(v)
    if measure_type == "rate":
        return f"{_q(d * 100, 1):,.1f}%"
    if measure_type == "sum":
        return f"{_q(d, 2):,.2f}"
    return _plain(d, 2)


def target(v, measure_type: str) -> str:
    """A target or paced target (paced counts are fractional: up to 2 decimals)."""
    if v is None:
        return DASH
    d = Decimal(v)
    if measure_type == "rate":
        return f"{_q(d * 100, 1):,.1f}%"
    return _plain(d, 2)


def percent(ratio) -> str:
    if ratio is None:
        return DASH
    return f"{_q(Decimal(ratio) * 100, 1):,.1f}%"


def completion_places(ratio, thresholds) -> int:
    """The decimals a completion ratio is shown with (as a percentage): one, or as many as it takes for the
    figure not to cross a status threshold by rounding (0.9496 against 95 %: "94.96%", not "95.0%" beside 滞后)."""
    if ratio is None:
        return 1
    d = Decimal(ratio)
    for places in range(1, 7):
        shown = _q(d * 100, places) / 100
        if all((d >= t) == (shown >= t) for t in thresholds):
            return places
    return 6


def completion(ratio, thresholds) -> str:
    """A completion ratio as a percentage that reads on the same side of every status threshold as the ratio."""
    if ratio is None:
        return DASH
    places = completion_places(ratio, thresholds)
    return f"{_q(Decimal(ratio) * 100, places):,.{places}f}%"


def axis_value(v: float, measure_type: str) -> str:
    if measure_type == "rate":
        return f"{v * 100:.0f}%"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return _plain(Decimal(str(round(v, 2))), 2)


def day(d: date | None) -> str:
    """2022年12月31日."""
    if d is None:
        return DASH
    return f"{d.year}年{d.month}月{d.day}日"


def iso(d: date | None) -> str:
    return DASH if d is None else d.isoformat()


def money_10k(v) -> str:
    """An amount (万元): always two decimals, as the XLSX's #,##0.00 shows it (25,472.20, not 25,472.2)."""
    return DASH if v is None else f"{_q(Decimal(v), 2):,.2f}"


def plain(v) -> str:
    """A measurement such as a progress percentage: at most two decimals, no trailing zeros (79, 37.5)."""
    return DASH if v is None else _plain(Decimal(v), 2)
