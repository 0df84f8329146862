"""The PDF's font: Noto Sans CJK SC (Debian ``fonts-noto-cjk``), embedded as a subset.

``scripts/install-system-deps.sh`` installs it (with ``libharfbuzz-subset0``,
HarfBuzz's subsetter, which WeasyPrint and `corridor.pdf.subset_fonts` use).
Rendering a PDF without the font would silently fall back to a font without
Chinese glyphs, so `require_font` refuses. `missing_glyphs` names the
characters of a text the fonts (regular and bold) cannot show. The font's
look-up and the page's font subset live in `corridor.pdf` (what a PDF worker
process runs).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from corridor.pdf import FAMILY, INSTALL_HINT, SUBSET_FAMILY, FontMissing, font_file, unicode_ranges

log = logging.getLogger(__name__)

__all__ = ["FAMILY", "INSTALL_HINT", "SUBSET_FAMILY", "FontMissing", "font_file", "missing_glyphs", "require_font"]


def require_font() -> None:
    """Raise FontMissing unless the PDF's font family is installed (regular and bold)."""
    font_file("regular")
    font_file("bold")


def _cmap_bits(weight: str) -> bytearray:
    """One bit per code point (U+0000..U+10FFFF, 136 KiB) that the font of ``weight`` maps to a glyph."""
    bits = bytearray(0x110000 // 8)
    for first, last in unicode_ranges(weight):
        for cp in range(first, last + 1):
            bits[cp >> 3] |= 1 << (cp & 7)
    return bits


@lru_cache(maxsize=1)
def _coverage() -> bytes:
    """The code points both the regular and the bold font have a glyph for, as a bitmap.

    A bitmap rather than a set of ~45,000 ints: 136 KiB instead of ~25 MiB kept in the publishing process (the
    fonts' cmaps are read by HarfBuzz, not fontTools: reading them into dictionaries raised the process's peak by
    ~50 MiB)."""
    regular, bold = _cmap_bits("regular"), _cmap_bits("bold")
    return (int.from_bytes(regular, "little") & int.from_bytes(bold, "little")).to_bytes(len(regular), "little")


def missing_glyphs(text: str) -> set[str]:
    """The characters of ``text`` (other than whitespace and controls) the fonts (regular and bold) cannot show."""
    covered = _coverage()
    return {ch for ch in set(text)
            if ord(ch) > 0x20 and not ch.isspace() and not covered[ord(ch) >> 3] & (1 << (ord(ch) & 7))}
