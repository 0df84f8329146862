"""片区月报 — ``district/{AREA}_{YYYYMM}_v{N}.xlsx`` -> ``raw.district_*``.

Spec: shared/feeds/README.md §1. The cover sheet 封面 becomes one
``raw.district_returns`` row (填报人 and 联系电话, personal data, are never
read); the sheets 创新平台, 企业认定 and 重点项目 have a title in row 1, notes
in row 2, the header in row 3 and data from row 4.

A workbook is untrusted input: before anything opens it, its size and the
zip archive's uncompressed size and compression ratio are checked, and the
XML is parsed with defusedxml (openpyxl uses it when installed; parse
refuses to run without it).

Two readers give the same cells. openpyxl (read-only, streaming) is the
reference and reads any workbook. python-calamine (Rust, some 20x faster)
reads a workbook of the common clean shape, checked first from its XML
(:func:`_unpack`, then the sheets in one polars regex pass, :func:`_shapes_many`: in
:func:`run_batch`, one pass for the workbooks of a batch, up to :data:`CALAMINE_GROUP_BYTES` of XML):
no DTD or entity declaration anywhere (those stay for openpyxl and defusedxml
to refuse), unpacked sheets under :data:`CALAMINE_MAX_BYTES`, only number
formats both readers read alike (general, plain numbers, the usual date
formats; a percentage format goes to openpyxl, which shows it as displayed),
no date-styled number that is signed, of seven digits or more or written
with a point or an exponent (beyond openpyxl's dates, or a time of day), no
formulas, error or ISO-date cells, no numbers written in exponent form or
as an integral with a decimal point (openpyxl would give a float where
calamine's value looks integral), no empty strings, no ``_xHHHH_``
escapes (nor an ``x005F_``, which openpyxl takes out of a shared string), no
character references and no text with whitespace at an end unless marked
``xml:space="preserve"`` (calamine drops it, openpyxl keeps it). Its values
are then turned into what openpyxl gives (integral numbers as ``int``, dates
as ``datetime``, empty cells as ``None``, each row as long as its last cell in
the XML), column by column. Anything else, or
any calamine error, and the workbook is read by openpyxl.
``tests/test_fast_path.py`` holds both readers to the same COPY bytes,
quarantine entries and notes; ``tests/test_district_reader.py`` the checks
and the conversion.
"""

from __future__ import annotations

import importlib.util
import io as _io
import logging
import math
import os
import re
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache, partial
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from corridor import config
from corridor.config import Limits
from corridor.feeds import FileMeta, _fast
from corridor.feeds._rows import (
    Check,
    Field,
    Layout,
    RowLoader,
    dates_in_order,
    load_table,
    meta_for,
    open_regular,
)
from corridor.feeds.base import FileRejected, ParsedFile, Sink
from corridor.normalize import (
    NormalizeError,
    as_text,
    choice,
    code,
    header,
    is_blank,
    parse_date,
    parse_month,
    parse_number,
    show,
    text,
    uscc,
)

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook

log = logging.getLogger(__name__)

MAX_UNCOMPRESSED_BYTES = 500 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200  # uncompressed / compressed, whole archive
HEADER_ROW = 3

COVER = "封面"
COVER_LABELS = ("填报单位", "报告期", "报送日期")  # 填报人, 联系电话: personal, never read

PLATFORM_CATEGORIES = ("高能级创新平台", "省级企业研究院", "产业创新服务综合体", "高校协同创新中心",
                       "产教融合示范基地", "孵化器", "加速器", "科创飞地")
PLATFORM_LEVELS = ("国家级", "省级", "市级")
PLATFORM_CHANGES = ("新增", "撤销", "更新")
INCUBATORS = frozenset({"孵化器", "加速器"})
CERTIFICATION_TYPES = ("高新技术企业", "省级科技型中小企业", "瞪羚企业", "创新型领军企业")
CERTIFICATION_CHANGES = ("新增", "撤销")
PROJECT_CATEGORIES = ("重大科技项目", "卡脖子技术攻关", "重点区块", "未来社区", "交通路网", "环境整治")
PROJECT_STATUSES = ("谋划", "在建", "完成", "终止")


# -- the data sheets ----------------------------------------------------------------

def _platform_fields(meta: FileMeta) -> tuple[Field, ...]:
    return (
        Field("平台编号", "platform_id", code, required=True),
        Field("平台名称", "platform_name", text),
        # required for a 新增 (_check_platform): a 撤销 or 更新 names the platform by its 平台编号 (spec §1), and
        # the attributes it leaves blank are carried forward (int_platform_states_windowed)
        Field("平台类别", "platform_category", partial(choice, accepted=PLATFORM_CATEGORIES)),
        Field("级别", "platform_level", partial(choice, accepted=PLATFORM_LEVELS)),
        Field("认定日期", "recognised_date", partial(parse_date, hi=meta.period_end)),
        Field("依托单位", "host_name", text),
        Field("依托单位统一社会信用代码", "host_uscc", uscc),
        Field("变动类型", "change_type", partial(choice, accepted=PLATFORM_CHANGES), required=True),
        Field("孵化面积（平方米）", "incubation_area_m2", partial(parse_number, unit="㎡")),
    )


def _certification_fields(meta: FileMeta) -> tuple[Field, ...]:
    return (
        Field("统一社会信用代码", "uscc", uscc, required=True),
        Field("企业名称", "enterprise_name", text),
        Field("认定类别", "certification_type", partial(choice, accepted=CERTIFICATION_TYPES), required=True),
        Field("证书编号", "certificate_no", code, required=True),
        Field("认定日期", "granted_date", partial(parse_date, hi=meta.period_end)),
        Field("有效期至", "valid_until", parse_date),  # blank: open-ended; no upper bound
        Field("变动类型", "change_type", partial(choice, accepted=CERTIFICATION_CHANGES), required=True),
    )


def progress_pct(value: Any) -> Decimal:
    """形象进度: a percentage 0..100; outside it -> invalid_value (a number, but not an accepted one)."""
    pct = parse_number(value, unit="%", allow_negative=True)
    if not 0 <= pct <= 100:
        raise NormalizeError("invalid_value", f"{show(value)} is not a percentage within 0..100")
    return pct


def _project_fields(meta: FileMeta) -> tuple[Field, ...]:
    return (
        Field("项目编号", "project_id", code, required=True),
        Field("项目名称", "project_name", text),
        Field("项目类别", "project_category", partial(choice, accepted=PROJECT_CATEGORIES), required=True),
        Field("所属区块", "block_name", text),
        Field("开始日期", "start_date", parse_date),  # a planned project's start lies ahead: no upper bound
        Field("计划完成日期", "planned_completion_date", parse_date),
        Field("状态", "project_status", partial(choice, accepted=PROJECT_STATUSES), required=True),
        Field("累计完成投资（万元）", "cumulative_investment_10k_yuan", partial(parse_number, unit="万元")),
        Field("形象进度（%）", "progress_pct", progress_pct),
    )


