"""Inline SVG charts of a KPI's monthly series (no plotting library, no external resource).

`trend_svg` draws the actual value (solid, in the status colour) against the
paced target (dashed grey) over the months of the series, with the value
range and the first and last month as labels. The same SVG goes into the HTML
and the PDF (WeasyPrint renders inline SVG).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from markupsafe import Markup, escape

from corridor.scorecards.format import axis_value

FONT = "Noto Sans CJK SC"
TARGET_COLOUR = "#8a8f98"
GRID_COLOUR = "#d9dce1"


def _points(series, index: int) -> list[tuple[int, float | None]]:
    return [(i, None if row[index] is None else float(row[index])) for i, row in enumerate(series)]


def _segments(points, x, y) -> list[str]:
    """Polyline point lists, broken where a value is missing."""
    segments, current = [], []
    for i, v in points:
        if v is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(f"{x(i):.1f},{y(v):.1f}")
    if current:
        segments.append(current)
    return [" ".join(s) for s in segments]


def trend_svg(series: list[tuple[date, Decimal | None, Decimal | None]], *, colour: str, measure_type: str,
              width: int = 260, height: int = 96, title: str = "", font_family: str = FONT) -> Markup:
    """A small line chart: actual (solid) vs paced target (dashed) per month (labels in ``font_family``)."""
    left, right, top, bottom = 40, 8, 8, 18
    plot_w, plot_h = width - left - right, height - top - bottom
    actual, paced = _points(series, 1), _points(series, 2)
    values = [v for _, v in actual + paced if v is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" font-family="{escape(font_family)}" font-size="8">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    if not values:
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" '
                     f'fill="{TARGET_COLOUR}">无数据</text></svg>')
        return Markup("".join(parts))
    low, high = min(0.0, min(values)), max(values)
    if high <= low:
        high = low + 1.0
    high += (high - low) * 0.08
    n = max(len(series) - 1, 1)

    def x(i: int) -> float:
        return left + plot_w * i / n

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    # frame, zero line and value labels
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{GRID_COLOUR}"/>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
                 f'stroke="{GRID_COLOUR}"/>')
    if low < 0:
        parts.append(f'<line x1="{left}" y1="{y(0):.1f}" x2="{left + plot_w}" y2="{y(0):.1f}" '
                     f'stroke="{GRID_COLOUR}" stroke-dasharray="2 2"/>')
    top_value = max(values)
    for v in sorted({low, top_value}):
        parts.append(f'<text x="{left - 3}" y="{y(v) + 3:.1f}" text-anchor="end" fill="#555">'
                     f"{escape(axis_value(v, measure_type))}</text>")
    first, last = series[0][0], series[-1][0]
    parts.append(f'<text x="{left}" y="{height - 4}" fill="#555">{first:%Y-%m}</text>')
    parts.append(f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end" fill="#555">{last:%Y-%m}</text>')
    # paced target, then actual on top
    for seg in _segments(paced, x, y):
        parts.append(f'<polyline points="{seg}" fill="none" stroke="{TARGET_COLOUR}" stroke-width="1.2" '
                     f'stroke-dasharray="4 3"/>')
    for seg in _segments(actual, x, y):
        parts.append(f'<polyline points="{seg}" fill="none" stroke="{escape(colour)}" stroke-width="1.8" '
                     f'stroke-linejoin="round"/>')
    last_actual = next(((i, v) for i, v in reversed(actual) if v is not None), None)
    if last_actual:
        parts.append(f'<circle cx="{x(last_actual[0]):.1f}" cy="{y(last_actual[1]):.1f}" r="2.4" '
                     f'fill="{escape(colour)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
