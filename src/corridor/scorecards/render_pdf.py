"""The scorecard as PDF (A4), rendered by WeasyPrint from the scorecard's HTML.

Fonts: the stylesheet names only Noto Sans CJK SC; WeasyPrint embeds a subset
of it (every font in the file is embedded: `pdffonts` shows ``emb yes``).
Deterministic: the same scorecard gives the same bytes (no creation date, no
random identifiers), so a re-render can be checked against a published sha256.
Nothing is fetched: the HTML is self-contained and any URL is refused.
"""

from __future__ import annotations

import html as htmllib
import logging
import re

from corridor.scorecards.data import Scorecard
from corridor.scorecards.fonts import missing_glyphs, require_font
from corridor.scorecards.render_html import render_html

log = logging.getLogger(__name__)

_TAGS = re.compile(r"<[^>]+>")


def _refuse_urls(url: str, *args, **kwargs):
    raise ValueError(f"scorecards are self-contained: refusing to fetch {url}")


def render_pdf(sc: Scorecard) -> bytes:
    from weasyprint import HTML

    require_font()
    html = render_html(sc, medium="pdf")
    text = htmllib.unescape(_TAGS.sub(" ", html.split("</style>", 1)[-1]))
    gaps = missing_glyphs(text)
    if gaps:
        log.warning("%s: characters without a glyph in the PDF font (shown from a fallback font, if any): %s",
                    sc.full_title, " ".join(sorted(gaps)))
    return HTML(string=html, url_fetcher=_refuse_urls).write_pdf()
