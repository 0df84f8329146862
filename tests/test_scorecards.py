"""Scorecards: rendered from the built city demo warehouse, read back with poppler and openpyxl,
published into a private copy of the warehouse, mailed to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import html
import itertools
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from markupsafe import escape

from corridor.scorecards import (
    GateBlocked,
    check_gate,
    editions_due,
    load_scorecard,
    normalise_gate,
    publish,
    render,
)
from tests.conftest import PASSED, passed
from tests.mailbox import Inbox, free_port, smtp_connection_json

BLOCKED = {"blocking": True, "outcome": "failed", "suites": 9, "expectations": 120, "failed": 3, "warnings": 0,
           "data_docs": None}
YEAR_2022 = date(2022, 1, 1)
FORMULA_NAME = '=HYPERLINK("http://x","y")'


def require_poppler() -> None:
    """`make test` installs poppler-utils (scripts/install-system-deps.sh): never skip, fail with the fix."""
    missing = [tool for tool in ("pdftotext", "pdffonts") if not shutil.which(tool)]
    assert not missing, f"{missing} missing: run scripts/install-system-deps.sh"


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _pdffonts(path: Path) -> list[dict]:
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()[2:]  # header and dashes
    fonts = []
    for line in lines:
        # name type encoding emb sub uni object ID (type may contain spaces: parse from the right)
        parts = line.split()
        fonts.append({"name": parts[0], "emb": parts[-5], "sub": parts[-4], "uni": parts[-3]})
    return fonts


def _pdftotext(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def _catalogue_names(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("select indicator_name from kpi.kpi_catalogue order by kpi_code")]


def _editions(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        if conn.execute("select to_regclass('ops.scorecard_editions')").fetchone()[0] is None:
            return []
        return conn.execute(
            "select edition, period_start, area_code, edition_no, format, file_path, sha256"
            " from ops.scorecard_editions order by area_code, edition_no, format").fetchall()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- a real SMTP server (tests/mailbox.py) ----------------------------------------------------

@pytest.fixture
def smtp_server(monkeypatch, tmp_path):
    """aiosmtpd on 127.0.0.1 (no TLS, no login), the Airflow connection smtp_default pointing at it,
    and a recipients file for ALL and LW."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json(port, "scorecards@corridor.example"))
    monkeypatch.delenv("CORRIDOR_SMTP_CONN_ID", raising=False)
    recipients = tmp_path / "recipients.yml"
    recipients.write_text(
        "sender: 走廊数据平台 <platform@corridor.example>\n"
        "recipients:\n  ALL: [office@corridor.example]\n  LW: [longwan@corridor.example, lw2@corridor.example]\n",
        encoding="utf-8")
    monkeypatch.setenv("CORRIDOR_RECIPIENTS_FILE", str(recipients))
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def no_smtp(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    monkeypatch.delenv("CORRIDOR_SMTP_CONN_ID", raising=False)


# -- schedule ------------------------------------------------------------------------------------

def test_editions_due_follow_the_plans_rhythm_in_shanghai_time():
    jan = datetime(2023, 1, 12, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert editions_due(jan) == [("monthly", date(2022, 12, 1)), ("quarterly", date(2022, 10, 1)),
                                 ("year_end", date(2022, 1, 1))]
    assert editions_due(datetime(2023, 2, 12, 1, 0, tzinfo=UTC)) == [("monthly", date(2023, 1, 1))]
    assert editions_due(datetime(2023, 7, 12, 1, 0, tzinfo=UTC)) == [("monthly", date(2023, 6, 1)),
                                                                    ("quarterly", date(2023, 4, 1))]
    # 31 March 20:00 UTC is already 1 April in Shanghai
    assert editions_due(datetime(2023, 3, 31, 20, 0, tzinfo=UTC))[1] == ("quarterly", date(2023, 1, 1))
    assert editions_due(jan, editions="year_end") == [("year_end", date(2022, 1, 1))]


def test_the_quality_reports_own_summary_is_read_as_a_gate():
    report = {"blocking": False, "passed": True, "data_docs_path": "/docs/index.html", "suites": [{"suite": "x"}],
              "totals": {"suites": 12, "expectations": 150, "passed": 148, "warnings": 2, "failed": 0}}
    assert normalise_gate(report) == {"blocking": False, "outcome": "passed_with_warnings", "suites": 12,
                                      "expectations": 150, "failed": 0, "warnings": 2,
                                      "data_docs": "/docs/index.html"}
    assert check_gate(PASSED)["outcome"] == "passed"
    for blocked in (BLOCKED, {"outcome": "passed"}, None):  # no explicit `blocking: False` blocks
        with pytest.raises(GateBlocked):
            check_gate(blocked)


# -- rendering -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def year_end_files(built_warehouse, tmp_path_factory) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("scorecards")
    return {area: render(built_warehouse.url, edition="year_end", period_start=YEAR_2022, area=area, gate=PASSED,
                         out_dir=out / area)
            for area in ("ALL", "LW")}


def test_render_writes_pdf_xlsx_and_self_contained_html_for_all_and_an_area(year_end_files, built_warehouse):
    import openpyxl

    for files in year_end_files.values():
        assert set(files) == {"pdf", "xlsx", "html"}
        assert files["pdf"].read_bytes().startswith(b"%PDF-")
        wb = openpyxl.load_workbook(files["xlsx"])
        assert wb.sheetnames[:3] == ["指标完成情况", "月度走势", "走势图"]
        assert {"年度比拼", "新认定平台", "新获认定企业", "开工重点项目", "指标口径", "数据质量"} <= set(wb.sheetnames)
        page = files["html"].read_text(encoding="utf-8")
        assert "环大罗山科创走廊" in page and "年度比拼" in page
        assert page.count("<svg") == 18  # one monthly trend per KPI
        # self-contained: no external stylesheet, script, image or font
        assert not re.search(r"<(link|script|img|iframe)\b", page)
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
        assert "url(" not in page
    all_page = year_end_files["ALL"]["html"].read_text(encoding="utf-8")
    lw_page = year_end_files["LW"]["html"].read_text(encoding="utf-8")
    assert "全走廊" in all_page and "龙湾区（本片区）" in lw_page


def test_kpi_values_in_xlsx_are_numbers_equal_to_the_warehouse(year_end_files, built_warehouse):
    import openpyxl

    with psycopg.connect(built_warehouse.url) as conn:
        expected = dict(conn.execute(
            "select kpi_code, actual_value from kpi.kpi_values"
            " where area_code = 'LW' and grain = 'year' and period_start = %s", (YEAR_2022,)).fetchall())
    ws = openpyxl.load_workbook(year_end_files["LW"]["xlsx"])["指标完成情况"]
    header = next(r for r in range(1, 20) if ws.cell(r, 1).value == "编号")
    seen = {}
    for r in range(header + 1, header + 19):
        code, actual = ws.cell(r, 1).value, ws.cell(r, 4)
        assert ws.cell(r, 7).data_type == "n" or ws.cell(r, 7).value is None
        if actual.value is not None:
            assert actual.data_type == "n"
        seen[code] = actual.value
    assert set(seen) == set(expected)
    for code, value in expected.items():
        assert (seen[code] is None) == (value is None)
        if value is not None:
            assert seen[code] == pytest.approx(float(value))


def test_pdf_text_has_the_chinese_title_and_kpi_names_and_every_font_is_embedded(year_end_files, built_warehouse):
    from corridor.scorecards.fonts import missing_glyphs

    require_poppler()
    names = _catalogue_names(built_warehouse.url)
    for area, files in year_end_files.items():
        text = _pdftotext(files["pdf"])
        flat = _squeeze(text)
        assert "环大罗山科创走廊建设指标完成情况" in flat
        assert "2022年度" in flat and "年度比拼" in flat
        missing_names = [n for n in names if _squeeze(n) not in flat]
        assert not missing_names, f"{area}: KPI names not in the PDF text: {missing_names}"
        assert "数据质量声明" in flat and "年度比拼排名" in flat
        assert not missing_glyphs(text)
        fonts = _pdffonts(files["pdf"])
        assert fonts, "no fonts in the PDF"
        assert all(f["emb"] == "yes" for f in fonts), fonts
        assert all("Noto-Sans-CJK-SC" in f["name"] for f in fonts), fonts


# the PDF's tables and their header cells (thead), in order; the ranking's bar column has no header text
TABLE_HEADERS = {
    "KPI": ["编号", "指标", "单位", "实际值", "目标", "进度目标", "完成率", "状态"],
    "ranking": ["名次", "片区", "综合得分", "计分指标数"],
    "platforms": ["片区", "平台编号", "平台名称", "类别", "级别", "依托单位", "认定日期", "期末状态"],
    "projects": ["片区", "项目编号", "项目名称", "类别", "开始日期", "期末状态", "累计完成投资（万元）", "形象进度"],
}
A4_RIGHT_MARGIN = 595.28 - 14 / 25.4 * 72  # print.css: A4, 14 mm margins (points)
CELL_PADDING = 2 * 0.45 * 8  # two cells' padding apart (0.45em each side), at the smallest table font (8pt)


def _pdf_words(path: Path) -> list[list[tuple[float, float, float, float, str]]]:
    """Each page's words as (xMin, yMin, xMax, yMax, text), from `pdftotext -bbox`."""
    out = subprocess.run(["pdftotext", "-bbox", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                         check=True).stdout
    pages = []
    for page in out.split("<page ")[1:]:
        pages.append([(float(a), float(b), float(c), float(d), html.unescape(t)) for a, b, c, d, t in re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', page)])
    return pages


def _header_rows(words, headers: list[str]) -> list[list[tuple[float, float, str]]]:
    """Every header row of a table on a page: [(left, right, text)] per header cell, a wrapped header's lines
    joined top to bottom (the words below its first line, within its column)."""
    lines: dict[float, list] = {}
    for w in words:
        lines.setdefault(round(w[1], 1), []).append(w)
    rows = []
    for line in lines.values():
        line.sort()
        if len(line) != len(headers) or not all(h.startswith(w[4]) for w, h in zip(line, headers, strict=True)):
            continue
        height = line[0][3] - line[0][1]
        cells = []
        for i, (w, h) in enumerate(zip(line, headers, strict=True)):
            right_bound = line[i + 1][0] if i + 1 < len(line) else A4_RIGHT_MARGIN + 1
            below = sorted((b for b in words if w[1] + 1 < b[1] < w[1] + 3 * height
                            and w[0] - 1 <= (b[0] + b[2]) / 2 < right_bound), key=lambda b: b[1])
            text, left, right = w[4], w[0], w[2]
            for b in below:
                if text == h:
                    break
                text, left, right = text + b[4], min(left, b[0]), max(right, b[2])
            cells.append((left, right, text))
        rows.append(cells)
    return rows


def test_every_pdf_table_header_fits_its_cell(year_end_files):
    """A header wider than its column was drawn into the next one ("累计完成投资（万元）" over "形象进度", glyphs
    over glyphs, in every PDF with started projects): no two words of a page overlap, each header is extracted
    whole, in order, and the headers of a row are at least two cells' padding apart, the last within the page's
    margin (so none runs out of its cell)."""
    require_poppler()
    for area, files in year_end_files.items():
        pages = _pdf_words(files["pdf"])
        for number, words in enumerate(pages, 1):  # no text is drawn over other text, anywhere
            overlapping = [(a[4], b[4]) for i, a in enumerate(words) for b in words[i + 1:]
                           if min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5]
            assert not overlapping, f"{area}, page {number}: words drawn over each other: {overlapping}"
        for table, headers in TABLE_HEADERS.items():
            rows = [row for words in pages for row in _header_rows(words, headers)]
            assert rows, f"{area}: no header row of the {table} table found"
            for row in rows:
                assert [text for _, _, text in row] == headers, (area, table, row)
                for (_, right, text), (left, _, after) in itertools.pairwise(row):
                    assert left - right >= CELL_PADDING - 0.5, \
                        f"{area}, {table} table: {text!r} runs into {after!r} ({left - right:.1f} pt apart)"
                assert row[-1][1] <= A4_RIGHT_MARGIN + 0.5, (area, table, row[-1])


def test_missing_glyphs_names_the_characters_the_regular_or_bold_font_cannot_show():
    from corridor.scorecards.fonts import missing_glyphs

    assert missing_glyphs("环大罗山科创走廊 ▲●▼○— （）、。 A-z 0-9 %") == set()
    assert missing_glyphs("走廊\U0001F600\U00020000 x") == {"\U0001F600", "\U00020000"}


def test_monthly_and_quarterly_editions_render_without_ranking(built_warehouse, tmp_path):
    monthly = render(built_warehouse.url, edition="monthly", period_start=date(2022, 11, 1), area="OH", gate=None,
                     out_dir=tmp_path)
    page = monthly["html"].read_text(encoding="utf-8")
    assert "2022年11月" in page and "月度例会" in page and "年度比拼排名" not in page
    assert "未执行（未提供数据质量检查结果）" in page
    quarterly = render(built_warehouse.url, edition="quarterly", period_start=date(2022, 7, 1), area="ALL",
                       gate=PASSED, out_dir=tmp_path)
    assert "2022年第三季度" in quarterly["html"].read_text(encoding="utf-8")
    assert {p.name for p in tmp_path.iterdir()} >= {
        "corridor-scorecard_2022-11_monthly_OH.pdf", "corridor-scorecard_2022Q3_quarterly_ALL.xlsx"}


def test_an_areas_scorecard_states_its_own_target_and_the_corridors_as_such(built_warehouse):
    """An area's KPI table showed its share of the target (LW K01: 3.33) while its footnote and the XLSX's 目标说明
    and 指标口径 said the corridor's "2022年底前 ≥ 20家" as if it were the area's."""
    import io

    import openpyxl

    from corridor.scorecards.render_html import render_html
    from corridor.scorecards.render_xlsx import render_xlsx

    month = date(2020, 1, 1)
    expected = {  # LW: an equal sixth of an allocated target; K03 (a rate) is every area's as the corridor's
        "ALL": {"K01": "2022年底前 ≥ 20家", "K03": "每年 ≥ 30%", "K12": "每年 10个", "K17": "仅监测，不设目标"},
        "LW": {"K01": "本片区2022年底前 ≥ 3.33家（分解目标）；走廊2022年底前 ≥ 20家",
               "K03": "本片区与走廊均为每年 ≥ 30%",
               "K12": "本片区每年 1.67个（分解目标）；走廊每年 10个",
               "K17": "仅监测，不设目标"},
    }
    for area, targets in expected.items():
        sc = load_scorecard(built_warehouse.url, "monthly", month, area, PASSED)
        assert str(next(k for k in sc.kpis if k.code == "K01").target)[:4] == ("20" if area == "ALL" else "3.33")
        page = html.unescape(render_html(sc))
        wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(sc)))
        kpi_sheet, definitions = wb["指标完成情况"], wb["指标口径"]
        stated = {row[0]: row[8] for row in kpi_sheet.iter_rows(values_only=True) if row[0] in targets}
        defined = {row[0]: row[3] for row in definitions.iter_rows(values_only=True) if row[0] in targets}
        assert stated == targets and defined == targets, area
        for code, text in targets.items():
            assert re.search(rf"<b>{code} [^<]*</b>（单位：[^；]*；目标：{re.escape(text)}）", page), (area, code)
        if area != "ALL":
            assert "目标：2022年底前 ≥ 20家" not in page


def test_a_rates_unit_and_each_kpis_pacing_read_the_same_in_every_part(built_warehouse):
    """K03 (a rate) showed "%" in the table but "比率" in the footnote and the XLSX's 单位 columns, and the note
    said "年度目标按当年月份分解" though K03, an annual target, is not paced (its paced target is its target)."""
    import io

    import openpyxl

    from corridor.scorecards.render_html import render_html
    from corridor.scorecards.render_xlsx import render_xlsx

    sc = load_scorecard(built_warehouse.url, "monthly", date(2022, 11, 1), "LW", PASSED)
    kpis = {k.code: k for k in sc.kpis}
    assert kpis["K03"].target_kind == "annual" and kpis["K03"].paced_target == kpis["K03"].target  # not paced
    assert kpis["K12"].paced_target < kpis["K12"].target                                           # paced
    page = html.unescape(render_html(sc))
    assert re.search(r'<td class="code">K03</td>\s*<td class="name">[^<]*<sup[^>]*>\d+</sup></td>\s*'
                     r'<td class="unit">%</td>', page)
    assert re.search(r"<b>K03 [^<]*</b>（单位：%；", page)
    assert "比率" not in page
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(sc)))
    assert [row[2] for row in wb["指标完成情况"].iter_rows(values_only=True) if row[0] == "K03"] == ["%"]
    assert [row[2] for row in wb["指标口径"].iter_rows(values_only=True) if row[0] == "K03"] == ["%"]
    note = next(p for p in re.findall(r'<p class="note">([^<]*)</p>', page) if p.startswith("目标："))
    assert ("进度目标：期末应达值，累计目标自2020年1月起按月线性分解，K03（年度目标）不分解（即目标本身），"
            "K12、K15（年度目标）按当年月份分解；") in note, note


def test_a_period_before_the_kpi_window_is_refused_as_such(built_warehouse):
    """A quarter before the KPI window was refused as "not complete in the warehouse: the data's as-of month has
    not reached its end", which is not why."""
    from corridor.scorecards import PeriodNotAvailable

    with pytest.raises(PeriodNotAvailable, match=r"lies before the KPI window, which starts in 2020-01"):
        load_scorecard(built_warehouse.url, "quarterly", date(2019, 10, 1), "ALL", PASSED)
    with pytest.raises(PeriodNotAvailable, match=r"as-of month has not reached its end"):  # after the data
        load_scorecard(built_warehouse.url, "monthly", date(2023, 1, 1), "LW", PASSED)


def test_rendering_is_deterministic(built_warehouse, tmp_path):
    first = render(built_warehouse.url, edition="quarterly", period_start=date(2022, 10, 1), area="ZN",
                   gate=PASSED, out_dir=tmp_path / "a")
    second = render(built_warehouse.url, edition="quarterly", period_start=date(2022, 10, 1), area="ZN",
                    gate=PASSED, out_dir=tmp_path / "b")
    for fmt in ("pdf", "xlsx", "html"):
        assert first[fmt].read_bytes() == second[fmt].read_bytes(), fmt


# -- formula injection -----------------------------------------------------------------------------

def _certify_in_lw(url: str, certificate_no: str, uscc: str, name: str) -> None:
    """A 高新技术企业 certificate granted on 2022-01-01 to ``name`` in LW, written straight into the mart."""
    with psycopg.connect(url) as conn:
        conn.execute(
            """
            insert into marts.fct_certifications
                (certificate_key, certificate_no, uscc, enterprise_name, area_code, certification_type, granted_date,
                 valid_until, revoked_date, is_revoked, valid_from, valid_to, is_never_valid, report_month, ledger_id,
                 source_row)
            values ('高新技术企业:' || %(no)s || ':' || %(uscc)s, %(no)s, %(uscc)s, %(name)s, 'LW',
                    '高新技术企业', date '2022-01-01',
                    date '2024-12-31', null, false, date '2022-01-01', date '2024-12-31', false,
                    date '2022-06-01', 0, 0)
            """, {"no": certificate_no, "uscc": uscc, "name": name})


def test_formula_like_enterprise_name_stays_text_in_xlsx_and_html(warehouse_copy, tmp_path):
    import openpyxl

    _certify_in_lw(warehouse_copy, "TEST-FORMULA-1", "91330300TESTFORMUL", FORMULA_NAME)
    # granted on the year's first day: listed among the first names of its group, which the page shows
    # (at most NAMES_PER_GROUP names per group; the XLSX has every row)
    files = render(warehouse_copy, edition="year_end", period_start=YEAR_2022, area="LW", gate=PASSED,
                   out_dir=tmp_path)

    ws = openpyxl.load_workbook(files["xlsx"])["新获认定企业"]
    cells = [c for row in ws.iter_rows() for c in row if c.value == FORMULA_NAME]
    assert len(cells) == 1
    assert cells[0].data_type == "s"     # a string, not a formula
    assert cells[0].quotePrefix          # and marked as text for Excel and LibreOffice
    with zipfile.ZipFile(files["xlsx"]) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in z.read(name) and b"<f " not in z.read(name), name

    page = files["html"].read_text(encoding="utf-8")
    assert str(escape(FORMULA_NAME)) in page             # =HYPERLINK(&#34;http://x&#34;,&#34;y&#34;)
    assert FORMULA_NAME not in page                      # only ever escaped
    assert FORMULA_NAME in html.unescape(page)
    assert not re.search(r"href\s*=\s*[\"']?http://x", page)


RARE_NAME = "龘鑫智造有限公司"   # 龘 (U+9F98): in Noto Sans CJK SC, in no template, label or other name


def _embedded_fonts_and_glyphs(pdf: bytes) -> tuple[list, dict[str, int]]:
    """(the font programs embedded in ``pdf`` as fontTools fonts, {character: glyph id} of its ToUnicode maps)."""
    import io
    import zlib

    from fontTools.ttLib import TTFont

    fonts, glyphs = [], {}
    for match in re.finditer(rb"stream\r?\n", pdf):
        start = match.end()
        end = pdf.find(b"endstream", start)
        try:
            data = zlib.decompressobj().decompress(pdf[start:end])
        except zlib.error:
            continue
        if data[:4] == b"OTTO":
            fonts.append(TTFont(io.BytesIO(data)))
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
            for gid, text in re.findall(rb"<([0-9a-f]+)> <([0-9a-f]+)>", block):
                glyphs[bytes.fromhex(text.decode()).decode("utf-16-be")] = int(gid, 16)
    return fonts, glyphs


def test_threads_that_load_harfbuzz_together_share_one_ffi():
    """publish lays out pages from a thread pool: threads that ask for HarfBuzz first, at the same time, must
    get one FFI. Two would make a face one thread's FFI cannot take ("hb_face_t * ... types are different",
    seen under Airflow when a face was opened through a second call for HarfBuzz)."""
    import threading

    from corridor import pdf

    errors: list[str] = []
    results: list[object] = []

    def first_use(i: int) -> None:
        start.wait()
        try:
            results.append(pdf.unicode_ranges("regular")[:1] if i % 2 else len(pdf.subset_font({"中"}, "regular")))
        except Exception as exc:  # noqa: BLE001 - collected and shown below
            errors.append(repr(exc))

    for _ in range(5):
        pdf._load_harfbuzz.cache_clear()   # each round is a process's first use again
        start = threading.Barrier(6)
        threads = [threading.Thread(target=first_use, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [], errors[:3]
    assert len(results) == 30 and all(results)


def test_a_character_only_the_data_uses_is_drawn_from_the_pages_own_font_subset(warehouse_copy, tmp_path):
    import io

    from fontTools.pens.boundsPen import BoundsPen
    from fontTools.ttLib import TTFont

    from corridor.pdf import subset_font
    from corridor.scorecards.render_html import _template_text

    require_poppler()
    templates = "".join(_template_text(n) for n in ("scorecard.html.j2", "scorecard.css", "print.css"))
    assert "龘" not in templates
    # a subset made from the templates' text (or any fixed list) would not have it
    naive = subset_font(set(templates), "regular")
    assert 0x9F98 not in TTFont(io.BytesIO(naive)).getBestCmap()
    _certify_in_lw(warehouse_copy, "TEST-RARE-1", "91330300TESTRARE01", RARE_NAME)
    files = render(warehouse_copy, edition="year_end", period_start=YEAR_2022, area="LW", gate=PASSED,
                   out_dir=tmp_path)

    assert RARE_NAME in _squeeze(_pdftotext(files["pdf"]))
    # every glyph from the page's subset (not from a fallback font), embedded
    fonts = _pdffonts(files["pdf"])
    assert fonts and all(f["emb"] == "yes" and "Noto-Sans-CJK-SC-Subset" in f["name"] for f in fonts), fonts
    embedded, glyphs = _embedded_fonts_and_glyphs(files["pdf"].read_bytes())
    assert len(embedded) == len(fonts)
    gid = glyphs["龘"]
    outlines = []
    for font in embedded:
        order = font.getGlyphOrder()
        if gid < len(order):
            pen = BoundsPen(font.getGlyphSet())
            font.getGlyphSet()[order[gid]].draw(pen)
            outlines.append(pen.bounds)
    assert any(bounds is not None for bounds in outlines), "龘 has no outline in the embedded fonts"


UNCOVERED_NAME = "温州\U0002A6A5科技有限公司"  # 𪚥 (U+2A6A5): Noto Sans CJK SC (the PDF's font) has no glyph for it


def test_a_character_the_pdf_font_lacks_is_written_as_its_code_point_in_the_pdf_only(warehouse_copy, tmp_path,
                                                                                     caplog):
    """A character no font of the PDF has was drawn as a box (the notdef glyph) while pdftotext still extracted
    it, and publication only logged a warning. The PDF writes it as its code point, the XLSX and the HTML keep it,
    and the warning names it and the text it is in."""
    import openpyxl

    from corridor.scorecards.fonts import missing_glyphs

    require_poppler()
    assert missing_glyphs(UNCOVERED_NAME) == {"\U0002A6A5"}
    _certify_in_lw(warehouse_copy, "TEST-NOGLYPH-1", "91330300TESTNOGLY1", UNCOVERED_NAME)
    # a zero-width space is not drawn at all, with or without a glyph: left as it is
    _certify_in_lw(warehouse_copy, "TEST-NOGLYPH-2", "91330300TESTNOGLY2", "温州\u200b智造有限公司")
    with caplog.at_level("WARNING", logger="corridor.scorecards"):
        files = render(warehouse_copy, edition="year_end", period_start=YEAR_2022, area="LW", gate=PASSED,
                       out_dir=tmp_path)

    text = _squeeze(_pdftotext(files["pdf"]))
    assert "温州〔U+2A6A5〕科技有限公司" in text
    assert "\U0002A6A5" not in text
    assert "温州智造有限公司" in text.replace("\u200b", "") and "U+200B" not in text
    fonts = _pdffonts(files["pdf"])
    assert fonts and all(f["emb"] == "yes" and "Noto-Sans-CJK-SC-Subset" in f["name"] for f in fonts), fonts
    _, glyphs = _embedded_fonts_and_glyphs(files["pdf"].read_bytes())
    assert glyphs and 0 not in glyphs.values(), "a character is drawn with the notdef glyph"
    warnings = [r.getMessage() for r in caplog.records if "U+2A6A5" in r.getMessage()]
    assert len(warnings) == 1 and UNCOVERED_NAME in warnings[0] and "〔U+2A6A5〕" in warnings[0], warnings
    assert not [r for r in caplog.records if "200B" in r.getMessage()]

    assert UNCOVERED_NAME in files["html"].read_text(encoding="utf-8")
    ws = openpyxl.load_workbook(files["xlsx"])["新获认定企业"]
    assert [c.value for row in ws.iter_rows() for c in row if "\U0002A6A5" in str(c.value)] == [UNCOVERED_NAME]


def test_the_pdf_worker_module_imports_nothing_of_the_scorecards_package():
    import sys

    code = ("import sys, corridor.pdf; "
            "print(sorted(m for m in sys.modules if m.startswith('corridor.scorecards') or m == 'psycopg'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- publishing ------------------------------------------------------------------------------------

def test_scheduled_year_end_email_reaches_the_smtp_server_with_pdf_and_xlsx(warehouse_copy, tmp_path, smtp_server):
    out = tmp_path / "out"
    # the January run of the publish DAG (09:00 Shanghai on the 12th)
    [(edition, period)] = editions_due(datetime(2023, 1, 12, 1, 0, tzinfo=UTC), editions="year_end")
    result = publish(warehouse_copy, out, gate=passed(warehouse_copy),
                     edition=edition, period_start=period, areas=["ALL", "LW"])

    assert result.smtp_configured is True and result.emails_sent == 2
    envelopes = {tuple(sorted(e.rcpt_tos)): e for e in smtp_server.envelopes}
    assert set(envelopes) == {("office@corridor.example",), ("longwan@corridor.example", "lw2@corridor.example")}
    assert all(e.mail_from == "scorecards@corridor.example" for e in smtp_server.envelopes)
    recorded = {(area, fmt): (Path(path), sha) for _, _, area, _, fmt, path, sha in _editions(warehouse_copy)}
    for message in smtp_server.messages():
        assert "环大罗山科创走廊" in message["Subject"] and "2022年度比拼" in message["Subject"]
        area = "LW" if "龙湾区" in message["Subject"] else "ALL"
        attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
        assert set(attachments) == {f"corridor-scorecard_2022_year_end_{area}_v1.pdf",
                                    f"corridor-scorecard_2022_year_end_{area}_v1.xlsx"}
        for name, content in attachments.items():
            fmt = name.rsplit(".", 1)[1]
            path, sha = recorded[(area, fmt)]
            assert content == path.read_bytes()
            assert __import__("hashlib").sha256(content).hexdigest() == sha
        body = message.get_body(("html",)).get_content()
        assert "数据截至" in body and "质量检查" in body

    again = publish(warehouse_copy, out, gate=passed(warehouse_copy),
                    edition=edition, period_start=period, areas=["ALL", "LW"])
    assert again.emails_sent == 0 and len(smtp_server.envelopes) == 2  # an edition is mailed once
    with psycopg.connect(warehouse_copy) as conn:
        assert conn.execute("select count(*) from ops.scorecard_deliveries").fetchone()[0] == 2


def test_without_smtp_connection_files_are_written_and_nothing_is_sent(warehouse_copy, tmp_path, no_smtp, caplog):
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="corridor.scorecards"):
        result = publish(warehouse_copy, out, gate=passed(warehouse_copy),
                         edition="year_end", period_start=YEAR_2022,
                         areas=["OJK"])
    assert result.smtp_configured is False and result.emails_sent == 0
    assert "SMTP not configured: nothing sent" in caplog.text
    assert [p.name for p in _files(out)] == [
        "corridor-scorecard_2022_year_end_OJK_v1.html", "corridor-scorecard_2022_year_end_OJK_v1.pdf",
        "corridor-scorecard_2022_year_end_OJK_v1.xlsx"]
    assert all(p.is_relative_to(out / "scorecards" / "2022" / "year_end" / "OJK") for p in _files(out))


def test_publishing_twice_without_a_restatement_records_one_edition(warehouse_copy, tmp_path, no_smtp):
    out = tmp_path / "out"
    first = publish(warehouse_copy, out, gate=passed(warehouse_copy),
                    edition="year_end", period_start=YEAR_2022,
                    areas=["ALL", "RA"])
    assert [s.status for s in first.scorecards] == ["published", "published"]
    rows = _editions(warehouse_copy)
    assert len(rows) == 6 and {r[3] for r in rows} == {1}
    files = {p: p.read_bytes() for p in _files(out)}
    assert len(files) == 6

    # the gate's counts are not data
    warnings = dict(passed(warehouse_copy), outcome="passed_with_warnings", warnings=2)
    second = publish(warehouse_copy, out, gate=warnings, edition="year_end", period_start=YEAR_2022,
                     areas=["ALL", "RA"])
    assert [s.status for s in second.scorecards] == ["unchanged", "unchanged"]
    assert _editions(warehouse_copy) == rows
    assert {p: p.read_bytes() for p in _files(out)} == files
    assert [s.files for s in second.scorecards] == [s.files for s in first.scorecards]

    lost = second.scorecards[1].files["pdf"]  # a published file deleted by mistake is restored byte for byte
    lost.unlink()
    third = publish(warehouse_copy, out, gate=passed(warehouse_copy),
                    edition="year_end", period_start=YEAR_2022, areas=["RA"])
    assert third.scorecards[0].status == "unchanged" and lost.read_bytes() == files[lost]
    assert _editions(warehouse_copy) == rows

    with psycopg.connect(warehouse_copy) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("update ops.scorecard_editions set sha256 = 'tampered'")


def test_restatement_never_changes_what_was_published_and_republish_records_the_next_edition(
        warehouse_copy, tmp_path, no_smtp):
    out = tmp_path / "out"
    publish(warehouse_copy, out, gate=passed(warehouse_copy),
            edition="year_end", period_start=YEAR_2022, areas=["ALL", "YQ"])
    published = {p: p.read_bytes() for p in _files(out)}
    with psycopg.connect(warehouse_copy) as conn:  # a restatement of YQ's 2022 high-tech enterprises
        conn.execute("update kpi.kpi_values set actual_value = actual_value + 7"
                     " where kpi_code = 'K04' and area_code = 'YQ' and grain = 'year' and period_start = %s",
                     (YEAR_2022,))

    quiet = publish(warehouse_copy, out, gate=passed(warehouse_copy),
                    edition="year_end", period_start=YEAR_2022,
                    areas=["ALL", "YQ"])
    assert {s.area_code: s.status for s in quiet.scorecards} == {"ALL": "unchanged", "YQ": "restated"}
    assert {p: p.read_bytes() for p in _files(out)} == published
    assert len(_editions(warehouse_copy)) == 6

    again = publish(warehouse_copy, out, gate=passed(warehouse_copy),
                    edition="year_end", period_start=YEAR_2022,
                    areas=["ALL", "YQ"], republish=True)
    assert {s.area_code: (s.status, s.edition_no) for s in again.scorecards} == {
        "ALL": ("unchanged", 1), "YQ": ("republished", 2)}
    rows = _editions(warehouse_copy)
    assert len(rows) == 9 and {r[5].rsplit("_", 1)[1] for r in rows if r[3] == 2} == {"v2.html", "v2.pdf", "v2.xlsx"}
    for path, content in published.items():  # edition 1 is still there, byte for byte
        assert path.read_bytes() == content
    assert "第2版" in Path(again.scorecards[1].files["html"]).read_text(encoding="utf-8")


def test_a_blocked_quality_gate_produces_no_scorecard_and_sends_no_email(warehouse_copy, tmp_path, smtp_server):
    out = tmp_path / "out"
    with pytest.raises(GateBlocked):
        publish(warehouse_copy, out, gate=BLOCKED, edition="year_end", period_start=YEAR_2022)
    with pytest.raises(GateBlocked):
        publish(warehouse_copy, out, gate=None, edition="year_end", period_start=YEAR_2022)
    assert _files(out) == []
    assert smtp_server.envelopes == []
    assert _editions(warehouse_copy) == []


def test_a_missing_return_makes_its_area_and_the_corridor_provisional_and_names_it(warehouse_copy):
    with psycopg.connect(warehouse_copy) as conn:  # YQ's November return never came
        conn.execute("delete from raw.district_returns where area_code = 'YQ' and report_month = '2022-11-01'")
        conn.execute("update ops.load_ledger set status = 'rejected'"
                     " where feed = 'district' and file_name like 'YQ\\_202211\\_v%'")
    yq = load_scorecard(warehouse_copy, "quarterly", date(2022, 10, 1), "YQ", PASSED)
    corridor = load_scorecard(warehouse_copy, "quarterly", date(2022, 10, 1), "ALL", PASSED)
    lw = load_scorecard(warehouse_copy, "quarterly", date(2022, 10, 1), "LW", PASSED)
    line = "乐清市 片区月报：2022年11月"
    assert yq.provisional and line in yq.completeness.missing
    assert corridor.provisional and line in corridor.completeness.missing
    assert line not in lw.completeness.missing
    assert yq.data_sha256 != load_scorecard(warehouse_copy, "quarterly", date(2022, 7, 1), "YQ", PASSED).data_sha256


def test_the_packages_own_completeness_rule_agrees_with_the_quality_gates(warehouse_copy):
    from corridor.scorecards import completeness as comp  # the module

    pytest.importorskip("corridor.quality.completeness")
    with psycopg.connect(warehouse_copy) as conn:  # a gap of each kind
        conn.execute("delete from raw.district_returns where area_code = 'OH' and report_month = '2022-05-01'")
        conn.execute("update ops.load_ledger set status = 'rejected' where feed in ('district', 'bank', 'hr')"
                     " and file_name in ('OH_202205_v1.xlsx', 'WZB_202206.csv', 'talent_202204.jsonl')")
        months = comp.months_of("year", date(2022, 1, 1)) + comp.months_of("quarter", date(2021, 10, 1))
        quality = sorted(comp._gaps_from_quality(conn, months), key=repr)
        own = sorted(comp._gaps_own(conn, months), key=repr)
    assert {(g.feed, g.source_code, g.month) for g in own} >= {
        ("district", "OH", date(2022, 5, 1)), ("bank", "WZB", date(2022, 6, 1)), ("hr", "hr", date(2022, 4, 1))}
    assert [(g.feed, g.source_code, g.month) for g in own] == [(g.feed, g.source_code, g.month) for g in quality]


def test_publishing_in_worker_processes_gives_the_bytes_of_a_render_here_and_logs_each_scorecard(
        warehouse_copy, tmp_path, caplog):
    import logging

    from corridor.scorecards.publish import render_bytes

    caplog.set_level(logging.INFO, logger="corridor.scorecards.publish")
    result = publish(warehouse_copy, tmp_path / "out", gate=passed(warehouse_copy),
                     edition="year_end", period_start=YEAR_2022,
                     areas=["ALL", "LW", "OJK"], send=False, workers=2)
    assert [s.area_code for s in result.scorecards] == ["ALL", "LW", "OJK"]
    for item in result.scorecards:
        here = render_bytes(load_scorecard(warehouse_copy, "year_end", YEAR_2022, item.area_code, PASSED,
                                           edition_no=1))
        for fmt, content in here.items():
            assert item.files[fmt].read_bytes() == content, (item.area_code, fmt)
        assert item.data_sha256 == load_scorecard(warehouse_copy, "year_end", YEAR_2022, item.area_code,
                                                  PASSED).data_sha256
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("publish scorecards")]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]   # one line per scorecard
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("done: publish scorecards")]
    assert len(done) == 1 and "3/3 scorecards" in done[0]


