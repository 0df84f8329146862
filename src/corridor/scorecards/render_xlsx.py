"""The scorecard as XLSX (xlsxwriter): numbers as numbers, dates as dates, text as text.

- Numbers are written with ``write_number`` and shown through number formats
  (rates and completion as percentages of the stored fraction), dates with
  ``write_datetime``: officials can compute with every cell.
- Text never becomes a formula: the workbook has ``strings_to_formulas``,
  ``strings_to_urls`` and ``strings_to_numbers`` off, every text cell is
  written with ``write_string``, and a text that starts like a formula (``=``,
  ``+``, ``-``, ``@``, tab, carriage return) also carries Excel's quote prefix
  (the cell shows the text exactly, and stays text when edited or re-entered).
- Trend charts are native Excel line charts over the 月度走势 sheet.
- Deterministic: fixed document dates (the data's as-of day) and zip
  timestamps, so the same scorecard gives the same bytes.
- Memory: xlsxwriter's ``constant_memory`` mode writes each row out when the
  next one starts (every sheet is written strictly row by row, the trend
  sheet included), so a workbook of 30,000 detail rows does not hold them as
  cells.
- Speed: the detail sheets' rows (most of a workbook's cells: two million in a
  national year's) are written as sheet XML here, byte for byte what
  xlsxwriter's cell calls write (``tests/test_xlsx_detail_rows.py``), about a
  third of their CPU time; a text that needs one of xlsxwriter's escapes takes
  xlsxwriter's own cell writer.
"""

from __future__ import annotations

import io
import math
import re
from datetime import date, datetime

import xlsxwriter
from xlsxwriter.utility import _utf16_len, _utf16_truncate, xl_rowcol_to_cell
from xlsxwriter.worksheet import CellStringTuple

from corridor.scorecards.data import VERSIONS_ZH, Scorecard
from corridor.scorecards.format import completion_places, percent
from corridor.scorecards.render_html import OFFICE

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FONT = "Noto Sans CJK SC"

NUMBER_FORMATS = {
    # measure_type -> (actual, target)
    "count": ("#,##0", "#,##0.00"),
    "sum": ("#,##0.00", "#,##0.00"),
    "rate": ("0.0%", "0.0%"),
}


class _Formats:
    """Workbook formats by name, each with a quote-prefixed twin for formula-like text."""

    BASE = {"font_name": FONT, "font_size": 10, "valign": "top"}
    SPECS = {
        "text": {},
        "wrap": {"text_wrap": True},
        "title": {"bold": True, "font_size": 15, "font_color": "#8B1A1A"},
        "subtitle": {"bold": True, "font_size": 12},
        "label": {"font_color": "#59636E"},
        "strong": {"bold": True},
        "head": {"bold": True, "bg_color": "#F3F5F7", "bottom": 2, "text_wrap": True},
        "date": {"num_format": "yyyy-mm-dd", "align": "left"},
        "month": {"num_format": "yyyy-mm", "align": "left"},
        "int": {"num_format": "#,##0"},
        "dec2": {"num_format": "#,##0.00"},
        "pct": {"num_format": "0.0%"},
        "provisional": {"bold": True, "font_color": "#FFFFFF", "bg_color": "#B35900"},
        "final": {"bold": True, "font_color": "#FFFFFF", "bg_color": "#1A7F37"},
        "note": {"font_color": "#59636E", "text_wrap": True, "font_size": 9},
    }

    def __init__(self, wb: xlsxwriter.Workbook) -> None:
        self.wb = wb
        self._cache: dict[tuple, object] = {}

    def get(self, name: str, quote: bool = False, **extra):
        key = (name, quote, tuple(sorted(extra.items())))
        if key not in self._cache:
            props = {**self.BASE, **self.SPECS.get(name, {}), **extra}
            if quote:
                props["quote_prefix"] = True
            self._cache[key] = self.wb.add_format(props)
        return self._cache[key]

    def num(self, num_format: str, **extra):
        return self.get("num:" + num_format, num_format=num_format, **extra)


_EXCEL_EPOCH = date(1899, 12, 31).toordinal()


def _excel_serial(value: date) -> float:
    """The serial number ``write_datetime`` stores for a date (1900 system, Excel's phantom 1900-02-29 included)."""
    days = float(value.toordinal() - _EXCEL_EPOCH)
    return days + 1 if days > 59 else days


