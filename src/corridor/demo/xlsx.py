"""Writing a district workbook with xlsxwriter, deterministically.

A data row is a list of cells: ``date`` (a real Excel date), ``int``/``float``
(a number; in a date column a bare serial), ``str`` (text), ``None`` (blank).
A row that is ``None`` is an empty row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import xlsxwriter

BIG_WORKBOOK_ROWS = 3000  # above this, write in constant_memory mode (temp files, row by row)


@dataclass(frozen=True)
class SheetSpec:
    name: str
    headers: tuple[str, ...]
    kinds: tuple[str, ...]      # per column: text / date / int / dec
    widths: tuple[int, ...]
    notes: str


@dataclass
class SheetData:
    spec: SheetSpec
    header_cells: list[str]
    rows: list[list | None]


def write_workbook(path: Path, *, title: str, author: str, created: datetime,
                   cover: list[tuple[str, object]], sheets: list[SheetData], date_format: str) -> None:
    n_rows = sum(len(s.rows) for s in sheets)
    big = n_rows > BIG_WORKBOOK_ROWS
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": big, "in_memory": not big,
                                         "default_date_format": date_format})
    wb.set_properties({"title": title, "author": author, "company": author, "created": created})
    f_title = wb.add_format({"bold": True, "font_size": 14, "align": "center", "valign": "vcenter"})
    f_note = wb.add_format({"font_size": 9, "font_color": "#595959", "align": "left"})
    f_head = wb.add_format({"bold": True, "align": "center", "border": 1, "bg_color": "#DDEBF7"})
    f_text = wb.add_format({"border": 1})
    f_date = wb.add_format({"border": 1, "num_format": date_format})
    f_int = wb.add_format({"border": 1, "num_format": "0"})
    f_dec = wb.add_format({"border": 1, "num_format": "#,##0.00"})
    f_plain = wb.add_format({"border": 1})
    f_label = wb.add_format({"bold": True})
    f_cover_date = wb.add_format({"num_format": date_format, "align": "left"})

    ws = wb.add_worksheet("封面")
    ws.set_column(0, 0, 14)
    ws.set_column(1, 1, 30)
    for r, (label, value) in enumerate(cover):
        ws.write_string(r, 0, label, f_label)
        if isinstance(value, date):
            ws.write_datetime(r, 1, datetime(value.year, value.month, value.day), f_cover_date)
        else:
            ws.write_string(r, 1, str(value))

    by_kind = {"text": f_text, "date": f_date, "int": f_int, "dec": f_dec}
    for sheet in sheets:
        spec = sheet.spec
        ws = wb.add_worksheet(spec.name)
        ncols = len(spec.headers)
        for c, w in enumerate(spec.widths):
            ws.set_column(c, c, w)
        ws.merge_range(0, 0, 0, ncols - 1, title, f_title)
        ws.set_row(0, 24)
        ws.merge_range(1, 0, 1, ncols - 1, spec.notes, f_note)
        for c, h in enumerate(sheet.header_cells):
            ws.write_string(2, c, h, f_head)
        ws.freeze_panes(3, 0)
        for i, row in enumerate(sheet.rows):
            if row is None:
                continue
            r = 3 + i
            for c, value in enumerate(row):
                if value is None or value == "":
                    continue
                kind = spec.kinds[c]
                if isinstance(value, str):
                    ws.write_string(r, c, value, f_text)
                elif isinstance(value, date):
                    ws.write_datetime(r, c, datetime(value.year, value.month, value.day), f_date)
                elif kind == "date":  # a bare Excel serial number in a date column
                    ws.write_number(r, c, value, f_plain)
                else:
                    ws.write_number(r, c, value, by_kind.get(kind, f_plain))
    wb.close()