def _required_for_new(row: dict[str, Any], column: str, source: str, what: str = "row") -> None:
    if row["change_type"] == "新增" and row[column] is None:
        raise NormalizeError("missing_value", f"{source} is blank but required for a 新增 {what}")


def _check_platform(row: dict[str, Any], _source_row: int) -> None:
    _required_for_new(row, "platform_category", "平台类别")
    _required_for_new(row, "recognised_date", "认定日期")
    if row["platform_category"] in INCUBATORS:
        _required_for_new(row, "incubation_area_m2", "孵化面积（平方米）", row["platform_category"])


def _check_certification(row: dict[str, Any], _source_row: int) -> None:
    _required_for_new(row, "granted_date", "认定日期")
    dates_in_order(row, "granted_date", "valid_until", "认定日期", "有效期至")


def _check_project(row: dict[str, Any], _source_row: int) -> None:
    dates_in_order(row, "start_date", "planned_completion_date", "开始日期", "计划完成日期")


@dataclass(frozen=True)
class Sheet:
    name: str
    table: str
    fields: Callable[[FileMeta], tuple[Field, ...]]
    check: Check | None = None


SHEETS = (
    Sheet("创新平台", "raw.district_platforms", _platform_fields, _check_platform),
    Sheet("企业认定", "raw.district_certifications", _certification_fields, _check_certification),
    Sheet("重点项目", "raw.district_projects", _project_fields, _check_project),
)
WANTED = (COVER, *(s.name for s in SHEETS))  # the sheets read


# -- opening the workbook safely -----------------------------------------------------

def _check_archive(path: Path, fh: BinaryIO) -> None:
    """Size limits before any XML is parsed (the declared sizes bind: zipfile reads no further)."""
    try:
        with zipfile.ZipFile(fh) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileRejected(f"{path.name} is not a readable xlsx workbook: {_what_it_is(fh) or exc}") from None
    unpacked = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    if unpacked > MAX_UNCOMPRESSED_BYTES:
        raise FileRejected(f"{path.name} unpacks to {unpacked:,} bytes, over the limit of "
                           f"{MAX_UNCOMPRESSED_BYTES:,}")
    if unpacked > MAX_COMPRESSION_RATIO * max(packed, 1):
        raise FileRejected(f"{path.name} has a compression ratio of {unpacked / max(packed, 1):,.0f}:1, "
                           f"over the limit of {MAX_COMPRESSION_RATIO}:1 (a zip bomb?)")


_OLE2 = bytes.fromhex("D0CF11E0A1B11AE1")  # the compound file of .xls workbooks (and of password-protected .xlsx)


def _what_it_is(fh: BinaryIO) -> str | None:
    """What a file that is no zip archive looks like, for its rejection (None: nothing recognisable)."""
    fh.seek(0)
    head = fh.read(1024)
    if not head:
        return "the file is empty (0 bytes); deliver the workbook again"
    if head.startswith(_OLE2):
        return ("it is an Excel 97-2003 workbook (.xls) or a password-protected one, not an .xlsx;"
                " save it as .xlsx (Excel Workbook) without a password and deliver it again")
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(b"<"):
        kind = "an HTML page" if b"<html" in text or b"<!doctype html" in text else "an XML or HTML text file"
        return (f"it is {kind}, not a workbook (an error or login page saved under the workbook's name?);"
                " deliver the workbook itself")
    if head.startswith(b"PK"):
        return ("it is a truncated or damaged zip archive (an xlsx workbook is one): the transfer may have been"
                " cut off; deliver the workbook again")
    return None


def _defusedxml() -> bool:
    """openpyxl.xml.DEFUSEDXML (openpyxl parses with defusedxml), without importing openpyxl where it is not yet.

    openpyxl is imported only for a workbook it reads (~0.3 s of CPU: a parsing worker whose workbooks
    calamine reads never pays for it); its own flag decides once it is imported.
    """
    flags = sys.modules.get("openpyxl.xml")
    if flags is not None:
        return bool(flags.DEFUSEDXML)
    return (importlib.util.find_spec("defusedxml") is not None
            and os.environ.get("OPENPYXL_DEFUSEDXML", "True") == "True")


