"""The PDF's font: Noto Sans CJK SC (Debian ``fonts-noto-cjk``), embedded as a subset.

``scripts/install-system-deps.sh`` installs it (with ``libharfbuzz-subset0``,
which WeasyPrint uses to subset a CJK font in a fraction of a second instead of
tens of seconds with fontTools). Rendering a PDF without the font would
silently fall back to a font without Chinese glyphs, so `require_font` refuses.
`missing_glyphs` names the characters of a text the fonts (regular and bold) cannot show.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from functools import lru_cache

log = logging.getLogger(__name__)

FAMILY = "Noto Sans CJK SC"
INSTALL_HINT = "run scripts/install-system-deps.sh (Debian: apt-get install fonts-noto-cjk)"


class FontMissing(RuntimeError):
    pass


@lru_cache(maxsize=4)
def font_file(weight: str = "regular") -> tuple[str, int]:
    """(path, index in the collection) of the font fontconfig gives for the family."""
    if not shutil.which("fc-match"):
        raise FontMissing(f"fontconfig's fc-match is not installed: {INSTALL_HINT}")
    pattern = f"{FAMILY}:lang=zh-cn" + (":weight=bold" if weight == "bold" else "")
    out = subprocess.run(["fc-match", "-f", "%{file}|%{index}|%{family}", pattern],
                         capture_output=True, text=True, check=False).stdout
    path, _, rest = out.partition("|")
    index, _, families = rest.partition("|")
    if FAMILY not in families.split(","):
        raise FontMissing(f"font {FAMILY!r} is not installed (fontconfig offers {families or 'nothing'}): "
                          f"{INSTALL_HINT}")
    return path, int(index or 0)


def require_font() -> None:
    """Raise FontMissing unless the PDF's font family is installed (regular and bold)."""
    font_file("regular")
    font_file("bold")


def _cmap_bits(weight: str) -> bytearray:
    """One bit per code point (U+0000..U+10FFFF, 136 KiB) that the font of ``weight`` maps to a glyph."""
    from fontTools.ttLib import TTFont

    path, index = font_file(weight)
    font = TTFont(path, fontNumber=index, lazy=True)
    try:
        cmap = font.getBestCmap()
    finally:
        font.close()
    bits = bytearray(0x110000 // 8)
    for cp in cmap:
        bits[cp >> 3] |= 1 << (cp & 7)
    return bits


@lru_cache(maxsize=1)
def _coverage() -> bytes:
    """The code points both the regular and the bold font have a glyph for, as a bitmap.

    A bitmap rather than a set of ~45,000 ints: 136 KiB instead of ~25 MiB kept in every
    rendering process (the cmap dictionaries are read, combined and dropped)."""
    regular, bold = _cmap_bits("regular"), _cmap_bits("bold")
    return (int.from_bytes(regular, "little") & int.from_bytes(bold, "little")).to_bytes(len(regular), "little")


def missing_glyphs(text: str) -> set[str]:
    """The characters of ``text`` (other than whitespace and controls) the fonts (regular and bold) cannot show."""
    covered = _coverage()
    return {ch for ch in set(text)
            if ord(ch) > 0x20 and not ch.isspace() and not covered[ord(ch) >> 3] & (1 << (ord(ch) & 7))}
