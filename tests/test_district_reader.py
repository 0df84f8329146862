"""district's calamine reader: the sheet XML checks (one polars regex) and the column-wise conversion.

tests/test_fast_path.py holds whole workbooks read by calamine to openpyxl's spool output; these tests
hold the pieces that make a workbook "clean" to what they must refuse or give, so that a pattern
rewritten (Python re -> polars' Rust regex) or a conversion reordered cannot pass by accepting less or
converting otherwise.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from corridor.feeds import district

ROWS = ('<row r="1" spans="1:3"><c r="A1" t="s"><v>0</v></c><c r="B1" s="1"/></row>'
        '<row r="3"><c r="A3" s="2"><v>44000</v></c><c r="B3"><v>12.50</v></c><c r="C3"><v>7</v></c></row>'
        '<row r="4"><c r="A4"><v>1E+3</v></c></row>')


def sheet(rows: str = ROWS) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="x"><sheetData>{rows}'
            f"</sheetData></worksheet>").encode()


def test_shapes_of_a_clean_sheet():
    [(last_row, lengths, floats)] = district._shapes([sheet()], None)
    assert last_row == 4
    assert lengths == {1: 2, 3: 3, 4: 1}
    assert floats == {(3, 2), (4, 1)}  # 12.50 and 1E+3 are floats for openpyxl, 44000 and 7 ints


@pytest.mark.parametrize("snippet", [
    '<c r="D3"><f>A3+1</f><v>2</v></c>',             # a formula
    '<c r="D3" t="e"><v>#DIV/0!</v></c>',             # an error
    '<c r="D3" t="str"><v>x</v></c>',                 # a string formula
    '<c r="D3" t="d"><v>2021-01-01</v></c>',          # an ISO date
    '<c r="D3"><v> 12</v></c>',                       # a number with a space
    '<c r="D3"><v>0x10</v></c>',                      # not a plain number
    '<c r="D3" t="inlineStr"><is><t/></is></c>',      # an empty text
    '<c r="D3" t="inlineStr"><is><t> </t></is></c>',  # a blank text
    '<c r="D3" t="inlineStr"><is><t xml:space="preserve">\t</t></is></c>',
    '<c r="D3" t="inlineStr"><is><t xml:space="preserve"/></is></c>',
    '<c r="D3" t="inlineStr"><is><t>a_x000D_b</t></is></c>',  # an escape
    '<c r="D3" t="inlineStr"><is><t>a</t><rPh sb="0" eb="1"><t>x</t></rPh></is></c>',  # a phonetic run
    '<c s="1" r="D3"><v>1</v></c>',                   # a cell whose first attribute is not its reference
    "<c><v>1</v></c>",                                # a cell without a reference
    "<c/>",
    '<c r=D3><v>1</v></c>',
])
def test_shapes_refuses_what_the_clean_shape_excludes(snippet):
    rows = ROWS.replace('<c r="C3"><v>7</v></c>', '<c r="C3"><v>7</v></c>' + snippet)
    with pytest.raises(district._NotClean):
        district._shapes([sheet(rows)], None)


@pytest.mark.parametrize("rows", [
    '<row spans="1:1" r="1"><c r="A1"><v>1</v></c></row>',  # a row whose first attribute is not its number
    "<row><c r=\"A1\"><v>1</v></c></row>",
    '<row r="2"><c r="A2"><v>1</v></c></row><row r="1"><c r="A1"><v>1</v></c></row>',  # out of order
    '<row r="1"><c r="A2"><v>1</v></c></row>',  # a cell of another row
    '<!DOCTYPE x><row r="1"/>',
])
def test_shapes_refuses_rows_of_another_shape(rows):
    with pytest.raises(district._NotClean):
        district._shapes([sheet(rows)], None)


def test_shapes_checks_the_shared_strings_too():
    district._shapes([sheet()], b"<sst><si><t>a</t></si></sst>")
    with pytest.raises(district._NotClean):
        district._shapes([sheet()], b"<sst><si><t>a</t></si><si><t></t></si></sst>")


class FakeSheet:
    def __init__(self, data):
        self.data = data

    def to_python(self, skip_empty_area):
        assert skip_empty_area is False
        return self.data


def test_grid_by_column_equals_grid_by_row():
    """The column-wise conversion gives the row-wise one's values and types (calamine's rectangle)."""
    data = [
        ["title", "", "", ""],
        ["", "", "", ""],
        ["a", "b", "c", "d"],
        ["x", 12.0, date(2021, 3, 5), 12.0],
        ["", 12.5, date(2021, 3, 5), datetime(2020, 1, 2)],
        ["y", 3.0, True, ""],
        ["", "", "", ""],
    ]
    lengths = {1: 4, 3: 4, 4: 4, 5: 4, 6: 3, 7: 2}
    floats = {(4, 4)}  # D4 written as 12.0: a float for openpyxl
    by_column = district._grid(FakeSheet(data), 8, lengths, floats)
    by_row = district._grid_by_row(data, 8, lengths, floats)
    assert by_column == by_row
    assert [list(map(type, r)) for r in by_column] == [list(map(type, r)) for r in by_row]
    assert by_column[3] == ("x", 12, datetime(2021, 3, 5), 12.0)
    assert type(by_column[3][1]) is int and type(by_column[3][3]) is float
    assert by_column[4] == (None, 12.5, datetime(2021, 3, 5), datetime(2020, 1, 2))
    assert by_column[5] == ("y", 3, True)       # as long as its last cell in the XML
    assert by_column[1] == () and by_column[7] == ()
    with pytest.raises(district._NotClean):      # a value beyond the row's last cell
        district._grid(FakeSheet(data), 8, {**lengths, 4: 3}, floats)
    with pytest.raises(district._NotClean):      # a time of day
        district._grid(FakeSheet([*data[:6], ["", "", datetime(2020, 1, 2, 10, 30), ""]]), 8, lengths, floats)
