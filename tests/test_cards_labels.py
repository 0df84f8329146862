"""The scorecards' Chinese labels: each trend chart names its KPI's unit (HTML, PDF and XLSX alike)."""

from __future__ import annotations

import re
import zipfile
from datetime import date
from io import BytesIO

from corridor.scorecards import load_scorecard
from corridor.scorecards.render_html import render_html
from corridor.scorecards.render_xlsx import render_xlsx
from tests.conftest import PASSED


def _unit_in_name(name: str, unit: str) -> bool:
    """Whether the indicator's name states the unit itself, as an annotation: "创业孵化面积 (万平方米)",
    "知识产权质押融资额 (亿元, 年)"."""
    return any(unit in (part.strip() for part in notes.split(","))
               for notes in re.findall(r"[(（]([^)）]*)[)）]", name))


def test_every_trend_chart_names_its_kpis_unit(built_warehouse):
    """A chart's caption adds the unit when the name does not state it: "K04 有效高新技术企业数（家）". It was added
    only when the unit's characters were nowhere in the name, so 人 in 人才 and 项 in 项目 passed for units: the
    charts of K06 (人) and K15 (项) were the only count KPIs shown without one, in the HTML, the PDF and the
    XLSX's chart titles."""
    sc = load_scorecard(built_warehouse.url, "year_end", date(2022, 1, 1), "LW", PASSED)
    for k in sc.kpis:
        if k.measure_type == "rate":   # a rate's values read as percentages ("105%"): no unit in its caption
            assert k.label == k.name
        elif _unit_in_name(k.name, k.unit):
            assert k.label == k.name, k.label
        else:
            assert k.label == f"{k.name}（{k.unit}）", k.label
    labels = {k.code: k.label for k in sc.kpis}
    assert labels["K06"] == "累计引育高层次人才（人）"
    assert labels["K15"] == '"卡脖子"核心技术攻关项目 (年)（项）'
    assert labels["K09"] == "创业孵化面积 (万平方米)" and labels["K17"] == "知识产权质押融资额 (亿元, 年)"
    page = render_html(sc)
    for code in ("K06", "K15"):
        assert f'<span class="code">{code}</span> {labels[code]}</figcaption>'.replace('"卡', "&#34;卡").replace(
            '子"', "子&#34;") in page
    with zipfile.ZipFile(BytesIO(render_xlsx(sc))) as book:
        charts = "".join(book.read(n).decode("utf-8") for n in book.namelist() if n.startswith("xl/charts/"))
    assert "K06 累计引育高层次人才（人）" in charts and "核心技术攻关项目 (年)（项）" in charts
