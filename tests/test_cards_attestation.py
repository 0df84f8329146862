"""The scorecards' data-quality attestation tells the truth about what the page shows."""

from __future__ import annotations

from datetime import date

from corridor.scorecards import load_scorecard
from corridor.scorecards.completeness import completeness_by_area
from corridor.scorecards.render_html import render_html
from tests.conftest import PASSED
from tests.test_scorecards import return_arrives, withhold_return

YEAR_2022 = date(2022, 1, 1)
DECEMBER = date(2022, 12, 1)


def test_an_areas_year_end_ranking_is_provisional_while_another_areas_return_is_missing(warehouse_copy):
    """The year-end edition ranks the six areas against each other (年度比拼): LW's rank and the scores it is
    compared with depend on YQ's returns as much as on LW's. With YQ's December return missing, LW's year-end
    scorecard said 报送完整 / 本期所需报送均已到位 (its completeness looked at LW's own returns only), and no
    final edition followed once the return came (LW's edition was not provisional): the ranking LW's officials
    held was never corrected. The monthly and quarterly editions, which show no other area, keep the own-return
    rule."""
    url = warehouse_copy
    withhold_return(url, "YQ", DECEMBER)
    lw = load_scorecard(url, "year_end", YEAR_2022, "LW", PASSED)
    assert [r.area_code for r in lw.ranking if r.area_code == "YQ"] == ["YQ"]   # the page shows YQ's rank
    assert lw.provisional
    assert any(line.startswith("乐清市 片区月报：2022年12月") for line in lw.completeness.missing), \
        lw.completeness.missing
    page = render_html(lw)
    assert "临时数据" in page and "乐清市 片区月报：2022年12月" in page
    # without a ranking an area's scorecard depends on its own returns only
    assert not load_scorecard(url, "monthly", DECEMBER, "LW", PASSED).provisional
    assert not load_scorecard(url, "quarterly", date(2022, 10, 1), "LW", PASSED).provisional
    # the rule the follow-up reads: LW's year-end is provisional now, final once YQ's return is in
    assert not completeness_by_area(url, "year", YEAR_2022, ["LW"])["LW"].publishable
    return_arrives(url, "YQ", DECEMBER)
    assert completeness_by_area(url, "year", YEAR_2022, ["LW"])["LW"].publishable
    assert not load_scorecard(url, "year_end", YEAR_2022, "LW", PASSED).provisional


def test_the_attestation_says_which_versions_of_the_returns_the_figures_use(built_warehouse):
    """The figures use the latest version of each return loaded before the build (a restatement rewrites
    history: kpis.md), delivered after the period, as every return is (a month's return comes the month after).
    The attestation said "指标按统计期末（2021年8月31日）口径计算，以截至该日最新报送版本为准": the versions
    delivered by the period end, which is none for a monthly return, and not LW's August 2021 restatement
    (LW_202108_v2) that its figures do use. HTML, PDF (the same template) and the XLSX's 数据质量 sheet now say
    it."""
    import io

    import openpyxl

    from corridor.scorecards.render_xlsx import render_xlsx

    assert (built_warehouse.landing / "district" / "LW_202108_v2.xlsx").is_file()  # a restatement of the month
    sc = load_scorecard(built_warehouse.url, "monthly", date(2021, 8, 1), "LW", PASSED)
    statement = "采用本版发布时已入库的各报送最新版本（含统计期后的补报与更正）"
    page = render_html(sc)
    assert "以截至该日最新报送版本为准" not in page
    assert f"指标按统计期末（2021年8月31日）口径计算，{statement}。" in page
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(sc)))
    rows = {r[0]: r[1] for r in book["数据质量"].iter_rows(values_only=True) if r and r[0]}
    assert rows["报送版本"] == statement
