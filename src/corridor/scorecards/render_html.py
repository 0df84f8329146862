"""The scorecard as HTML: one self-contained file (inline CSS and SVG, no external resource).

The same template renders the PDF's HTML (``medium="pdf"``): one layout, two
media. Jinja2 autoescapes every value, so a name such as ``<script>`` or
``=HYPERLINK(...)`` is shown as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from corridor.scorecards import format as fmt
from corridor.scorecards.charts import FONT, trend_svg
from corridor.scorecards.data import GROUP_NAMES, STATUS, VERSIONS_ZH, Scorecard
from corridor.scorecards.fonts import SUBSET_FAMILY

OFFICE = "环大罗山科创走廊建设领导小组办公室"
STATUS_ORDER = [(STATUS[s][0], STATUS[s][1], STATUS[s][2]) for s in ("ahead", "on_track", "behind", "no_target", None)]


def _template_text(name: str) -> str:
    return resources.files("corridor.scorecards").joinpath("templates", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(value=fmt.value, target=fmt.target, percent=fmt.percent, completion=fmt.completion, day=fmt.day, iso=fmt.iso,
                       money=fmt.money_10k, plain=fmt.plain)
    return env


@lru_cache(maxsize=1)
def _template():
    return _environment().from_string(_template_text("scorecard.html.j2"))


@lru_cache(maxsize=2)
def stylesheet(medium: str = "html") -> str:
    """The package's own stylesheets (trusted: inserted into <style> unescaped): shared + screen or print."""
    return _template_text("scorecard.css") + "\n" + _template_text("print.css" if medium == "pdf" else "screen.css")


# What a page shows of the appendices (HTML and PDF). Past these limits the page lists the first rows
# (names) and says how many there are in all, by area; the XLSX always has every row. So the time and
# memory of laying out a scorecard do not grow with the number of detail rows. The limits keep a
# province scorecard at 5-9 A4 pages (at 200 rows / 100 names: 5-25, year-end 13-25, ~2x the layout time and
# a larger peak per rendering process; benchmarks/README.md): the PDF is the briefing, the XLSX the list.
APPENDIX_ROWS = 30         # rows of the platforms and projects tables
NAMES_PER_GROUP = GROUP_NAMES  # enterprise names per area × certification type (at most what the data fetched)


@dataclass(frozen=True)
class Appendix:
    rows: list[dict]                   # what the page lists
    total: int                         # rows in all (the XLSX has them)
    by_area: list[tuple[str, int]]     # (area name, rows) in the plan's order, when truncated

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)


def appendix(rows: Iterable[dict], limit: int | None = None) -> Appendix:
    """What the page shows of an appendix: at most ``limit`` (default APPENDIX_ROWS) rows, counts by area.

    One pass over ``rows`` (a list or `DetailRows`, read from its file), keeping the first rows only."""
    limit = APPENDIX_ROWS if limit is None else limit
    shown: list[dict] = []
    counts: dict[str, int] = {}
    for row in rows:
        if len(shown) < limit:
            shown.append(row)
        counts[row["area_name"]] = counts.get(row["area_name"], 0) + 1
    total = sum(counts.values())
    return Appendix(shown, total, list(counts.items()) if total > len(shown) else [])


def certification_groups(sc: Scorecard, limit: int | None = None
                         ) -> list[tuple[str, list[tuple[str, list[str], int]]]]:
    """[(area name, [(certification type, [enterprise names], count of enterprises)])] in the plan's order.

    At most ``limit`` (default NAMES_PER_GROUP) names per group; the count is always of every enterprise
    (``Scorecard.certification_groups``: the first names taken as the rows stream, counted by the server in
    `data._certifications`)."""
    limit = NAMES_PER_GROUP if limit is None else limit
    return [(area, [(ctype, names[:limit], n) for ctype, names, n in groups])
            for area, groups in sc.certification_groups]


def _rank_width(score) -> str:
    if score is None:
        return "0"
    return f"{min(Decimal(score) / Decimal('1.2'), Decimal(1)) * 100:.1f}"


def render_html(sc: Scorecard, medium: str = "html") -> str:
    # the PDF's charts name the page's font subset first, as its stylesheet does (print.css)
    font_family = f"{SUBSET_FAMILY}, {FONT}" if medium == "pdf" else FONT
    charts = {k.code: trend_svg(k.series, colour=k.status_colour, measure_type=k.measure_type,
                                title=f"{k.code} {k.name} 月度走势", font_family=font_family)
              for k in sc.kpis}
    return _template().render(
        sc=sc, medium=medium, css=Markup(stylesheet(medium)), charts=charts, office=OFFICE, status_order=STATUS_ORDER,
        certification_groups=certification_groups(sc), rank_width=_rank_width,
        platforms=appendix(sc.platforms), projects=appendix(sc.projects), versions=VERSIONS_ZH)
