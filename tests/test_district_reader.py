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
    '<row r="1"><c r="A1"><v>1</v></c><c r="b1"><v>1</v></c></row>',  # a reference that is not A1-style
    '<row r="1"><c r="ABCD1"><v>1</v></c></row>',
    '<row r="1"><c r="1"><v>1</v></c></row>',
    '<row r="1"><c r="A1B1"><v>1</v></c></row>',
    '<row r="1"><c r="A1><v>1</v></c></row>',
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
    grid = district._grid(FakeSheet(data), 8, lengths, floats)
    by_column = grid.rows()
    by_row = district._grid_by_row(data, 8, lengths, floats)
    assert grid.columns is not None  # a rectangle: kept as columns
    assert by_column == by_row
    # the rows asked one by one and the columns of the data rows give the same cells
    assert [grid.row(r) for r in range(1, 9)] == by_row
    ragged = district._Grid(8, lengths, rows=by_row)
    for i in range(5):
        expected = [row[i] if i < len(row) else None for row in by_row[3:]]
        assert district._grid(FakeSheet(data), 8, lengths, floats).column(i, 4) == expected
        assert ragged.column(i, 4) == expected
    assert [list(map(type, r)) for r in by_column] == [list(map(type, r)) for r in by_row]
    assert by_column[3] == ("x", 12, datetime(2021, 3, 5), 12.0)
    assert type(by_column[3][1]) is int and type(by_column[3][3]) is float
    assert by_column[4] == (None, 12.5, datetime(2021, 3, 5), datetime(2020, 1, 2))
    assert by_column[5] == ("y", 3, True)       # as long as its last cell in the XML
    assert by_column[1] == () and by_column[7] == ()
    with pytest.raises(district._NotClean):      # a value beyond the row's last cell
        district._grid(FakeSheet(data), 8, {**lengths, 4: 3}, floats)
    # a number column with and without cells written as floats, and with a non-integral number
    numbers = [["t"], [""], ["n"], [12.0], [3.0], [2.5], [float("inf")], [""]]
    lengths_n = {r: 1 for r in range(1, 9)}
    for written_as_float in (set(), {(4, 1)}, {(4, 1), (7, 1)}):
        by_col = district._grid(FakeSheet(numbers), 8, lengths_n, written_as_float).rows()
        assert by_col == district._grid_by_row(numbers, 8, lengths_n, written_as_float)
        assert [list(map(type, r)) for r in by_col] == [list(map(type, r)) for r in
                                                         district._grid_by_row(numbers, 8, lengths_n, written_as_float)]
        assert type(by_col[3][0]) is (float if written_as_float else int)
    with pytest.raises(district._NotClean):      # an integral number too large for a float to hold exactly
        district._grid(FakeSheet([*numbers[:4], [1e16], *numbers[5:]]), 8, lengths_n, set())
    for zero in (0.0, False):                    # a value that is falsy is a value all the same
        beyond = [*data[:5], ["y", 3.0, True, zero], data[6]]
        with pytest.raises(district._NotClean):
            district._grid(FakeSheet(beyond), 8, lengths, floats)
        with pytest.raises(district._NotClean):
            district._grid_by_row([*beyond[:6], ["", "", zero]], 8, lengths, floats)
    with pytest.raises(district._NotClean):      # a time of day
        district._grid(FakeSheet([*data[:6], ["", "", datetime(2020, 1, 2, 10, 30), ""]]), 8, lengths, floats)


# -- the ingest's workbook batches, a worker's imports, the parts parsed once ---------------------------------

def test_district_batches_start_with_two_workbooks_and_hold_about_a_mib(tmp_path):
    """The loader's first COPY waits for the first batch only: two workbooks (one alone would take the
    per-row parse), then the ramp, then about a MiB each; every file once, in delivery order."""
    from corridor import ingest

    def files(sizes: list[int]) -> list:
        paths = []
        for i, size in enumerate(sizes):
            path = tmp_path / f"LW_{201901 + i}_v1_{size}.xlsx"
            path.write_bytes(b"\0" * size)
            paths.append(path)
        return paths

    batch_bytes, least = ingest.BATCHES_OF["district"]
    province = files([70_000] * 60)
    batches = ingest._batches(province, ingest.RAMP, batch_bytes, least)
    assert [p for b in batches for p in b] == province
    assert len(batches[0]) == 2
    assert all(len(b) >= least for b in batches[:-1])
    assert all(sum(p.stat().st_size for p in b) <= batch_bytes or len(b) == least for b in batches)
    assert max(len(b) for b in batches) == batch_bytes // 70_000  # full batches after the ramp
    assert len(batches[1]) < len(batches[2]) < len(batches[3])
    # workbooks of 700 KB (national): two a batch, never one alone
    national = files([700_000] * 7)
    assert [len(b) for b in ingest._batches(national, ingest.RAMP, batch_bytes, least)] == [2, 2, 2, 1]
    # the other feeds keep their batches (one file may make a batch)
    assert [len(b) for b in ingest._batches(files([5_000_000, 10]), ingest.RAMP)] == [1, 1]