def _column_letter(n: int) -> str:
    """openpyxl's get_column_letter: 1 -> A, 27 -> AA."""
    letters = ""
    while n > 0:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _open(path: Path, fh: BinaryIO) -> Workbook:
    import openpyxl
    import openpyxl.xml

    if not openpyxl.xml.DEFUSEDXML:
        raise RuntimeError("defusedxml is not installed: refusing to parse untrusted xlsx files")
    try:
        fh.seek(0)
        return openpyxl.load_workbook(fh, read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors on a broken file
        raise FileRejected(f"{path.name} is not a readable xlsx workbook: {_root_cause(exc)}") from None


def _root_cause(exc: BaseException) -> str:
    """The innermost exception, which names the problem (openpyxl wraps it in a generic ValueError)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return f"{type(exc).__name__}: {exc}"


def _cell_value(cell: Any) -> Any:
    """The cell's value; a number formatted as a percentage as it displays (0.85 -> "85%"). A number whose cell
    style the workbook does not define (openpyxl raises IndexError for its format) is the number, as calamine
    reads it (openpyxl itself reads the value, only not its format)."""
    value = cell.value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number_format = cell.number_format
        except IndexError:
            return value
        if "%" in (number_format or ""):
            return f"{(Decimal(str(value)) * 100).normalize():f}%"
    return value


def _rows(ws: Any, where: str) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(Excel row number, cell values) of a sheet; an unreadable sheet rejects the file."""
    ws.reset_dimensions()  # do not trust the file's declared dimensions (it may truncate columns)
    rows = ws.iter_rows()
    row_no = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # broken XML, forbidden entities …
            raise FileRejected(f"{where} is unreadable after row {row_no}: {_root_cause(exc)}") from None
        row_no += 1
        yield row_no, tuple(_cell_value(c) for c in cells)


class _OpenpyxlBook:
    """The reference reader: openpyxl, read-only, streaming."""

    def __init__(self, wb: Workbook) -> None:
        self.wb = wb
        self.sheetnames: list[str] = wb.sheetnames

    def rows(self, name: str, where: str) -> Iterator[tuple[int, tuple[Any, ...]]]:
        return _rows(self.wb[name], where)

    def close(self) -> None:
        self.wb.close()


# -- the calamine reader (the common clean shape) --------------------------------------

CALAMINE_MAX_BYTES = 32 * 1024 * 1024  # unpacked sheets; a larger workbook streams through openpyxl
CALAMINE_GROUP_BYTES = 2 * CALAMINE_MAX_BYTES  # a batch's workbooks held unpacked at once, checked together
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
# Number formats both readers read alike: numbers (openpyxl: not a date, no %) and dates (both: a date).
_NUMBER_FORMATS = frozenset({0, 1, 2, 3, 4, 49})  # General, 0, 0.00, #,##0, #,##0.00, @
_DATE_FORMATS = frozenset({14})                     # mm-dd-yy
_NUMBER_CODES = frozenset({"General", "0", "0.00", "#,##0", "#,##0.00", "@"})
_DATE_CODES = frozenset({"yyyy-mm-dd", "yyyy/m/d", "yyyy/mm/dd", 'yyyy"年"m"月"d"日"', "yyyy-m-d",
                         "yyyy.m.d", "yyyy.mm.dd", "mm-dd-yy", "yyyy年m月d日", "yyyy-mm-dd h:mm:ss"})
# What makes a sheet's XML not of the clean shape: a DTD, entity or CDATA (<!), a formula, an error,
# string-formula or ISO-date cell, a phonetic run, a value that is not a plain number (spaces, other
# characters), an empty or self-closing text, an _xHHHH_ escape (and x005F_ anywhere: openpyxl takes it out of
# a shared string, calamine does not; a character reference: &#x5F;x0041_ is "A" for calamine), a text with
# whitespace at an end but no xml:space="preserve" (calamine drops that whitespace, openpyxl keeps it; a <t>
# with other attributes: _OTHER_TEXT), a row or cell whose first attribute is not
# its reference (as Excel, xlsxwriter and openpyxl write them). One regular expression run by polars (Rust):
# one pass over the text where Python's re took a dozen, each slower (\s is written out as ASCII whitespace).
_WS = r"[ \t\n\r\f\v]"
# A text element with attributes other than xml:space="preserve" alone: "<t " then anything but that (spelled
# out character by character: the regular expressions have no look-ahead, and one pass beats counting apart).
_PRESERVE = 'xml:space="preserve">'
_OTHER_TEXT = "<t (?:" + "|".join(f"{re.escape(_PRESERVE[:i])}[^{re.escape(_PRESERVE[i])}]"
                                  for i in range(len(_PRESERVE))) + ")"
_UNSAFE = "|".join((
    r"<!", r"<f", r' t="e"', r' t="str"', r' t="d"', r"<rPh", r"<v>[^<]*[^0-9.eE+<-]",
    r"<t/>", rf"<t>{_WS}*</t>", r"<t [^>]*/>", rf"<t [^>]*>{_WS}*</t>", r"_x[0-9A-Fa-f]{4}_", r"x005F_", r"&#",
    rf"<t>{_WS}", rf"<t>[^<]*{_WS}</t>", _OTHER_TEXT,
    r'<row(?:>|/| [^r]| r[^=]| r=[^"])', r'<c(?:>|/| [^r]| r[^=]| r=[^"])'))
# A number written with a decimal point or an exponent (openpyxl gives a float: 12.00 -> 12.0, else an int), a
# signed one or one of seven digits or more: under a date style the last two and any of an exponent may be
# beyond what openpyxl takes for a date (it reads #VALUE! where calamine reads a number: 2958466, +2958466,
# 1E+400), and the first ones hold a time of day, so a date-styled cell of any of them goes to openpyxl
# (:func:`_shape`).
_NUMBER_CELL_OF_NOTE = rf'"[A-Z]{{1,3}}[0-9]+"[^>]*>{_WS}*<v>(?:[^<]*[.eE]|{_WS}*[-+]|{_WS}*[0-9]{{7}})'
# A cell's style, among the attributes _NUMBER_CELL_OF_NOTE holds (XML allows either quote and whitespace
# around "=").
_STYLE_ATTRIBUTE = re.compile(r'\ss[ \t\n\r]*=[ \t\n\r]*(["\'])([^"\']*)\1')
_EARLIEST_SERIAL_DATE = datetime(1900, 3, 1)  # before it Excel's phantom 1900-02-29 makes readers differ


class _NotClean(Exception):
    """The workbook is not of the shape the calamine reader is held to: openpyxl reads it."""


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


class _Parts(dict):
    """An archive's XML parts already unpacked (name -> bytes), read as ``zipfile.ZipFile.read`` reads them."""

    def read(self, name: str) -> bytes:
        return self[name]  # KeyError when there is no such part, as zipfile


def _xml(archive: zipfile.ZipFile | _Parts, name: str) -> bytes | None:
    try:
        data = archive.read(name)
    except KeyError:
        return None
    if b"<!" in data:
        raise _NotClean(f"{name}: a DTD, entity or CDATA")
    return data


def _parse_xml(data: bytes) -> Any:
    from defusedxml import ElementTree

    return ElementTree.fromstring(data)


def _check_styles(archive: zipfile.ZipFile | _Parts) -> frozenset[int]:
    """The workbook's cell styles (``s``) of a date format, when each of its number formats is one both readers
    read alike."""
    data = _xml(archive, "xl/styles.xml")
    if data is None:
        return frozenset()
    refused = _styles_refused(data)
    if refused:
        raise _NotClean(refused)
    return _date_styles(data)


# The workbooks of one producer share their styles and workbook parts byte for byte: each is parsed once a
# process (a few hundred microseconds a workbook otherwise), its verdict kept by its bytes.
@lru_cache(maxsize=64)
def _number_formats(data: bytes) -> tuple[dict[int, str], tuple[int, ...]]:
    """A styles part's custom number formats (id -> code) and each cell style's number format id, in order."""
    root = _parse_xml(data)
    codes = {int(f.get("numFmtId", "-1")): f.get("formatCode", "")
             for f in root.iter(f"{_NS_MAIN}numFmt")}
    xfs = root.find(f"{_NS_MAIN}cellXfs")
    return codes, tuple(int(xf.get("numFmtId", "0")) for xf in ([] if xfs is None else xfs.iter(f"{_NS_MAIN}xf")))


@lru_cache(maxsize=64)
def _styles_refused(data: bytes) -> str | None:
    """Why the styles part is not of the clean shape (a number format the readers read otherwise), or None."""
    codes, formats = _number_formats(data)
    for fmt in formats:
        code = codes.get(fmt)
        if code is None:
            if fmt not in _NUMBER_FORMATS | _DATE_FORMATS:
                return f"number format {fmt}"
        elif code not in _NUMBER_CODES | _DATE_CODES:
            return f"number format {code!r}"
    return None


@lru_cache(maxsize=64)
def _date_styles(data: bytes) -> frozenset[int]:
    """The cell styles of a date format, in a styles part that :func:`_styles_refused` lets pass."""
    codes, formats = _number_formats(data)
    return frozenset(i for i, fmt in enumerate(formats) if fmt in _DATE_FORMATS or codes.get(fmt) in _DATE_CODES)


def _sheet_parts(archive: zipfile.ZipFile | _Parts) -> dict[str, str]:
    """Sheet name -> its XML part."""
    book = _xml(archive, "xl/workbook.xml")
    rels = _xml(archive, "xl/_rels/workbook.xml.rels")
    if book is None or rels is None or b"date1904" in book:
        raise _NotClean("no workbook part, or the 1904 date system")
    return dict(_parts_of(book, rels))


@lru_cache(maxsize=64)
def _parts_of(book: bytes, rels: bytes) -> tuple[tuple[str, str], ...]:
    """:func:`_sheet_parts` from the workbook part and its relationships."""
    targets = {r.get("Id"): r.get("Target", "") for r in _parse_xml(rels)}
    parts = {}
    for sheet in _parse_xml(book).iter(f"{_NS_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_NS_REL}id"), "")
        parts[sheet.get("name")] = target[1:] if target.startswith("/") else f"xl/{target}"
    return tuple(parts.items())