class _Sheet:
    """A worksheet with safe writers."""

    def __init__(self, ws, formats: _Formats) -> None:
        self.ws = ws
        self.f = formats

    def text(self, row: int, col: int, value, fmt: str = "text", **extra) -> None:
        if value is None:
            self.ws.write_blank(row, col, None, self.f.get(fmt, **extra))
            return
        s = str(value)
        self.ws.write_string(row, col, s, self.f.get(fmt, quote=s.startswith(FORMULA_TRIGGERS), **extra))

    def number(self, row: int, col: int, value, num_format: str = "General", **extra) -> None:
        if value is None:
            self.ws.write_blank(row, col, None, self.f.num(num_format, **extra))
        else:
            self.ws.write_number(row, col, float(value), self.f.num(num_format, **extra))

    def day(self, row: int, col: int, value: date | None, fmt: str = "date") -> None:
        if value is None:
            self.ws.write_blank(row, col, None, self.f.get(fmt))
        else:
            self.ws.write_datetime(row, col, datetime(value.year, value.month, value.day), self.f.get(fmt))

    def header(self, row: int, titles: list[str], widths: list[float]) -> None:
        for col, (title, width) in enumerate(zip(titles, widths, strict=True)):
            self.text(row, col, title, "head")
            self.ws.set_column(col, col, width)


def _masthead(s: _Sheet, sc: Scorecard, last_col: int) -> int:
    s.ws.merge_range(0, 0, 0, last_col, "", s.f.get("title"))
    s.text(0, 0, sc.title, "title")
    s.ws.merge_range(1, 0, 1, last_col, "", s.f.get("subtitle"))
    s.text(1, 0, f"{sc.period_label} {sc.edition.label} · {sc.area_name}", "subtitle")
    rows = [
        ("统计期", f"{sc.period_start.isoformat()} 至 {sc.period_end.isoformat()}"),
        ("数据截至", sc.as_of),
        ("版次", f"第{sc.edition_no}版" if sc.edition_no else "未发布"),
        ("数据状态", "临时数据（存在缺报，见“数据质量”表）" if sc.provisional else "报送完整"),
        ("质量检查", sc.gate_label + (f"（{sc.gate_counts}）" if sc.gate_counts else "")),
    ]
    r = 2
    for label, value in rows:
        s.text(r, 0, label, "label")
        if isinstance(value, date):
            s.day(r, 1, value)
        elif label == "数据状态":
            s.text(r, 1, value, "provisional" if sc.provisional else "final")
        else:
            s.text(r, 1, value)
        r += 1
    return r + 1


def _kpi_sheet(wb, f: _Formats, sc: Scorecard) -> None:
    s = _Sheet(wb.add_worksheet("指标完成情况"), f)
    titles = ["编号", "指标", "单位", "实际值", "目标", "进度目标", "完成率", "状态", "目标说明"]
    widths = [6, 34, 9, 12, 12, 12, 10, 10, 24]
    r = _masthead(s, sc, len(titles) - 1)
    s.header(r, titles, widths)
    header_row = r
    for k in sc.kpis:
        r += 1
        actual_fmt, target_fmt = NUMBER_FORMATS.get(k.measure_type, NUMBER_FORMATS["sum"])
        if k.actual is not None and k.measure_type == "count" and k.actual != int(k.actual):
            actual_fmt = "#,##0.00"
        s.text(r, 0, k.code)
        s.text(r, 1, k.name, "wrap")
        s.text(r, 2, k.shown_unit)
        s.number(r, 3, k.actual, actual_fmt)
        s.number(r, 4, k.target, target_fmt)
        s.number(r, 5, k.paced_target, target_fmt)
        s.number(r, 6, k.completion, "0." + "0" * completion_places(k.completion, sc.status_thresholds) + "%")
        s.text(r, 7, f"{k.status_symbol} {k.status_label}", "strong", font_color="#FFFFFF", bg_color=k.status_colour)
        s.text(r, 8, k.stated_target, "wrap")
    s.ws.freeze_panes(header_row + 1, 2)
    s.ws.autofilter(header_row, 0, r, len(titles) - 1)
    r += 2
    s.ws.merge_range(r, 0, r, len(titles) - 1, "", f.get("note"))
    s.text(r, 0, "完成率 = 实际值 ÷ 进度目标（存为小数，按百分比显示）；"
           f"状态：完成率 ≥ {percent(sc.status_thresholds[0])} 超前，≥ {percent(sc.status_thresholds[1])} "
           "按进度，否则滞后；口径见“指标口径”表。", "note")
    s.ws.set_row(r, 30)
    s.ws.set_landscape()
    s.ws.set_paper(9)
    s.ws.fit_to_pages(1, 0)
    s.ws.repeat_rows(header_row)