def test_completeness_is_judged_on_the_files_the_last_build_read(warehouse_copy):
    """A file committed after the last successful build is in the ledger, not in the marts and KPIs: a scorecard
    read then (the publish DAG ran before the build the file triggered) was labelled complete while its figures
    lacked the file. Completeness now counts the files up to the last recorded build's ledger position (no file
    is committed while a build runs, so those are exactly the files it read), in the quality gate's rule and
    in the package's own."""
    from datetime import UTC, datetime

    from corridor import transform
    from corridor.quality.completeness import completeness as quality_completeness
    from corridor.scorecards import completeness as comp

    url = warehouse_copy
    with psycopg.connect(url) as conn:
        last_id, last_file, rows = conn.execute(
            "select ledger_id, feed || '/' || file_name, (select count(*) from ops.load_ledger)"
            " from ops.load_ledger order by ledger_id desc limit 1").fetchone()
    assert last_file == "hr/talent_202212.jsonl"  # the city set's last delivery
    december = date(2022, 12, 1)
    assert comp.completeness(url, "month", december).publishable  # no build recorded: every loaded file counts
    # the last build started before the December talent file was committed
    transform.record_build(url, (last_id - 1, rows - 1), "digest", datetime.now(UTC), False)
    card = comp.completeness(url, "month", december)
    assert not card.publishable and card.missing == ["人才引育报送：2022年12月"]
    assert quality_completeness(url, "month", december).missing == ["hr: 2022-12 talent file"]
    with psycopg.connect(url) as conn:
        assert comp._gaps_own(conn, [december]) == comp._gaps_from_quality(conn, [december])
    assert comp.completeness(url, "month", date(2022, 11, 1)).publishable
    # the build that read it
    transform.record_build(url, (last_id, rows), "digest", datetime.now(UTC), False)
    assert comp.completeness(url, "month", december).publishable


