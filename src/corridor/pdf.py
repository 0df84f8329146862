"""HTML to PDF with WeasyPrint and a font subset made for the page, importing nothing else of the warehouse.

The scorecards' PDF worker processes (`corridor.scorecards.publish`) run this
module only: they are sent the page's HTML (`corridor.scorecards.render_pdf`),
not the scorecard, and do not import the scorecards package (its data, XLSX
and database modules: ~20 MiB more per process). Without a worker the
publishing process calls `html_to_pdf` itself.

**The page's font.** `subset_fonts` cuts Noto Sans CJK SC (regular and bold,
`font_file`) down to the characters of the page's whole HTML (its text,
markup and stylesheet, so also the text the stylesheet generates, with
character references resolved), plus ASCII and the marks WeasyPrint may draw
itself (list bullets, the ellipsis of a cut caption, dashes), keeping every
glyph the fonts' layout features can reach from them and every table: the
page is shaped, measured and broken into lines exactly as with the whole font
(a province publication's 128 pages render pixel for pixel as before). The
PDF's stylesheet (print.css) names the subset (`SUBSET_FAMILY`, served to
WeasyPrint from memory as ``corridor-font:<weight>``) and then the installed
family, so a character the subset lacked would still come from the whole
font, never be dropped. The subset depends on the page alone, so a page gives
the same bytes whichever run or process renders it. Why: WeasyPrint otherwise
copies each ~20 MB font collection into every document and subsets it there
(~40 MiB and ~0.1 s per PDF); the page's subset is ~0.3 MB, made in ~0.03 s,
and the PDFs are ~190 instead of ~460 KB. Every other URL is refused (the
HTML is self-contained).
"""

from __future__ import annotations

import html as htmllib
import logging
import logging.handlers
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

FAMILY = "Noto Sans CJK SC"
SUBSET_FAMILY = f"{FAMILY} Subset"   # the @font-face family of print.css: `subset_fonts`' faces
FONT_URL = "corridor-font:"          # + weight: the URLs of print.css's @font-face rules
WEIGHTS = ("regular", "bold")
# kept in every subset whatever the page's text: ASCII (page and list numbers), bullets of lists, the ellipsis of a
# cut caption, dashes
ALWAYS_KEPT = frozenset(map(chr, range(0x20, 0x7F))) | frozenset("\u00a0\u2026\u2022\u25e6\u25aa\u2013\u2014")
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


# -- subsetting ----------------------------------------------------------------------------------------

_HB_CDEF = """
typedef struct hb_blob_t hb_blob_t; typedef struct hb_face_t hb_face_t; typedef struct hb_set_t hb_set_t;
typedef struct hb_subset_input_t hb_subset_input_t; typedef uint32_t hb_codepoint_t;
hb_blob_t *hb_blob_create_from_file_or_fail(const char *file_name);
void hb_blob_destroy(hb_blob_t *blob);
const char *hb_blob_get_data(hb_blob_t *blob, unsigned int *length);
hb_face_t *hb_face_create(hb_blob_t *blob, unsigned int index);
void hb_face_destroy(hb_face_t *face);
hb_blob_t *hb_face_reference_blob(hb_face_t *face);
void hb_set_add(hb_set_t *set, hb_codepoint_t codepoint);
void hb_set_clear(hb_set_t *set);
void hb_set_invert(hb_set_t *set);
hb_subset_input_t *hb_subset_input_create_or_fail(void);
void hb_subset_input_destroy(hb_subset_input_t *input);
hb_set_t *hb_subset_input_unicode_set(hb_subset_input_t *input);
hb_set_t *hb_subset_input_set(hb_subset_input_t *input, int set_type);
void hb_subset_input_set_flags(hb_subset_input_t *input, unsigned value);
hb_face_t *hb_subset_or_fail(hb_face_t *source, const hb_subset_input_t *input);
hb_set_t *hb_set_create(void);
void hb_set_destroy(hb_set_t *set);
int hb_set_next_range(const hb_set_t *set, hb_codepoint_t *first, hb_codepoint_t *last);
void hb_face_collect_unicodes(hb_face_t *face, hb_set_t *out);
"""
_SETS_DROP_TABLE_TAG, _SETS_NAME_ID, _SETS_LAYOUT_FEATURE_TAG = 3, 4, 6
_FLAGS_PASSTHROUGH_UNRECOGNIZED = 0x20


_HARFBUZZ_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _load_harfbuzz():
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(_HB_CDEF)
    try:
        return ffi, ffi.dlopen("libharfbuzz.so.0"), ffi.dlopen("libharfbuzz-subset.so.0")
    except OSError as exc:
        raise FontMissing(f"HarfBuzz's subsetter (libharfbuzz-subset0) is not installed: {INSTALL_HINT} ({exc})") \
            from None


def _harfbuzz():
    """(ffi, libharfbuzz, libharfbuzz-subset), loaded once per process. The lock matters: `lru_cache` does not
    hold other threads back while the first call runs, so two threads could each get an FFI of their own, and
    a HarfBuzz object made through one FFI is refused by the other ("hb_face_t * ... types are different")."""
    with _HARFBUZZ_LOCK:
        return _load_harfbuzz()