def _trend_sheets(wb, f: _Formats, sc: Scorecard) -> None:
    data = _Sheet(wb.add_worksheet("月度走势"), f)
    months = sorted({m for k in sc.kpis for m, _, _ in k.series})
    data.text(0, 0, "月份", "head")
    data.ws.set_column(0, 0, 10)
    for i, k in enumerate(sc.kpis):
        data.text(0, 1 + 2 * i, f"{k.code} 实际值", "head")
        data.text(0, 2 + 2 * i, f"{k.code} 进度目标", "head")
        data.ws.set_column(1 + 2 * i, 2 + 2 * i, 12)
    # row by row (constant_memory): a month's row has each KPI's pair where its series has the month
    by_month = [({m: (actual, paced) for m, actual, paced in k.series},
                 "0.0%" if k.measure_type == "rate" else "#,##0.00") for k in sc.kpis]
    for r, m in enumerate(months, start=1):
        data.day(r, 0, m, "month")
        for i, (values, num_format) in enumerate(by_month):
            if m in values:
                actual, paced = values[m]
                data.number(r, 1 + 2 * i, actual, num_format)
                data.number(r, 2 + 2 * i, paced, num_format)
    data.ws.freeze_panes(1, 1)

    charts = _Sheet(wb.add_worksheet("走势图"), f)
    charts.text(0, 0, f"{sc.full_title}：各指标月度走势（实线：实际值；虚线：进度目标）", "subtitle")
    if not months:
        charts.text(2, 0, "无月度数据。")
        return
    first, last = 1, len(months)
    for i, k in enumerate(sc.kpis):
        chart = wb.add_chart({"type": "line"})
        chart.set_title({"name": f"{k.code} {k.label}", "name_font": {"name": FONT, "size": 10, "bold": True}})
        categories = ["月度走势", first, 0, last, 0]
        chart.add_series({"name": "实际值", "categories": categories, "values": ["月度走势", first, 1 + 2 * i, last, 1 + 2 * i],
                          "line": {"color": k.status_colour, "width": 2.0}})
        chart.add_series({"name": "进度目标", "categories": categories,
                          "values": ["月度走势", first, 2 + 2 * i, last, 2 + 2 * i],
                          "line": {"color": "#8A8F98", "width": 1.25, "dash_type": "dash"}})
        chart.set_x_axis({"date_axis": True, "num_format": "yyyy-mm", "num_font": {"name": FONT, "size": 8}})
        chart.set_y_axis({"num_format": "0%" if k.measure_type == "rate" else "#,##0.##",
                          "num_font": {"name": FONT, "size": 8}, "major_gridlines": {"visible": True,
                                                                                     "line": {"color": "#D9DCE1"}}})
        chart.set_legend({"position": "bottom", "font": {"name": FONT, "size": 8}})
        chart.set_size({"width": 480, "height": 250})
        chart.show_blanks_as("gap")
        charts.ws.insert_chart(2 + (i // 2) * 13, (i % 2) * 8, chart)


def _ranking_sheet(wb, f: _Formats, sc: Scorecard) -> None:
    s = _Sheet(wb.add_worksheet("年度比拼"), f)
    s.text(0, 0, f"{sc.period_start.year}年度比拼排名", "subtitle")
    s.header(2, ["名次", "片区代码", "片区", "综合得分", "计分指标数"], [8, 10, 18, 12, 12])
    r = 2
    for rank in sc.ranking or []:
        r += 1
        current = rank.area_code == sc.area_code
        extra = {"bold": True, "bg_color": "#FFF4D6"} if current else {}
        s.number(r, 0, rank.rank, "0", **extra)
        s.text(r, 1, rank.area_code, **extra)
        s.text(r, 2, rank.area_name, **extra)
        s.number(r, 3, rank.score, "0.0%", **extra)
        s.number(r, 4, rank.kpis_scored, "0", **extra)
    s.text(r + 2, 0, "综合得分：各有目标指标年度完成率（单项最高按120%计）的加权平均（存为小数）；名次相同者并列。", "note")
    if sc.ranking:
        chart = wb.add_chart({"type": "bar"})
        chart.add_series({"name": "综合得分", "categories": ["年度比拼", 3, 2, r, 2], "values": ["年度比拼", 3, 3, r, 3],
                          "fill": {"color": "#1F5FAE"}, "data_labels": {"value": True, "num_format": "0.0%"}})
        chart.set_title({"name": "综合得分", "name_font": {"name": FONT, "size": 10}})
        chart.set_x_axis({"num_format": "0%", "num_font": {"name": FONT, "size": 8}})
        chart.set_y_axis({"reverse": True, "num_font": {"name": FONT, "size": 9}})
        chart.set_legend({"none": True})
        chart.set_size({"width": 520, "height": 260})
        s.ws.insert_chart(xl_rowcol_to_cell(2, 6), chart)


def _detail_sheet(wb, f: _Formats, name: str, title: str, columns: list[tuple[str, str, str, float]],
                  rows: list[dict], empty: str) -> None:
    """columns: (header, key, kind text/date/int/dec2/pct100, width)."""
    s = _Sheet(wb.add_worksheet(name), f)
    s.text(0, 0, f"{title}（{len(rows)}条）", "subtitle")
    s.header(2, [c[0] for c in columns], [c[3] for c in columns])
    # the cells as `_Sheet.text` / `number` / `day` write them, with each column's formats looked up once
    plan = []
    for col, (_, key, kind, _) in enumerate(columns):
        if kind == "date":
            plan.append((col, key, kind, f.get("date"), None))
        elif kind in ("int", "dec2"):
            plan.append((col, key, "number", f.num("#,##0" if kind == "int" else "#,##0.00"), None))
        else:
            plan.append((col, key, "text", f.get("text"), f.get("text", quote=True)))
    if rows:
        # the columns' formats take their indices now, in column order, whichever row first uses them: xlsxwriter
        # gives a format its index when its cell is written out, the last row's only when the sheet is closed,
        # which :func:`_detail_rows` (writing as it goes) could not follow (a format first used in the last row)
        for *_, fmt, quoted in plan:
            for used in (fmt, quoted):
                if used is not None:
                    used._get_xf_index()
        _detail_rows(s.ws, plan, rows, 3)
        s.ws.autofilter(2, 0, 2 + len(rows), len(columns) - 1)
        s.ws.freeze_panes(3, 0)
    else:
        s.text(3, 0, empty)


def _detail_rows_by_api(ws, plan: list[tuple], rows, first: int) -> None:
    """The detail rows through xlsxwriter's cell writers, a call per cell: what :func:`_detail_rows` writes
    (the rule it is held to, in the tests, and what it falls back on)."""
    write_string, write_number, write_blank = ws.write_string, ws.write_number, ws.write_blank
    serials: dict[date, float] = {}
    for i, row in enumerate(rows, start=first):
        for col, key, kind, fmt, quoted in plan:
            value = row.get(key)
            if value is None:
                write_blank(i, col, None, fmt)
            elif kind == "text":
                text = value if isinstance(value, str) else str(value)
                write_string(i, col, text, quoted if text.startswith(FORMULA_TRIGGERS) else fmt)
            elif kind == "number":
                write_number(i, col, float(value), fmt)
            else:
                serial = serials.get(value)
                if serial is None:
                    serial = serials[value] = _excel_serial(value)
                write_number(i, col, serial, fmt)


# A text xlsxwriter writes as it is (no XML or control-character escape, no _xHHHH_ to escape, no whitespace
# to preserve at either end, not a rich string, short enough never to be truncated) when this finds nothing:
# the rest takes xlsxwriter's own cell writer.
_TEXT_NEEDS_XLSXWRITER = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_|^\s|\s$")
_TEXT_PLAIN_MAX = 32767 // 2  # xlsxwriter checks a longer text's UTF-16 length (and truncates past 32,767)
_ROWS_PER_WRITE = 500


def _detail_rows(ws, plan: list[tuple], rows, first: int) -> None:
    """The detail rows (from row ``first`` on), their sheet XML written here, row after row, byte for byte what
    xlsxwriter's ``constant_memory`` mode writes for the same ``write_string`` / ``write_number`` /
    ``write_blank`` calls (:func:`_detail_rows_by_api`), at a fraction of its Python per cell: a national
    workbook's detail sheets hold some two million cells, and xlsxwriter's per-cell calls (argument checks, a
    cell tuple, then its escapes and attribute loop when the row is written) were most of the time of
    publication. A text that needs any of xlsxwriter's escapes, a non-finite number, and a worksheet whose rows
    xlsxwriter would write with attributes of their own, take xlsxwriter's own code."""
    if not ws.constant_memory or ws.excel_version != 2007 or ws.row_info or ws.previous_row >= first:
        return _detail_rows_by_api(ws, plan, rows, first)
    probe = io.StringIO()
    fh, ws.fh = ws.fh, probe
    try:
        ws._write_row(first, None)  # what xlsxwriter opens a plain row with (height, version …)
    finally:
        ws.fh = fh
    if probe.getvalue() != f'<row r="{first + 1}">':
        return _detail_rows_by_api(ws, plan, rows, first)

    last_col = max(col for col, *_ in plan)
    ws._write_single_row(first)  # the rows above (the header) out, as xlsxwriter's next cell would
    columns = [(col, xl_rowcol_to_cell(0, col)[:-1], key, kind, fmt, quoted) for col, key, kind, fmt, quoted in plan]
    # id(format) -> its index, taken when a cell first uses it: the order in which xlsxwriter's cells take them
    xf: dict[int, int] = {}
    needs_xlsxwriter = _TEXT_NEEDS_XLSXWRITER.search
    serials: dict[date, str] = {}
    out: list[str] = []
    write = ws.fh.write
    i = first - 1
    for i, row in enumerate(rows, start=first):
        n = i + 1
        out.append(f'<row r="{n}">')
        for col, letter, key, kind, fmt, quoted in columns:
            value = row.get(key)
            if value is None:
                pass
            elif kind == "text":
                text = value if isinstance(value, str) else str(value)
                if text.startswith(FORMULA_TRIGGERS):
                    fmt = quoted
                if len(text) > _TEXT_PLAIN_MAX or needs_xlsxwriter(text):
                    if len(text) > _TEXT_PLAIN_MAX and _utf16_len(text) > ws.xls_strmax:
                        text = _utf16_truncate(text, ws.xls_strmax)
                    write("".join(out))
                    out.clear()
                    ws._write_cell(i, col, CellStringTuple(text, fmt))
                    continue
            elif kind == "number":
                number = float(value)
                if not math.isfinite(number):  # as xlsxwriter's write_number refuses it
                    raise TypeError("NAN/INF not supported in write_number() without 'nan_inf_to_errors' "
                                    "Workbook() option")
                text = f"{number:.16G}"
            else:
                text = serials.get(value)
                if text is None:
                    text = serials[value] = f"{_excel_serial(value):.16G}"
            s = xf.get(id(fmt))
            if s is None:
                s = xf[id(fmt)] = fmt._get_xf_index()
            if value is None:
                out.append(f'<c r="{letter}{n}" s="{s}"/>')
            elif kind == "text":
                out.append(f'<c r="{letter}{n}" s="{s}" t="inlineStr"><is><t>{text}</t></is></c>')
            else:
                out.append(f'<c r="{letter}{n}" s="{s}"><v>{text}</v></c>')
        out.append("</row>")
        if len(out) > _ROWS_PER_WRITE * (len(plan) + 2):
            write("".join(out))
            out.clear()
    write("".join(out))
    if i >= first:
        ws._check_dimensions(i, last_col)  # the sheet's <dimension> and the autofilter's range, as cells do
        ws.previous_row = i  # xlsxwriter's next row, or its close, writes nothing more of these


def _definitions_sheet(wb, f: _Formats, sc: Scorecard) -> None:
    s = _Sheet(wb.add_worksheet("指标口径"), f)
    s.header(0, ["编号", "指标", "单位", "目标", "口径（统计期末 = 期末）"], [6, 34, 9, 22, 90])
    r = 0
    for k in sc.kpis:
        r += 1
        s.text(r, 0, k.code)
        s.text(r, 1, k.name, "wrap")
        s.text(r, 2, k.shown_unit)
        s.text(r, 3, k.stated_target, "wrap")
        s.text(r, 4, k.definition, "wrap")
    s.text(r + 2, 0, "“全走廊”为六个片区同一口径的合计，按企业、人员、团队去重的指标在全走廊范围内去重，不等于各片区之和。", "note")


def _quality_sheet(wb, f: _Formats, sc: Scorecard) -> None:
    s = _Sheet(wb.add_worksheet("数据质量"), f)
    s.ws.set_column(0, 0, 18)
    s.ws.set_column(1, 1, 80)
    s.text(0, 0, "数据质量声明", "subtitle")
    g = sc.gate or {}
    r = 2
    s.text(r, 0, "质量检查结论", "label")
    s.text(r, 1, sc.gate_label)
    for label, key in (("检查套件数", "suites"), ("校验项数", "expectations"), ("失败项数", "failed"),
                       ("警告项数", "warnings")):
        r += 1
        s.text(r, 0, label, "label")
        s.number(r, 1, g.get(key), "0", align="left")
    r += 1
    s.text(r, 0, "报送完整性", "label")
    s.text(r, 1, "临时数据：存在缺报，补报后可能调整" if sc.provisional else "完整：本期所需报送均已到位",
           "provisional" if sc.provisional else "final")
    for item in sc.completeness.missing:
        r += 1
        s.text(r, 0, "缺报", "label")
        s.text(r, 1, item, "wrap")
    r += 1
    s.text(r, 0, "项目漏报", "label")
    s.number(r, 1, sc.unreported_projects, "0", align="left")
    r += 1
    s.text(r, 0, "数据截至", "label")
    s.day(r, 1, sc.as_of)
    r += 1
    s.text(r, 0, "统计期末", "label")
    s.day(r, 1, sc.period_end)
    r += 1
    s.text(r, 0, "报送版本", "label")
    s.text(r, 1, VERSIONS_ZH, "wrap")
    r += 1
    s.text(r, 0, "版次", "label")
    s.text(r, 1, f"第{sc.edition_no}版" if sc.edition_no else "未发布")
    r += 1
    s.text(r, 0, "数据指纹（SHA-256）", "label")
    s.text(r, 1, sc.data_sha256)


PLATFORM_COLUMNS = [("片区", "area_name", "text", 16), ("平台编号", "platform_id", "text", 14),
                    ("平台名称", "platform_name", "text", 36), ("类别", "platform_category", "text", 18),
                    ("级别", "platform_level", "text", 10), ("依托单位", "host_name", "text", 30),
                    ("认定日期", "recognised_date", "date", 12), ("期末状态", "standing", "text", 10)]
CERTIFICATION_COLUMNS = [("片区", "area_name", "text", 16), ("企业名称", "enterprise_name", "text", 36),
                         ("统一社会信用代码", "uscc", "text", 22), ("认定类别", "certification_type", "text", 18),
                         ("证书编号", "certificate_no", "text", 20), ("认定日期", "granted_date", "date", 12),
                         ("有效期至", "valid_until", "date", 12), ("期末状态", "standing", "text", 10)]
PROJECT_COLUMNS = [("片区", "area_name", "text", 16), ("项目编号", "project_id", "text", 14),
                   ("项目名称", "project_name", "text", 36), ("类别", "project_category", "text", 14),
                   ("所属区块", "block_name", "text", 24), ("开始日期", "start_date", "date", 12),
                   ("计划完成日期", "planned_completion_date", "date", 12), ("期末状态", "project_status", "text", 10),
                   ("累计完成投资（万元）", "cumulative_investment_10k_yuan", "dec2", 16),
                   ("形象进度（%）", "progress_pct", "dec2", 12)]


def render_xlsx(sc: Scorecard) -> bytes:
    buffer = io.BytesIO()
    # constant_memory: rows go to temporary files as they are completed (it excludes in_memory)
    wb = xlsxwriter.Workbook(buffer, {"constant_memory": True, "strings_to_formulas": False,
                                      "strings_to_urls": False, "strings_to_numbers": False,
                                      "default_date_format": "yyyy-mm-dd"})
    fixed = datetime(sc.as_of.year, sc.as_of.month, sc.as_of.day)
    wb.set_properties({"title": sc.full_title, "author": OFFICE, "company": OFFICE, "created": fixed,
                       "comments": f"data sha256 {sc.data_sha256}"})
    formats = _Formats(wb)
    _kpi_sheet(wb, formats, sc)
    _trend_sheets(wb, formats, sc)
    if sc.ranking is not None:
        _ranking_sheet(wb, formats, sc)
    _detail_sheet(wb, formats, "新认定平台", "本期新认定创新平台", PLATFORM_COLUMNS, sc.platforms, "本期无新认定创新平台。")
    _detail_sheet(wb, formats, "新获认定企业", "本期新获认定企业", CERTIFICATION_COLUMNS, sc.certifications,
                  "本期无新获认定企业。")
    _detail_sheet(wb, formats, "开工重点项目", "本期开工重点项目", PROJECT_COLUMNS, sc.projects, "本期无开工重点项目。")
    _definitions_sheet(wb, formats, sc)
    _quality_sheet(wb, formats, sc)
    wb.close()
    return buffer.getvalue()