def test_a_republished_editions_mail_says_it_replaces_the_one_before(built_warehouse):
    """The subject's 第2版 alone left officials to guess that edition 1 is void and why."""
    import dataclasses

    from corridor.scorecards import delivery

    first = load_scorecard(built_warehouse.url, "monthly", date(2022, 11, 1), "LW", PASSED)
    first = dataclasses.replace(first, edition_no=1)
    second = dataclasses.replace(first, edition_no=2)
    assert "替代" not in delivery.body_html(first, ["a.pdf"])
    body = delivery.body_html(second, ["a.pdf"])
    assert "本版替代此前发送的第1版" in body and "请以本版为准" in body


def test_the_mail_says_a_shared_rank_is_shared(built_warehouse):
    """Two areas with the same score share a rank (kpi.area_ranking's rank()): each one's mail said 第1名 as if
    it stood alone."""
    import dataclasses

    from corridor.scorecards import delivery

    sc = load_scorecard(built_warehouse.url, "year_end", date(2022, 1, 1), "LW", PASSED)
    mine = next(r for r in sc.ranking if r.area_code == "LW")
    alone = [r if r.rank != mine.rank or r.area_code == "LW" else dataclasses.replace(r, rank=r.rank + 1)
             for r in sc.ranking]
    assert f"年度比拼：第{mine.rank}名" in delivery.body_html(dataclasses.replace(sc, ranking=alone), ["a.pdf"])
    other = next(r for r in sc.ranking if r.area_code != "LW")
    tied = [dataclasses.replace(r, rank=mine.rank) if r.area_code == other.area_code else r for r in alone]
    assert f"年度比拼：并列第{mine.rank}名" in delivery.body_html(dataclasses.replace(sc, ranking=tied), ["a.pdf"])