@contextmanager
def _face(ffi: Any, hb: Any, weight: str) -> Iterator[tuple[Any, str, int]]:
    """(face, path, index): the HarfBuzz face of ``weight``'s font (`font_file`), made through the caller's own
    ``ffi``/``hb`` (objects of one FFI cannot be handed to another) and destroyed on leaving."""
    path, index = font_file(weight)
    blob = hb.hb_blob_create_from_file_or_fail(path.encode())
    if blob == ffi.NULL:
        raise FontMissing(f"cannot read {path}: {INSTALL_HINT}")
    face = hb.hb_face_create(blob, index)
    try:
        yield face, path, index
    finally:
        hb.hb_face_destroy(face)
        hb.hb_blob_destroy(blob)


def unicode_ranges(weight: str = "regular") -> list[tuple[int, int]]:
    """The (first, last) code point ranges the face of ``weight`` maps to a glyph (its cmap, read by HarfBuzz in
    C: no ~45,000-entry dictionary in Python)."""
    ffi, hb, _ = _harfbuzz()
    with _face(ffi, hb, weight) as (face, _path, _index):
        unicodes = hb.hb_set_create()
        try:
            hb.hb_face_collect_unicodes(face, unicodes)
            first, last = ffi.new("hb_codepoint_t *", 0xFFFFFFFF), ffi.new("hb_codepoint_t *", 0xFFFFFFFF)
            ranges = []
            while hb.hb_set_next_range(unicodes, first, last):
                ranges.append((first[0], last[0]))
            return ranges
        finally:
            hb.hb_set_destroy(unicodes)


def subset_font(chars: set[str] | frozenset[str], weight: str = "regular") -> bytes:
    """The face of ``weight`` (OpenType, not a collection) with the glyphs of ``chars`` and of `ALWAYS_KEPT`.

    Every layout feature's glyphs reachable from them and every table are kept (the page's shaping, metrics and
    line breaks are those of the whole font); the glyphs are renumbered. The same characters give the same bytes."""
    ffi, hb, hbs = _harfbuzz()
    with _face(ffi, hb, weight) as (face, path, index):
        return _subset(ffi, hb, hbs, face, chars, f"{path} (face {index})")


def _subset(ffi: Any, hb: Any, hbs: Any, face: Any, chars: set[str] | frozenset[str], name: str) -> bytes:
    subset_input = hbs.hb_subset_input_create_or_fail()
    subset = out = ffi.NULL
    try:
        unicodes = hbs.hb_subset_input_unicode_set(subset_input)
        for cp in sorted({ord(ch) for ch in chars} | {ord(ch) for ch in ALWAYS_KEPT}):
            hb.hb_set_add(unicodes, cp)
        for which in (_SETS_LAYOUT_FEATURE_TAG, _SETS_NAME_ID):   # all features, all names (not the defaults)
            kept = hbs.hb_subset_input_set(subset_input, which)
            hb.hb_set_clear(kept)
            hb.hb_set_invert(kept)
        hb.hb_set_clear(hbs.hb_subset_input_set(subset_input, _SETS_DROP_TABLE_TAG))  # drop no table
        hbs.hb_subset_input_set_flags(subset_input, _FLAGS_PASSTHROUGH_UNRECOGNIZED)
        subset = hbs.hb_subset_or_fail(face, subset_input)
        if subset == ffi.NULL:
            raise RuntimeError(f"HarfBuzz could not subset {name}")
        out = hb.hb_face_reference_blob(subset)
        length = ffi.new("unsigned int *")
        data = hb.hb_blob_get_data(out, length)
        return ffi.unpack(data, length[0])
    finally:
        if out != ffi.NULL:
            hb.hb_blob_destroy(out)
        if subset != ffi.NULL:
            hb.hb_face_destroy(subset)
        hbs.hb_subset_input_destroy(subset_input)


def subset_fonts(html: str) -> dict[str, bytes]:
    """{weight: subset font} for every weight the PDF uses, from the characters of ``html`` (a page's whole HTML,
    as written and with its character references resolved)."""
    chars = set(html) | set(htmllib.unescape(html))
    return {weight: subset_font(chars, weight) for weight in WEIGHTS}


# -- the PDF ---------------------------------------------------------------------------------------------

def _fetcher(fonts: Mapping[str, bytes]):
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class PageFonts(URLFetcher):
        """Serves the page's fonts; refuses every other URL (and stops the rendering)."""

        def fetch(self, url, headers=None):
            if url.startswith(FONT_URL) and url[len(FONT_URL):] in fonts:
                return URLFetcherResponse(url, fonts[url[len(FONT_URL):]], {"Content-Type": "font/otf"})
            raise ValueError(f"scorecards are self-contained: refusing to fetch {url}")

    return PageFonts(fail_on_errors=True)


def html_to_pdf(html: str) -> bytes:
    """The PDF of ``html``, its ``corridor-font:<weight>`` URLs served from the page's `subset_fonts`."""
    from weasyprint import HTML

    return HTML(string=html, url_fetcher=_fetcher(subset_fonts(html))).write_pdf()


# -- in a worker process ---------------------------------------------------------------------------

def worker_init(queue) -> None:
    """A worker's log records go to ``queue`` (the publishing process forwards them to its loggers)."""
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)


def release_memory() -> None:
    """Give the memory of the page just rendered back to the system (a worker's RSS would otherwise stay at its
    largest page's: glibc keeps freed heap pages for reuse)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def worker_html_to_pdf(html: str) -> bytes:
    try:
        return html_to_pdf(html)
    finally:
        release_memory()
