"""The scorecard as PDF (A4), rendered by WeasyPrint from the scorecard's HTML.

`pdf_html` makes the PDF's HTML (``medium="pdf"``) in the process that has
the scorecard, checked for characters the font cannot show;
`corridor.pdf.html_to_pdf` lays it out with the page's own subset of Noto
Sans CJK SC, there or in a PDF worker process, which is sent only this HTML
(~70 KB for a province year-end ``ALL``, not the ~30,000 detail rows the
scorecard holds for its XLSX).

Fonts: the stylesheet names the page's subset, then the installed Noto Sans
CJK SC; WeasyPrint embeds a subset of what the page uses (`pdffonts` shows
``emb yes``). Deterministic: the same scorecard gives the same bytes (no
creation date, no random identifiers, a font subset made from the page
alone), so a re-render can be checked against a published sha256. Nothing is
fetched: the HTML is self-contained and any URL but the page's fonts is refused.
"""

from __future__ import annotations

import html as htmllib
import logging
import re

from corridor.pdf import html_to_pdf
from corridor.scorecards.data import Scorecard
from corridor.scorecards.fonts import missing_glyphs, require_font
from corridor.scorecards.render_html import render_html

log = logging.getLogger(__name__)

_TAGS = re.compile(r"<[^>]+>")


def pdf_html(sc: Scorecard) -> str:
    """The PDF's HTML of ``sc``: all `corridor.pdf.html_to_pdf` needs."""
    require_font()
    html = render_html(sc, medium="pdf")
    text = htmllib.unescape(_TAGS.sub(" ", html.split("</style>", 1)[-1]))
    gaps = missing_glyphs(text)
    if gaps:
        log.warning("%s: characters without a glyph in the PDF font (shown from a fallback font, if any): %s",
                    sc.full_title, " ".join(sorted(gaps)))
    return html


def render_pdf(sc: Scorecard) -> bytes:
    return html_to_pdf(pdf_html(sc))