def test_edition_titles_read_as_the_plan_names_the_meetings():
    from corridor.scorecards.editions import edition

    assert edition("monthly").title(date(2022, 12, 1)) == "2022年12月月度例会"
    assert edition("quarterly").title(date(2022, 10, 1)) == "2022年第四季度观摩"
    assert edition("year_end").title(date(2022, 1, 1)) == "2022年度比拼"


def withhold_return(url: str, area: str, month: date) -> None:
    """The area's return of the month never came (its rows kept aside in a table of the test's own)."""
    held = f"held_{area}_{month:%Y%m}".lower()
    with psycopg.connect(url) as conn:
        conn.execute(f"create table public.{held} as select * from raw.district_returns"
                     " where area_code = %s and report_month = %s", (area, month))
        conn.execute("delete from raw.district_returns where area_code = %s and report_month = %s", (area, month))
        conn.execute("update ops.load_ledger set status = 'rejected' where feed = 'district' and file_name like %s",
                     (f"{area}\\_{month:%Y%m}\\_v%",))


def return_arrives(url: str, area: str, month: date) -> None:
    """The late return is loaded and read by a build (what `withhold_return` took away, back)."""
    held = f"held_{area}_{month:%Y%m}".lower()
    with psycopg.connect(url) as conn:
        conn.execute(f"insert into raw.district_returns select * from public.{held}")
        conn.execute("update ops.load_ledger set status = 'loaded' where feed = 'district' and file_name like %s",
                     (f"{area}\\_{month:%Y%m}\\_v%",))


