"""The same figure reads the same in the PDF/HTML and the XLSX."""

from __future__ import annotations

import io
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import openpyxl

from corridor.scorecards import load_scorecard
from corridor.scorecards.render_html import appendix, render_html
from corridor.scorecards.render_xlsx import render_xlsx
from tests.conftest import PASSED


def test_a_projects_investment_reads_with_two_decimals_on_the_page_as_in_the_xlsx(built_warehouse):
    """累计完成投资（万元） is an amount of money: the XLSX shows every value with two decimals (#,##0.00), the page
    dropped trailing zeros, so one column read "19,818.29", "25,472.2", "481.3" and "0" (LW's 2022 year-end),
    and 25,472.2 on the page was 25,472.20 in the XLSX."""
    sc = load_scorecard(built_warehouse.url, "year_end", date(2022, 1, 1), "LW", PASSED)
    rows = appendix(sc.projects).rows
    amounts = [Decimal(r["cumulative_investment_10k_yuan"]) for r in rows]
    assert any(f"{a.normalize():f}" != f"{a:.2f}" for a in amounts)  # an amount with a trailing zero or none
    page = render_html(sc)
    for a in amounts:
        assert f'<td class="num">{a.quantize(Decimal("0.01"), ROUND_HALF_UP):,.2f}</td>' in page, a
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(sc)))
    sheet = book["开工重点项目"]
    header = [c.value for c in sheet[3]]
    col = header.index("累计完成投资（万元）")
    formats = {row[col].number_format for row in sheet.iter_rows(min_row=4) if row[col].value is not None}
    assert formats == {"#,##0.00"}


def test_the_status_thresholds_read_the_same_in_the_xlsx_as_on_the_page(built_warehouse):
    """The thresholds are configuration (seed kpi_status_thresholds). The page writes them as they are
    (≥ 102.5%), the XLSX's note rounded them to whole percents: "≥ 102% 超前，≥ 98% 按进度", a rule other than the
    one its statuses follow (a completion of 97.6% is 滞后 there)."""
    sc = load_scorecard(built_warehouse.url, "monthly", date(2022, 12, 1), "LW", PASSED)
    sc.status_thresholds = (Decimal("1.025"), Decimal("0.975"))
    page = render_html(sc)
    assert "完成率 ≥ 102.5% 为超前，≥ 97.5% 为按进度" in page
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(sc)))
    notes = [v for row in book["指标完成情况"].iter_rows(values_only=True) for v in row
             if isinstance(v, str) and v.startswith("完成率 = ")]
    assert len(notes) == 1 and "完成率 ≥ 102.5% 超前，≥ 97.5% 按进度" in notes[0], notes


def test_a_completion_just_under_a_threshold_never_reads_as_the_threshold(built_warehouse):
    """A completion of 94.96 % is 滞后 (under 95 %): shown rounded to one decimal it read "95.0%" beside 滞后, and
    the note below says ≥ 95.0% is 按进度. It shows as many decimals as its side of the threshold needs, on the
    page and in the XLSX (its number format); other completions keep one decimal."""
    sc = load_scorecard(built_warehouse.url, "monthly", date(2022, 12, 1), "LW", PASSED)
    lagging = next(k for k in sc.kpis if k.completion is not None)
    lagging.completion = sc.status_thresholds[1] - Decimal("0.0004")
    page = render_html(sc)
    assert '<td class="num" data-label="完成率">94.96%</td>' in page
    assert '<td class="num" data-label="完成率">95.0%</td>' not in page
    others = [k for k in sc.kpis if k.completion is not None and k is not lagging]
    assert others and all(f'data-label="完成率">{(k.completion * 100).quantize(Decimal("0.1"), ROUND_HALF_UP):,.1f}%</td>' in page for k in others
                          if abs(k.completion - sc.status_thresholds[1]) > Decimal("0.001")
                          and abs(k.completion - sc.status_thresholds[0]) > Decimal("0.001"))
    sheet = openpyxl.load_workbook(io.BytesIO(render_xlsx(sc)))["指标完成情况"]
    formats = {row[0].value: row[6].number_format for row in sheet.iter_rows() if row[6].data_type == "n"}
    assert formats[lagging.code] == "0.00%"
    assert {formats[k.code] for k in others} == {"0.0%"}