def _shapes(xmls: list[bytes], strings: bytes | None, date_styles: frozenset[int] = frozenset()
            ) -> list[tuple[int, dict[int, int], set[tuple[int, int]]]]:
    """As openpyxl reads each sheet: (the last row number, row number -> its length (the column of its last
    cell), the (row, column) of the numbers it reads as floats). The shared strings are checked alike.
    :func:`_shapes_many` of one workbook (``date_styles``: its cell styles of a date format,
    :func:`_check_styles`)."""
    [shapes] = _shapes_many([(xmls, strings, date_styles)])
    if isinstance(shapes, _NotClean):
        raise shapes
    return shapes


Shape = tuple[int, dict[int, int], set[tuple[int, int]]]


def _shapes_many(books: list[tuple[list[bytes], bytes | None, frozenset[int]]]) -> list[list[Shape] | _NotClean]:
    """:func:`_shapes` of several workbooks (their sheets' XML, shared strings, date styles), each its own verdict:
    its sheets' shapes or why it is not of the clean shape. One polars call for all of them (each call
    costs some milliseconds: per workbook it was ~0.6 ms of a 27 ms parse at province)."""
    out: list[list[Shape] | _NotClean | None] = [None] * len(books)
    texts: list[str] = []
    spans: list[tuple[int, int, int, int]] = []  # (book, first text, its sheets, its texts)
    for k, (xmls, strings, _) in enumerate(books):
        try:  # calamine reads UTF-8; another encoding goes to openpyxl
            mine = [xml.decode("utf-8") for xml in xmls] + ([] if strings is None else [strings.decode("utf-8")])
        except UnicodeDecodeError:
            out[k] = _NotClean("sheet XML not in UTF-8")
            continue
        if not all("<sheetData" in text for text in mine[:len(xmls)]):
            out[k] = _NotClean("sheet XML")
            continue
        spans.append((k, len(texts), len(xmls), len(mine)))
        texts += mine
    if texts:
        pl = _fast.pl
        frame = pl.DataFrame({"xml": texts}, schema={"xml": pl.String}).select(
            pl.col("xml").str.contains(_UNSAFE).alias("unsafe"),
            pl.col("xml").str.extract_all(_NUMBER_CELL_OF_NOTE))
        unsafe, floats = frame["unsafe"].to_list(), frame["xml"].to_list()
        for k, first, n_sheets, n_texts in spans:
            if any(unsafe[first:first + n_texts]):
                out[k] = _NotClean("sheet or shared strings XML")
                continue
            try:
                out[k] = [_shape(xml, cells, books[k][2]) for xml, cells in zip(books[k][0],
                                                                               floats[first:first + n_sheets],
                                                                               strict=True)]
            except Exception as exc:  # noqa: BLE001 - any surprise in the XML: openpyxl reads the workbook
                out[k] = exc if isinstance(exc, _NotClean) else _NotClean(f"{type(exc).__name__}: {exc}")
    return out  # type: ignore[return-value]


def _shape(xml: bytes, noted_cells: list[str], date_styles: frozenset[int] = frozenset()
           ) -> tuple[int, dict[int, int], set[tuple[int, int]]]:
    """:func:`_shapes` of one sheet, its number cells of note found (the text of each, from its reference on:
    _NUMBER_CELL_OF_NOTE: the floats, the signed numbers and those of seven digits or more)."""
    columns: dict[bytes, int] = {}
    lengths: dict[int, int] = {}
    rows: list[int] = []
    for chunk in xml.split(b'<row r="')[1:]:  # a row and its cells (the last also what follows the rows)
        number = chunk[:chunk.find(b'"')]
        if not number.isdigit():
            raise _NotClean("a row number")
        row = int(number)
        if rows and row <= rows[-1]:
            raise _NotClean("rows out of order")
        rows.append(row)
        last = chunk.rfind(b'<c r="')
        if last < 0:
            continue
        ref = chunk[last + 6:chunk.find(b'"', last + 6)]  # its last cell's reference: letters, then the row
        letters = ref.rstrip(b"0123456789")
        if ref[len(letters):] != number:
            raise _NotClean(f"row {row}: a cell of another row")
        col = columns.get(letters)
        if col is None:
            if not (0 < len(letters) <= 3 and letters.isalpha() and letters.isupper()):
                raise _NotClean(f"row {row}: a cell reference {ref!r}")
            col = columns[letters] = _column_number(letters)
        lengths[row] = col
    floats = set()
    for cell in noted_cells:
        style = _STYLE_ATTRIBUTE.search(cell, cell.index('"', 1))
        if style is not None and (not style[2].isdigit() or int(style[2]) in date_styles):
            raise _NotClean(f"a date cell written as {cell[cell.rindex('<v>') + 3:]!r}…")
        if cell[-1] not in ".eE":  # signed, or seven digits or more: an int for openpyxl
            continue
        ref = cell[1:cell.index('"', 1)].encode()
        letters = ref.rstrip(b"0123456789")
        col = columns.get(letters)
        if col is None:
            col = columns[letters] = _column_number(letters)
        floats.add((int(ref[len(letters):]), col))
    return (rows[-1] if rows else 0), lengths, floats


def _as_openpyxl(value: Any, written_as_float: bool) -> Any:
    """A calamine value as openpyxl gives that cell (read-only, data_only)."""
    kind = type(value)
    if kind is str:
        return value or None
    if kind is float:
        if value.is_integer() and not written_as_float:
            if abs(value) >= 1e15:  # openpyxl's int may hold digits a float does not
                raise _NotClean("a large integer")
            return int(value)
        return value
    if kind is date:
        value = datetime(value.year, value.month, value.day)
    elif kind is datetime:
        if value.time() != datetime.min.time():  # fractions of a day: rounding may differ
            raise _NotClean("a time of day")
    elif kind is bool or kind is int:
        return value
    else:  # time, timedelta
        raise _NotClean(f"a {kind.__name__} cell")
    if value < _EARLIEST_SERIAL_DATE:
        raise _NotClean("a date before 1900-03-01")
    return value


_STR_ONLY = frozenset({str})


def _row_as_openpyxl(row_no: int, raw: Any, floats: set[tuple[int, int]], days: dict[Any, Any]) -> list[Any]:
    """:func:`_as_openpyxl` of a row's cells."""
    return [v or None if type(v) is str else _day(v, days) if type(v) is date
            else _as_openpyxl(v, (row_no, col) in floats) for col, v in enumerate(raw, 1)]