def test_a_provisional_edition_is_followed_by_the_final_one_once_its_period_is_complete(
        warehouse_copy, tmp_path, no_smtp):
    """A scorecard published while a return was missing said 临时数据; when the return came and a build read it,
    nothing ever published the final edition (a later publish found it `restated` and recorded nothing)."""
    import hashlib

    from corridor.scorecards import follow_up_provisional, registry

    url, out = warehouse_copy, tmp_path / "out"
    november, october = date(2022, 11, 1), date(2022, 10, 1)
    withhold_return(url, "YQ", november)
    withhold_return(url, "OH", october)
    first = publish(url, out, gate=passed(url), edition="monthly", period_start=november, areas=["YQ", "LW"],
                    workers=0)
    oct_oh = publish(url, out, gate=passed(url), edition="monthly", period_start=october, areas=["OH"], workers=0)
    assert [(s.area_code, s.edition_no, s.provisional) for s in first.scorecards + oct_oh.scorecards] == [
        ("YQ", 1, True), ("LW", 1, False), ("OH", 1, True)]
    assert follow_up_provisional(url, out, gate=passed(url), workers=0) == []   # nothing complete yet

    return_arrives(url, "YQ", november)   # OH's October return is still missing
    rows = _editions(url)
    again = publish(url, out, gate=passed(url), edition="monthly", period_start=november, areas=["YQ"], workers=0)
    assert [s.status for s in again.scorecards] == ["restated"] and _editions(url) == rows  # what it did alone
    [result] = follow_up_provisional(url, out, gate=passed(url), workers=0)
    assert [(s.edition, s.period_start, s.area_code, s.status, s.edition_no, s.provisional, s.missing)
            for s in result.scorecards] == [("monthly", november, "YQ", "republished", 2, False, [])]
    with psycopg.connect(url) as conn:
        latest = {area: registry.latest_edition(conn, "monthly", start, area)
                  for area, start in (("YQ", november), ("LW", november), ("OH", october))}
    assert {area: (rec.edition_no, rec.provisional) for area, rec in latest.items()} == {
        "YQ": (2, False), "LW": (1, False), "OH": (1, True)}
    for fmt, (path, sha) in latest["YQ"].files.items():
        assert path.name == f"corridor-scorecard_2022-11_monthly_YQ_v2.{fmt}" and path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    html_v2 = latest["YQ"].files["html"][0].read_text(encoding="utf-8")
    assert "第2版" in html_v2 and "临时数据" not in html_v2
    assert "临时数据" in (out / "scorecards/2022/monthly/YQ/corridor-scorecard_2022-11_monthly_YQ_v1.html").read_text(
        encoding="utf-8")   # edition 1 stays as published

    rows = _editions(url)
    assert follow_up_provisional(url, out, gate=passed(url), workers=0) == []   # the final edition is out
    assert _editions(url) == rows
