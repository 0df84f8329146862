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