def _day(value: Any, days: dict[Any, Any]) -> Any:
    """:func:`_as_openpyxl` of a date cell, remembered in ``days`` (dates repeat)."""
    day = days.get(value)
    if day is None:
        day = days[value] = _as_openpyxl(value, False)
    return day


def _column_as_openpyxl(col: int, values: tuple[Any, ...], floats: set[tuple[int, int]],
                        days: dict[Any, Any]) -> list[Any]:
    """:func:`_as_openpyxl` of a column's cells (row 1 on), in one comprehension (not a call per cell)."""
    kinds = set(map(type, values))
    if kinds <= _STR_ONLY:
        return [v or None for v in values]
    # an integral number is an int unless written as a float (12.0) in this column's rows ``here``
    here = {r for r, c in floats if c == col}
    if kinds <= {str, float} and not here:
        return [v or None if type(v) is str else v if not v.is_integer() else int(v) if abs(v) < 1e15
                else _as_openpyxl(v, False) for v in values]
    if kinds <= {str, float}:
        return [v or None if type(v) is str else v if not v.is_integer() or r in here else int(v) if abs(v) < 1e15
                else _as_openpyxl(v, False) for r, v in enumerate(values, 1)]
    if kinds <= {str, date}:
        return [v or None if type(v) is str else days.get(v) or _day(v, days) for v in values]
    return [v or None if (kind := type(v)) is str else days.get(v) or _day(v, days) if kind is date
            else int(v) if kind is float and v.is_integer() and abs(v) < 1e15 and r not in here
            else _as_openpyxl(v, r in here) for r, v in enumerate(values, 1)]


