"""What an official reads on paper: nothing of the PDF's text runs past the page's edge."""

from __future__ import annotations

import re
import subprocess
from datetime import date

from corridor.scorecards import load_scorecard
from corridor.scorecards.render_pdf import render_pdf
from tests.conftest import PASSED

LONG_NAME = "Wenzhou" + "InternationalAdvancedMaterialsTechnologyInnovationCooperationCentre" * 2 + "CoLtd"


def _words_past_the_edge(pdf: bytes, tmp_path) -> list[str]:
    path = tmp_path / "card.pdf"
    path.write_bytes(pdf)
    html = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    past = []
    width = None
    for line in html.splitlines():
        if m := re.search(r'<page width="([\d.]+)"', line):
            width = float(m[1])
        elif m := re.search(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)"[^>]*>(.*)</word>', line):
            if float(m[2]) > width + 0.5:
                past.append(f"{m[3]} (x {m[1]}..{m[2]} of {width})")
    return past


def test_a_long_latin_name_wraps_inside_the_page(built_warehouse, tmp_path):
    """Chinese text wraps anywhere; a name written in Latin letters (a foreign-invested enterprise, a host
    organisation's English name) has no break opportunity but its spaces, and ran past the page's right edge in
    the certified enterprises' list and the platforms' table (their cells never wrapped it)."""
    sc = load_scorecard(built_warehouse.url, "year_end", date(2022, 1, 1), "LW", PASSED)
    name, by_type = sc.certification_groups[0]
    ctype, names, count = by_type[0]
    by_type[0] = (ctype, [LONG_NAME, *names[1:]], count)
    platforms = list(sc.platforms)
    assert platforms, "LW's 2022 year-end lists its new platforms"
    platforms[0] = {**platforms[0], "platform_name": LONG_NAME, "host_name": LONG_NAME}
    sc.platforms = platforms
    past = _words_past_the_edge(render_pdf(sc), tmp_path)
    assert past == [], past
