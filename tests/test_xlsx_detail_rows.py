"""The XLSX detail sheets' rows, written as sheet XML by ``render_xlsx._detail_rows``, are byte for byte what
xlsxwriter's own cell writers give for the same cells (``_detail_rows_by_api``), whatever the text holds."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from decimal import Decimal

import pytest
import xlsxwriter

from corridor.scorecards import render_xlsx as rx

TRICKY_TEXT = [
    "温州市科技局", "A&B <公司> \"引号\"", "=SUM(A1:A9)", "+86", "-5", "@home", "\tleading tab", "\rcarriage",
    "line\nbreak", "trailing space ", " leading space", "full-width end\u3000", "ctl\x01char\x1f", "_x0041_ literal",
    "a_x00ZZ_not", "<r>rich-looking</r>", "\ufffe\uffff", "x" * 16_383, "y" * 16_384 + "&", "长" * 40_000,
    "😀" * 20_000, "", "123", "0012", "tab\tinside", "semi;colon,comma",
]


def _rows() -> list[dict]:
    rows = []
    for i, text in enumerate(TRICKY_TEXT):
        rows.append({
            "name": text,
            "code": None if i % 5 == 0 else (i * 7 if i % 3 == 0 else f"91330300MA{i:08d}"),
            "day": None if i % 4 == 1 else date(2019 + i % 5, 1 + i % 12, 1 + i % 28),
            "amount": None if i % 6 == 2 else Decimal(i) * Decimal("1234.5678") - Decimal("0.1"),
            "count": None if i % 7 == 3 else i * 1000,
        })
    return rows


COLUMNS = [("名称", "name", "text", 30), ("代码", "code", "text", 20), ("日期", "day", "date", 12),
           ("金额", "amount", "dec2", 14), ("数量", "count", "int", 10)]


def _workbook(writer, rows) -> dict[str, bytes]:
    """Every part of a workbook of a detail sheet, between two other sheets, with ``writer`` as its row writer."""
    buffer = io.BytesIO()
    wb = xlsxwriter.Workbook(buffer, {"constant_memory": True, "strings_to_formulas": False,
                                      "strings_to_urls": False, "strings_to_numbers": False,
                                      "default_date_format": "yyyy-mm-dd"})
    wb.set_properties({"created": rx.datetime(2022, 12, 31)})
    f = rx._Formats(wb)
    before = rx._Sheet(wb.add_worksheet("before"), f)
    before.text(0, 0, "=before", "strong")
    original = rx._detail_rows
    rx._detail_rows = writer
    try:
        rx._detail_sheet(wb, f, "detail", "明细", COLUMNS, rows, "无。")
    finally:
        rx._detail_rows = original
    after = rx._Sheet(wb.add_worksheet("after"), f)
    after.number(0, 0, Decimal("2.5"), "0.0%")
    wb.close()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_the_detail_rows_xml_is_what_xlsxwriters_cell_writers_write(monkeypatch):
    rows = _rows()
    expected = _workbook(rx._detail_rows_by_api, rows)

    def refused(*args, **kwargs):
        raise AssertionError("the fast writer fell back on xlsxwriter's cell calls")

    monkeypatch.setattr(rx, "_detail_rows_by_api", refused)
    got = _workbook(rx._detail_rows, rows)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == expected[name], name
    sheet = got["xl/worksheets/sheet2.xml"].decode()
    # the cells that need xlsxwriter's escapes got them (the rows are not merely equal: they hold the text)
    assert "A&amp;B &lt;公司&gt;" in sheet and "_x005F_x0041_ literal" in sheet and "ctl_x0001_char_x001F_" in sheet
    assert '<t xml:space="preserve">trailing space </t>' in sheet
    assert f'<dimension ref="A1:E{3 + len(rows)}"/>' in sheet


def test_the_fast_writer_keeps_xlsxwriters_refusals_and_its_fallbacks(monkeypatch):
    nan = [{"name": "x", "code": "y", "day": date(2020, 1, 1), "amount": Decimal("NaN"), "count": 1}]
    with pytest.raises(TypeError, match="NAN/INF"):
        _workbook(rx._detail_rows, nan)
    with pytest.raises(TypeError, match="NAN/INF"):
        _workbook(rx._detail_rows_by_api, nan)
    # a worksheet whose rows xlsxwriter writes with attributes of their own (a row height) takes its cell calls
    calls = []
    by_api = rx._detail_rows_by_api

    def counted(ws, plan, rows, first):
        calls.append(first)
        return by_api(ws, plan, rows, first)

    monkeypatch.setattr(rx, "_detail_rows_by_api", counted)
    buffer = io.BytesIO()
    wb = xlsxwriter.Workbook(buffer, {"constant_memory": True})
    ws = wb.add_worksheet()
    ws.set_default_row(20)
    plan = [(0, "name", "text", wb.add_format(), wb.add_format({"quote_prefix": True}))]
    rx._detail_rows(ws, plan, [{"name": "a"}, {"name": "b"}], 3)
    wb.close()
    assert calls == [3]


@pytest.mark.parametrize("rows", [
    [{"name": "one row", "code": "x", "day": date(2020, 1, 1), "amount": Decimal("1.5"), "count": 2}],
    # each column's format first used in the last row (its cells written out only when the sheet is closed)
    [{"name": None}, {"name": "a"}, {"name": "=formula-looking", "code": "y", "day": date(2021, 3, 5),
                                     "amount": Decimal("-0"), "count": 0}],
])
def test_the_detail_rows_are_xlsxwriters_whichever_row_first_uses_a_format(monkeypatch, rows):
    """Found by a fuzz of random rows: xlsxwriter numbers a format when its cell is written out, the last row's
    only when the sheet is closed, after the other sheets' cells; the formats now take their numbers first."""
    expected = _workbook(rx._detail_rows_by_api, rows)
    got = _workbook(rx._detail_rows, rows)
    for name in expected:
        assert got[name] == expected[name], name