def test_a_worker_whose_workbooks_calamine_reads_never_imports_openpyxl(columns, tmp_path):
    """openpyxl (~0.3 s of CPU to import) is for the workbooks calamine does not read: a parsing worker
    given clean workbooks loads them without it, and a workbook calamine refuses brings it in."""
    import json
    import os
    import subprocess
    import sys
    from datetime import datetime

    from tests.test_fast_path import edge_workbook

    base = ["LW-X-0001", "项目", "重点区块", "中国眼谷", datetime(2020, 6, 1), "2023-12-31", "在建", 12.0, 45]
    clean = [edge_workbook(tmp_path / f"LW_202103_v{v}.xlsx", [base, base[:3]]) for v in (1, 2)]
    percent = edge_workbook(tmp_path / "LW_202103_v3.xlsx", [base], number_format="0%")  # openpyxl reads it
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from corridor.ingest import spool_batch\n"
        "columns = json.loads(sys.argv[1])\n"
        "def run(names):\n"
        "    out = spool_batch('district', [Path(n) for n in names], b'k' * 32, columns, sys.argv[2])\n"
        "    return [(s.rejected, s.failed, s.rows_loaded) for s in out]\n"
        "clean = run(sys.argv[3:5])\n"
        "after_clean = 'openpyxl' in sys.modules\n"
        "both = run(sys.argv[3:])\n"
        "print(json.dumps([clean, after_clean, both, 'openpyxl' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", script, json.dumps(columns), str(tmp_path), *map(str, clean),
                          str(percent)], capture_output=True, text=True, check=True,
                         env={**os.environ, "CORRIDOR_INGEST_FAST": "1"}).stdout
    clean_out, after_clean, both, after_percent = json.loads(out.splitlines()[-1])
    assert [(r, f) for r, f, _ in clean_out] == [(None, None), (None, None)]
    assert all(n > 0 for _, _, n in clean_out)
    assert after_clean is False
    assert [(r, f) for r, f, _ in both] == [(None, None)] * 3
    assert after_percent is True


def test_the_styles_and_workbook_parts_keep_their_verdict_from_one_workbook_to_the_next():
    """The styles and workbook parts are parsed once a process (by their bytes): a refused styles part is
    refused again, every time, and a clean one passes; the sheet names follow each workbook's own parts."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    percent = (f'<styleSheet {ns}><numFmts><numFmt numFmtId="164" formatCode="0%"/></numFmts>'
               '<cellXfs><xf numFmtId="0"/><xf numFmtId="164"/></cellXfs></styleSheet>').encode()
    clean = f'<styleSheet {ns}><cellXfs><xf numFmtId="0"/><xf numFmtId="14"/></cellXfs></styleSheet>'.encode()
    for _ in range(2):
        with pytest.raises(district._NotClean, match="0%"):
            district._check_styles(district._Parts({"xl/styles.xml": percent}))
        district._check_styles(district._Parts({"xl/styles.xml": clean}))
    rels = (b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            b'<Relationship Id="rId1" Target="worksheets/sheet1.xml"/>'
            b'<Relationship Id="rId2" Target="/xl/worksheets/sheet2.xml"/></Relationships>')

    def book(first: str) -> bytes:
        r = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
        return (f'<workbook {ns} {r}><sheets><sheet name="{first}" r:id="rId1"/><sheet name="企业认定" r:id="rId2"/>'
                "</sheets></workbook>").encode()

    for first in ("封面", "创新平台", "封面"):
        parts = district._sheet_parts(district._Parts({"xl/workbook.xml": book(first), "xl/_rels/workbook.xml.rels": rels}))
        assert parts == {first: "xl/worksheets/sheet1.xml", "企业认定": "xl/worksheets/sheet2.xml"}
        parts["x"] = "changed"  # the caller's dict is its own
    with pytest.raises(district._NotClean):
        district._sheet_parts(district._Parts({"xl/workbook.xml": book("封面").replace(b"<sheets>", b"<workbookPr date1904=\"1\"/><sheets>"),
                                               "xl/_rels/workbook.xml.rels": rels}))


def test_a_batch_checked_in_groups_gives_what_one_group_gives(columns, monkeypatch, tmp_path):
    """The sheets of a batch's workbooks are checked together, in groups of bounded size: a group per
    workbook gives every workbook what one group for the whole batch gives, the one calamine refuses
    (a percentage: openpyxl) and a broken file included, and calamine reads the same workbooks."""
    from datetime import datetime

    from corridor.feeds import _fast
    from corridor.ingest import spool_batch
    from tests.conftest import TEST_PII_KEY
    from tests.test_fast_path import content, edge_workbook

    base = ["LW-X-0001", "项目", "重点区块", "中国眼谷", datetime(2020, 6, 1), "2023-12-31", "在建", 12.0, 45]
    files = [edge_workbook(tmp_path / "LW_202103_v1.xlsx", [base, base[:3], ["合计"]]),
             edge_workbook(tmp_path / "LW_202103_v2.xlsx", [base], number_format="0%"),
             tmp_path / "LW_202103_v3.xlsx",
             edge_workbook(tmp_path / "LW_202103_v4.xlsx", [base, [None] * 9, base])]
    files[2].write_bytes(b"PK\x03\x04 not a workbook")
    monkeypatch.setattr(_fast, "ENABLED", True)
    read = []
    calamine_book = district._calamine_book

    def counting(book):
        got = calamine_book(book)
        read.append(got is not None)
        return got

    monkeypatch.setattr(district, "_calamine_book", counting)
    outcomes = {}
    for group_bytes in (district.CALAMINE_GROUP_BYTES, 1):
        monkeypatch.setattr(district, "CALAMINE_GROUP_BYTES", group_bytes)
        read.clear()
        spooled = spool_batch("district", files, TEST_PII_KEY, columns, str(tmp_path))
        outcomes[group_bytes] = ([content(s) for s in spooled], list(read))
    [(whole, read_whole), (grouped, read_grouped)] = outcomes.values()
    assert grouped == whole
    assert read_grouped == read_whole
    assert read_whole[:2] == [True, False] and read_whole.count(True) == 2  # v1, v4 by calamine (v2, v3 per row)
    assert whole[2]["rejected"] and whole[0]["loaded"] > 0 and whole[3]["loaded"] > 0
