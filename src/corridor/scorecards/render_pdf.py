"""The scorecard as PDF (A4), rendered by WeasyPrint from the scorecard's HTML.

`pdf_html` makes the PDF's HTML (``medium="pdf"``) in the process that has
the scorecard, with every character the PDF's font cannot show (regular or
bold; `fonts.missing_glyphs`) written as its code point, "〔U+2A6A5〕", and a
warning naming it and where it occurs: a PDF never shows a missing glyph (a
box), and shows the same whatever other fonts the machine has (the XLSX and
the HTML keep the character);
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
import unicodedata

from corridor.pdf import html_to_pdf
from corridor.scorecards.data import Scorecard
from corridor.scorecards.fonts import missing_glyphs, require_font
from corridor.scorecards.render_html import render_html

log = logging.getLogger(__name__)

_TAGS = re.compile(r"<[^>]+>")


_CONTEXTS = 3  # texts named per character by the warning


def _drawn(ch: str) -> bool:
    """Whether a character is drawn at all: not a format character (zero-width space and joiners, soft hyphen)
    nor a variation selector, which the layout leaves out (no box) when the font has no glyph for them."""
    cp = ord(ch)
    return unicodedata.category(ch) != "Cf" and not (0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF)


def code_point(ch: str) -> str:
    """How the PDF writes a character its font has no glyph for: 〔U+2A6A5〕."""
    return f"〔U+{ord(ch):04X}〕"


def _where(texts: list[str], ch: str) -> str:
    """The texts of the page (a name, a word) that hold ``ch``: the first few, and how many in all."""
    found = list(dict.fromkeys(part for text in texts for part in re.split(r"[\s、；，。：]+", text) if ch in part))
    more = f" (+{len(found) - _CONTEXTS} more)" if len(found) > _CONTEXTS else ""
    return "、".join(found[:_CONTEXTS]) + more


def pdf_html(sc: Scorecard) -> str:
    """The PDF's HTML of ``sc``: all `corridor.pdf.html_to_pdf` needs.

    A character the PDF's font has no glyph for is written as its code point (`code_point`), with a warning."""
    require_font()
    html = render_html(sc, medium="pdf")
    texts = [htmllib.unescape(t) for t in _TAGS.split(html.split("</style>", 1)[-1])]
    gaps = {ch for ch in missing_glyphs(" ".join(texts)) if _drawn(ch)}
    if gaps:
        for ch in sorted(gaps):
            log.warning("%s: %s (U+%04X) has no glyph in the PDF's font: the PDF shows %s instead (the XLSX and the "
                        "HTML keep the character), in: %s", sc.full_title, ch, ord(ch), code_point(ch), _where(texts, ch))
        html = html.translate({ord(ch): code_point(ch) for ch in gaps})
    return html


def render_pdf(sc: Scorecard) -> bytes:
    return html_to_pdf(pdf_html(sc))