class _Grid:
    """A sheet as openpyxl gives it: rows 1 to ``last_row``, each as long as its last cell in the XML.

    Kept as calamine's columns converted (:func:`_column_as_openpyxl`, row 1 on) where calamine's grid is a
    rectangle, so that :func:`_split` takes the data rows' columns without turning them into rows and back;
    else as the rows (:func:`_grid_by_row`).
    """

    __slots__ = ("columns", "height", "last_row", "lengths", "_rows")

    def __init__(self, last_row: int, lengths: dict[int, int], *, columns: list[list[Any]] | None = None,
                 height: int = 0, rows: list[tuple[Any, ...]] | None = None) -> None:
        self.last_row, self.lengths = last_row, lengths
        self.columns, self.height = columns, height  # height: the rows the columns hold
        self._rows = rows

    def row(self, row_no: int) -> tuple[Any, ...]:
        """Row ``row_no`` (1 to last_row)."""
        if self._rows is not None:
            return self._rows[row_no - 1]
        n = self.lengths.get(row_no, 0)
        if row_no > self.height:
            return (None,) * n
        columns = self.columns or []
        cells = tuple([column[row_no - 1] for column in columns[:n]])
        return cells + (None,) * (n - len(cells)) if len(cells) < n else cells

    def rows(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            self._rows = [self.row(r) for r in range(1, self.last_row + 1)]
        return self._rows

    def column(self, i: int, first_row: int) -> list[Any]:
        """Column ``i`` (0 on) of rows ``first_row`` to last_row; None where a row is shorter."""
        if self._rows is not None:
            return [row[i] if i < len(row) else None for row in self._rows[first_row - 1:]]
        columns = self.columns or []
        values = columns[i][first_row - 1:self.height] if i < len(columns) else []
        return values + [None] * (self.last_row - first_row + 1 - len(values))


def _grid(sheet: Any, last_row: int, lengths: dict[int, int], floats: set[tuple[int, int]]) -> _Grid:
    data = sheet.to_python(skip_empty_area=False)
    if len(data) > last_row:
        raise _NotClean("cells beyond the last row")
    width = len(data[0]) if data else 0
    if len(set(map(len, data))) > 1:
        return _Grid(last_row, lengths, rows=_grid_by_row(data, last_row, lengths, floats))
    # column by column (calamine's grid is a rectangle from A1): a comprehension per column, not a call per cell
    for row_no, raw in enumerate(data, 1):
        n = lengths.get(row_no, 0)
        if width > n and raw[n:].count("") != width - n:  # calamine's empty cells are "" (a 0 is a value)
            raise _NotClean(f"row {row_no}: a value beyond its last cell")
    days: dict[Any, Any] = {}
    longest = max(lengths.values(), default=0)
    columns = list(zip(*data, strict=True)) if data else []
    converted = [_column_as_openpyxl(col, values, floats, days) for col, values in enumerate(columns[:longest], 1)]
    return _Grid(last_row, lengths, columns=converted, height=len(data))


def _grid_by_row(data: list[list[Any]], last_row: int, lengths: dict[int, int], floats: set[tuple[int, int]]
                 ) -> list[tuple[Any, ...]]:
    """:func:`_grid` row by row (rows of calamine's grid of different lengths)."""
    out = []
    empty = ()
    days: dict[Any, Any] = {}
    for row_no in range(1, last_row + 1):
        n = lengths.get(row_no, 0)
        raw = data[row_no - 1] if row_no <= len(data) else empty
        if len(raw) > n and raw[n:].count("") != len(raw) - n:  # calamine's empty cells are "" (a 0 is a value)
            raise _NotClean(f"row {row_no}: a value beyond its last cell")
        raw = raw[:n]
        cells = ([v or None for v in raw] if _STR_ONLY.issuperset(map(type, raw))
                 else _row_as_openpyxl(row_no, raw, floats, days))
        if len(cells) < n:
            cells += [None] * (n - len(cells))
        out.append(tuple(cells))
    return out


class _CalamineBook:
    """The workbook read whole by python-calamine, each sheet as openpyxl would give it."""

    def __init__(self, sheetnames: list[str], grids: dict[str, _Grid]) -> None:
        self.sheetnames = sheetnames
        self.grids = grids

    def rows(self, name: str, where: str) -> Iterator[tuple[int, tuple[Any, ...]]]:
        return enumerate(self.grids[name].rows(), 1)

    def close(self) -> None:
        self.grids.clear()


@dataclass
class _Unpacked:
    """A workbook's parts as the calamine reader checks them, before its sheets' shapes are known."""

    data: bytes                    # the whole file (calamine reads it from memory)
    sheetnames: list[str]          # all its sheets, in order
    sheets: dict[str, bytes]       # the sheets wanted: name -> XML
    strings: bytes | None          # the shared strings part
    date_styles: frozenset[int]    # its cell styles of a date format
    shapes: list[Shape] | None = None  # of the sheets wanted, once checked (:func:`_check_shapes`)

    @property
    def size(self) -> int:
        """Bytes held: the file, its sheets' and shared strings' XML."""
        return len(self.data) + sum(map(len, self.sheets.values())) + len(self.strings or b"")


def _unpack(fh: BinaryIO, wanted: tuple[str, ...]) -> _Unpacked | None:
    """The parts of a workbook that may be of the clean shape (all but its sheets' shapes checked), or None.

    Call after :func:`_check_archive`. Only the sheets ``wanted`` (compared as :func:`header` compares
    them) are kept; None when calamine is off or missing or the workbook is not of the clean shape.
    """
    if not _fast.ENABLED or importlib.util.find_spec("python_calamine") is None:
        return None
    try:
        fh.seek(0)
        data = fh.read()
        with zipfile.ZipFile(_io.BytesIO(data)) as archive:
            if sum(m.file_size for m in archive.infolist()) > CALAMINE_MAX_BYTES:
                return None
            read = _Parts()  # each part unpacked once (the sheets are checked by _shapes_many)
            for member in archive.infolist():
                if not member.filename.startswith("xl/worksheets/") and member.filename.endswith((".xml", ".rels")):
                    part = read[member.filename] = archive.read(member)
                    if b"<!" in part:
                        return None
            strings = _xml(read, "xl/sharedStrings.xml")
            date_styles = _check_styles(read)
            parts = _sheet_parts(read)
            wanted_keys = {header(w) for w in wanted}
            sheets = {name: archive.read(part) for name, part in parts.items() if header(name) in wanted_keys}
    except Exception:  # _NotClean, a broken part: the reference reader decides
        return None
    return _Unpacked(data, list(parts), sheets, strings, date_styles)


def _check_shapes(books: list[_Unpacked | None]) -> None:
    """The sheets' shapes of several unpacked workbooks, in one polars call (:func:`_shapes_many`)."""
    todo = [book for book in books if book is not None]
    try:
        verdicts = _shapes_many([(list(b.sheets.values()), b.strings, b.date_styles) for b in todo])
    except Exception:  # polars failed on them: the reference reader reads them
        log.exception("checking the sheets of %d workbook(s) failed: openpyxl reads them", len(todo))
        return
    for book, shapes in zip(todo, verdicts, strict=True):
        book.shapes = None if isinstance(shapes, _NotClean) else shapes


def _calamine_book(book: _Unpacked | None) -> _CalamineBook | None:
    """The workbook read by python-calamine when it is of the clean shape (module docstring), else None.

    ``book``: from :func:`_unpack`, its shapes checked (:func:`_check_shapes`). None also when calamine
    fails on the file: openpyxl then reads it (and rejects it with its own reason).
    """
    if book is None or book.shapes is None:
        return None
    try:
        import python_calamine

        wb = python_calamine.CalamineWorkbook.from_filelike(_io.BytesIO(book.data))
        try:
            if wb.sheet_names != book.sheetnames or any(
                    m.typ != python_calamine.SheetTypeEnum.WorkSheet for m in wb.sheets_metadata):
                return None
            grids = {name: _grid(wb.get_sheet_by_name(name), *shape)
                     for name, shape in zip(book.sheets, book.shapes, strict=True)}
        finally:
            wb.close()
    except Exception:  # _NotClean, a calamine error: the reference reader decides
        return None
    return _CalamineBook(book.sheetnames, grids)


def _read_calamine(fh: BinaryIO, wanted: tuple[str, ...]) -> _CalamineBook | None:
    """:func:`_calamine_book` of one workbook (its archive checked already)."""
    book = _unpack(fh, wanted)
    _check_shapes([book])
    return _calamine_book(book)


def _sheet(wb: Any, name: str, file_name: str) -> str:
    """The actual name of a sheet, stray spaces and full-width characters ignored."""
    for actual in wb.sheetnames:
        if header(actual) == header(name):
            return actual
    raise FileRejected(f"{file_name} has no sheet {name} (its sheets: {', '.join(wb.sheetnames)})")


# -- parsing -------------------------------------------------------------------------

def _cover(wb: Any, file_name: str, meta: FileMeta, parsed: ParsedFile) -> dict[str, Any]:
    """The raw.district_returns row: label/value pairs, each value in the cell right of its label."""
    where = f"{file_name} {COVER}"
    found: dict[str, tuple[int, Any]] = {}
    for row_no, cells in wb.rows(_sheet(wb, COVER, file_name), where):
        for i, cell in enumerate(cells):
            label = header(cell).rstrip(":") if isinstance(cell, str) else ""
            if label in COVER_LABELS and label not in found:
                found[label] = (row_no, cells[i + 1] if i + 1 < len(cells) else None)
    period_row, period = found.get("报告期", (1, None))
    if not is_blank(period):
        try:
            month = parse_month(period)
        except NormalizeError as exc:
            raise FileRejected(f"{where} row {period_row}: 报告期 {exc.message}") from None
        if month != meta.period_start:
            raise FileRejected(f"{where} row {period_row}: 报告期 {show(period)} is {month:%Y-%m}, "
                               f"but the file name says {meta.period_start:%Y-%m}")
    submitted_row, submitted = found.get("报送日期", (1, None))
    submitted_date = None
    if not is_blank(submitted):
        try:
            submitted_date = parse_date(submitted, lo=None)
        except NormalizeError as exc:
            parsed.notes.append(f"{where} row {submitted_row}: 报送日期 {exc.message}; kept as null")
    unit = found.get("填报单位", (1, None))[1]
    return {"reporting_unit": text(unit), "report_period": None if is_blank(period) else as_text(period).strip(),
            "submitted_date": submitted_date, "source_row": period_row}


def _header(rows: Iterator[tuple[int, tuple[Any, ...]]], sheet: Sheet, meta: FileMeta,
            where: str) -> tuple[tuple[Field, ...], Layout]:
    """The sheet's fields and their columns, from the header in row HEADER_ROW (rows read up to it)."""
    header_cells = next((cells for row_no, cells in rows if row_no == HEADER_ROW), None)
    if header_cells is None:
        raise FileRejected(f"{where}: no header in row {HEADER_ROW}")
    fields = sheet.fields(meta)
    layout = Layout.from_header(header_cells, fields, f"{where} row {HEADER_ROW}",
                                name_of=lambda i: _column_letter(i + 1))
    return fields, layout


def _load_sheet(parsed: ParsedFile, wb: Any, sheet: Sheet, meta: FileMeta,
                constants: dict[str, Any], file_name: str, limits: Limits) -> None:
    where = f"{file_name} {sheet.name}"
    rows = wb.rows(_sheet(wb, sheet.name, file_name), where)
    fields, layout = _header(rows, sheet, meta, where)
    loader = RowLoader(parsed, sheet.table, fields, where=where, constants=constants,
                       record=layout.record, check=sheet.check, sheet=sheet.name, limits=limits, keys=layout.key)
    load_table(loader, layout, rows)


def parse(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> ParsedFile:
    meta = meta_for("district", path)
    settings = config.load()
    limits = limits or settings.limits
    with open_regular(path, max_bytes=settings.max_xlsx_bytes, limit_name="CORRIDOR_MAX_XLSX_BYTES") as fh:
        _check_archive(path, fh)
        if not _defusedxml():
            raise RuntimeError("defusedxml is not installed: refusing to parse untrusted xlsx files")
        wb = _read_calamine(fh, WANTED) or _OpenpyxlBook(_open(path, fh))
        try:
            parsed = ParsedFile("district", path.name, file_version=meta.version, sink=sink)
            constants = {"area_code": meta.area_code, "report_month": meta.period_start,
                         "file_version": meta.version}
            parsed.add("raw.district_returns", {**_cover(wb, path.name, meta, parsed), **constants})
            for sheet in SHEETS:
                _load_sheet(parsed, wb, sheet, meta, constants, path.name, limits)
        finally:
            wb.close()
    return parsed


# -- the fast path (feeds/_fast.py): many workbooks' clean rows converted together ------------------

def _incubator_ok(cols: dict[str, Any]) -> Any:
    """_check_platform as an expression: true where it certainly passes."""
    new = cols["change_type"].copy == "新增"
    category = cols["platform_category"].copy
    area_ok = ~category.is_in(list(INCUBATORS)) | cols["incubation_area_m2"].copy.is_not_null()
    return ~new | (category.is_not_null() & cols["recognised_date"].copy.is_not_null() & area_ok)


def _granted_ok(cols: dict[str, Any]) -> Any:
    """_check_certification as an expression."""
    granted = (cols["change_type"].copy != "新增") | cols["granted_date"].copy.is_not_null()
    return granted & _fast.in_order(cols, "granted_date", "valid_until")


def _project_ok(cols: dict[str, Any]) -> Any:
    """_check_project as an expression."""
    return _fast.in_order(cols, "start_date", "planned_completion_date")


def fast_specs() -> dict[str, _fast.Spec]:
    """Per data sheet, the vectorised path's view of its fields: only values it is sure of."""
    kind = _fast.Kind
    return {
        "创新平台": _fast.Spec(kinds={
            "平台编号": kind("code"), "平台名称": kind("text"), "平台类别": kind("choice", PLATFORM_CATEGORIES),
            "级别": kind("choice", PLATFORM_LEVELS), "认定日期": kind("date", hi="file"), "依托单位": kind("text"),
            "依托单位统一社会信用代码": kind("uscc"), "变动类型": kind("choice", PLATFORM_CHANGES),
            "孵化面积（平方米）": kind("number")}, row_ok=_incubator_ok),
        "企业认定": _fast.Spec(kinds={
            "统一社会信用代码": kind("uscc"), "企业名称": kind("text"), "认定类别": kind("choice", CERTIFICATION_TYPES),
            "证书编号": kind("code"), "认定日期": kind("date", hi="file"), "有效期至": kind("date"),
            "变动类型": kind("choice", CERTIFICATION_CHANGES)}, row_ok=_granted_ok),
        "重点项目": _fast.Spec(kinds={
            "项目编号": kind("code"), "项目名称": kind("text"), "项目类别": kind("choice", PROJECT_CATEGORIES),
            "所属区块": kind("text"), "开始日期": kind("date"), "计划完成日期": kind("date"),
            "状态": kind("choice", PROJECT_STATUSES), "累计完成投资（万元）": kind("number"),
            "形象进度（%）": kind("number", check=lambda n: (n >= 0) & (n <= 100))}, row_ok=_project_ok),
    }


FAST = fast_specs()


_REFUSED = object()  # a cell the fast path does not take as it is: its row goes per row
_ISO_DAYS: dict[datetime, str] = {}  # date cell -> its ISO day (dates repeat, from sheet to sheet too)
_TEXT_ONLY = frozenset({str, type(None)})


@dataclass
class _SheetRows:
    """One sheet of one workbook on its way through the fast path."""

    layout: Layout
    fast_rows: list[int]                       # source rows of the candidates
    values: dict[str, list[Any]]               # field source -> string per candidate
    cells: Callable[[int], tuple[Any, ...]]    # source row -> its cells (asked of the candidates)
    slow: list[tuple[int, tuple[Any, ...]]]    # rows for the per-row path (blank, total, odd cells …)


def _split(grid: _Grid, sheet: Sheet, meta: FileMeta, where: str, limits: Limits) -> _SheetRows:
    """The header matched (as _load_sheet does) and the data rows sorted into candidates and the rest.

    A candidate: no more cells than the header, its text cells without NUL, 合计-like label or over-long
    text, no float that is not finite, some field not blank, and every field a string, blank, or (in a
    number or date field) a number or a date cell. The rows are taken as the grid's columns (a row's own
    cells only where a column has something to look at, which is rare).
    """
    fields, layout = _header(((r, grid.row(r)) for r in range(1, grid.last_row + 1)), sheet, meta, where)
    kinds = FAST[sheet.name].kinds
    plan = [(layout.index[f.source], kinds[f.source].name) for f in fields]
    width = len(layout.keys)
    field_chars = limits.field_chars
    first = HEADER_ROW + 1
    body = range(first, grid.last_row + 1)  # the data rows' numbers; row body[k] is the k-th of a column
    row_lengths = list(map(grid.lengths.get, body, repeat(0, len(body))))
    longest = max(row_lengths, default=0)
    # the rows fit as a whole (their string cells, their floats): each column looked at whole
    everything = [grid.column(i, first) for i in range(longest)]
    unfit = {k for k, n in enumerate(row_lengths) if n > width} if longest > width else set()
    for column in everything:
        kinds_here = set(map(type, column))
        if str in kinds_here:
            joined = ("".join(filter(None, column)) if kinds_here <= _TEXT_ONLY  # None and str, never ""
                      else "".join([v for v in column if type(v) is str]))
            if "\x00" in joined or "计" in joined or len(joined) > field_chars:
                unfit.update(k for k, v in enumerate(column)
                             if type(v) is str and ("\x00" in v or "计" in v or len(v) > field_chars))
        if float in kinds_here and not all(map(math.isfinite, [v for v in column if type(v) is float])):
            unfit.update(k for k, v in enumerate(column) if type(v) is float and not math.isfinite(v))
    fit = list(range(len(body)))
    for k in sorted(unfit):  # the row's own test, as it was
        cells = grid.row(body[k])
        n = len(cells)
        strings = [c for c in cells if type(c) is str]
        joined = "".join(strings)
        if (n > width or "\x00" in joined or ("计" in joined and _fast.total_like(strings))
                or (len(joined) > field_chars and max(map(len, strings)) > field_chars)
                or (len(strings) < n and not all(map(math.isfinite, [c for c in cells if type(c) is float])))):
            fit.remove(k)
    # then each field column by column: its text per fitting row, or _REFUSED (the row goes per row)
    grid_columns = everything if len(fit) == len(body) else [[column[k] for k in fit] for column in everything]
    blank = (None,) * len(fit)
    iso = _ISO_DAYS if len(_ISO_DAYS) < 100_000 else {}
    texts_of = []
    for i, kind in plan:
        column = grid_columns[i] if i < len(grid_columns) else blank
        if kind == "number":
            column = [v if v is None or (t := type(v)) is str else str(v) if t is int else repr(v) if t is float
                      else _REFUSED for v in column]
        elif kind == "date":
            column = [v if v is None or (t := type(v)) is str
                      else (iso.get(v) or iso.setdefault(v, v.isoformat()[:10])) if t is datetime
                      else _REFUSED for v in column]
        elif not _TEXT_ONLY.issuperset(map(type, column)):
            column = [v if v is None or type(v) is str else _REFUSED for v in column]
        texts_of.append(column)
    # a row is taken unless every field is blank or one is refused: found column by column
    left_out = set()
    for column in texts_of:
        if _REFUSED in column:
            left_out.update(j for j, v in enumerate(column) if v is _REFUSED)
    all_blank = [j for j, v in enumerate(texts_of[0]) if v is None] if texts_of else list(range(len(fit)))
    for column in texts_of[1:]:
        if not all_blank:
            break
        all_blank = [j for j in all_blank if column[j] is None]
    left_out.update(all_blank)
    taken = [j for j in range(len(fit)) if j not in left_out] if left_out else range(len(fit))
    fast_rows = [body[fit[j]] for j in taken]
    if len(taken) < len(fit):
        texts_of = [[column[j] for j in taken] for column in texts_of]
    else:
        texts_of = [list(column) for column in texts_of]
    fast = set(fast_rows)
    slow = [(r, grid.row(r)) for r in body if r not in fast]
    values = {f.source: column for f, column in zip(fields, texts_of, strict=True)}
    return _SheetRows(layout, fast_rows, values, grid.row, slow)


def _unpack_file(path: Path, sink: Sink, settings: Any) -> _Unpacked | None:
    """A workbook's parts for the calamine reader (:func:`_unpack`), its guards passed; None: parse it per row."""
    meta_for("district", path)
    if not _fast.usable(ParsedFile("district", path.name, sink=sink)):
        return None
    with open_regular(path, max_bytes=settings.max_xlsx_bytes, limit_name="CORRIDOR_MAX_XLSX_BYTES") as fh:
        _check_archive(path, fh)
        return _unpack(fh, WANTED)


def _prepare(path: Path, sink: Sink, book: _CalamineBook | None, limits: Limits) -> tuple | None:
    """(parsed, meta, cover row, {sheet: _SheetRows}) of a workbook calamine read, or None: parse it per row."""
    if book is None:
        return None
    meta = meta_for("district", path)
    parsed = ParsedFile("district", path.name, file_version=meta.version, sink=sink)
    cover = _cover(book, path.name, meta, parsed)
    split = {sheet.name: _split(book.grids[_sheet(book, sheet.name, path.name)], sheet, meta,
                                f"{path.name} {sheet.name}", limits) for sheet in SHEETS}
    return parsed, meta, cover, split


def _merge_sheet(parsed: ParsedFile, sheet: Sheet, meta: FileMeta, constants: dict[str, Any], file_name: str,
                 limits: Limits, rows: _SheetRows, fast: Any, refused: list[int]) -> None:
    """A sheet's fast rows and the per-row path's output, filed in source order (``_fast.merge``)."""
    where = f"{file_name} {sheet.name}"
    slow = ParsedFile("district", file_name, meta.version)
    layout = rows.layout
    loader = RowLoader(slow, sheet.table, sheet.fields(meta), where=where, constants=constants,
                       record=layout.record, check=sheet.check, sheet=sheet.name, limits=limits, keys=layout.key)
    per_row = sorted(rows.slow + [(r, rows.cells(r)) for r in refused])
    load_table(loader, layout, per_row)
    _fast.merge(parsed, loader, sheet.table, _fast.Result(fast, []), slow, FAST[sheet.name],
                rows.cells, lambda r: parsed.sink.format_row(sheet.table, r),
                slow.rows_received + fast.height)


def run_batch(paths: list[Path], *, pii_key: bytes, sinks: list[Sink], limits: Limits | None = None
              ) -> list[tuple[ParsedFile | None, BaseException | None]]:
    """Parse several workbooks, the clean rows of those calamine reads converted together; (parsed, error).

    What each file gets is exactly what :func:`parse` gives it (tests/test_fast_path.py).
    """
    settings = config.load()
    limits = limits or settings.limits
    out: list[tuple[ParsedFile | None, BaseException | None]] = [(None, None)] * len(paths)
    ready = []  # (i, path, parsed, meta, cover row, {sheet name: _SheetRows})
    group: list[tuple[int, _Unpacked | None]] = []  # unpacked, their shapes not yet checked
    held = 0  # bytes of XML they hold

    def read_group() -> None:
        """The group's sheets checked in one polars call, then each workbook read and split."""
        _check_shapes([book for _, book in group])
        for i, unpacked in group:
            path, sink = paths[i], sinks[i]
            try:
                prep = _prepare(path, sink, _calamine_book(unpacked), limits)
                if prep is None:
                    out[i] = (parse(path, pii_key=pii_key, sink=sink, limits=limits), None)
                else:
                    ready.append((i, path, *prep))
            except Exception as exc:
                out[i] = (None, exc)
        group.clear()

    for i, (path, sink) in enumerate(zip(paths, sinks, strict=True)):
        try:
            unpacked = _unpack_file(path, sink, settings)
        except Exception as exc:
            out[i] = (None, exc)
            continue
        group.append((i, unpacked))
        held += 0 if unpacked is None else unpacked.size
        if held > CALAMINE_GROUP_BYTES:  # the XML held at once stays bounded, whatever the batch
            read_group()
            held = 0
    read_group()
    if not ready:
        return out
    results: dict[str, Any] = {}
    try:
        for sheet in SHEETS:
            sink = ready[0][2].sink
            files = [_fast.JsonFile(split[sheet.name].fast_rows, split[sheet.name].values, {"hi": meta.period_end},
                                    {"area_code": sink.format_value(meta.area_code),
                                     "report_month": sink.format_value(meta.period_start),
                                     "file_version": sink.format_value(meta.version)})
                     for _, _, _, meta, _, split in ready]
            results[sheet.name] = _fast.fast_json(files, sheet.fields(ready[0][3]), FAST[sheet.name],
                                                  sink.columns_of(sheet.table))
    except Exception:
        log.exception("the vectorised parse of %d workbook(s) failed: parsing them per row", len(ready))
        results = {}
    for n, (i, path, parsed, meta, cover, split) in enumerate(ready):
        try:
            if not results:
                out[i] = (parse(path, pii_key=pii_key, sink=parsed.sink, limits=limits), None)
                continue
            constants = {"area_code": meta.area_code, "report_month": meta.period_start,
                         "file_version": meta.version}
            parsed.add("raw.district_returns", {**cover, **constants})
            for sheet in SHEETS:
                fast, refused = results[sheet.name][n]
                _merge_sheet(parsed, sheet, meta, constants, path.name, limits, split[sheet.name], fast, refused)
            out[i] = (parsed, None)
        except Exception as exc:
            out[i] = (None, exc)
    return out
