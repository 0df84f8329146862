"""片区月报 — ``district/{AREA}_{YYYYMM}_v{N}.xlsx`` -> ``raw.district_*``.

Spec: shared/feeds/README.md §1. The cover sheet 封面 becomes one
``raw.district_returns`` row (填报人 and 联系电话, personal data, are never
read); the sheets 创新平台, 企业认定 and 重点项目 have a title in row 1, notes
in row 2, the header in row 3 and data from row 4.

A workbook is untrusted input: before openpyxl opens it, its size and the
zip archive's uncompressed size and compression ratio are checked, and the
XML is parsed with defusedxml (openpyxl uses it when installed; parse
refuses to run without it).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import openpyxl
import openpyxl.xml
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook

from corridor import config
from corridor.config import Limits
from corridor.feeds import FileMeta
from corridor.feeds._rows import Check, Field, Layout, RowLoader, load_table, meta_for, open_regular
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
        Field("平台类别", "platform_category", partial(choice, accepted=PLATFORM_CATEGORIES), required=True),
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
        Field("开始日期", "start_date", parse_date),
        Field("计划完成日期", "planned_completion_date", parse_date),
        Field("状态", "project_status", partial(choice, accepted=PROJECT_STATUSES), required=True),
        Field("累计完成投资（万元）", "cumulative_investment_10k_yuan", partial(parse_number, unit="万元")),
        Field("形象进度（%）", "progress_pct", progress_pct),
    )


def _required_for_new(row: dict[str, Any], column: str, source: str, what: str = "row") -> None:
    if row["change_type"] == "新增" and row[column] is None:
        raise NormalizeError("missing_value", f"{source} is blank but required for a 新增 {what}")


def _check_platform(row: dict[str, Any], _source_row: int) -> None:
    _required_for_new(row, "recognised_date", "认定日期")
    if row["platform_category"] in INCUBATORS:
        _required_for_new(row, "incubation_area_m2", "孵化面积（平方米）", row["platform_category"])


def _check_certification(row: dict[str, Any], _source_row: int) -> None:
    _required_for_new(row, "granted_date", "认定日期")


@dataclass(frozen=True)
class Sheet:
    name: str
    table: str
    fields: Callable[[FileMeta], tuple[Field, ...]]
    check: Check | None = None


SHEETS = (
    Sheet("创新平台", "raw.district_platforms", _platform_fields, _check_platform),
    Sheet("企业认定", "raw.district_certifications", _certification_fields, _check_certification),
    Sheet("重点项目", "raw.district_projects", _project_fields),
)


# -- opening the workbook safely -----------------------------------------------------

def _check_archive(path: Path, fh: BinaryIO) -> None:
    """Size limits before any XML is parsed (the declared sizes bind: zipfile reads no further)."""
    try:
        with zipfile.ZipFile(fh) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileRejected(f"{path.name} is not a readable xlsx workbook: {exc}") from None
    unpacked = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    if unpacked > MAX_UNCOMPRESSED_BYTES:
        raise FileRejected(f"{path.name} unpacks to {unpacked:,} bytes, over the limit of "
                           f"{MAX_UNCOMPRESSED_BYTES:,}")
    if unpacked > MAX_COMPRESSION_RATIO * max(packed, 1):
        raise FileRejected(f"{path.name} has a compression ratio of {unpacked / max(packed, 1):,.0f}:1, "
                           f"over the limit of {MAX_COMPRESSION_RATIO}:1 (a zip bomb?)")


def _open(path: Path, fh: BinaryIO) -> Workbook:
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
    """The cell's value; a number formatted as a percentage as it displays (0.85 -> "85%")."""
    value = cell.value
    if isinstance(value, int | float) and not isinstance(value, bool) and "%" in (cell.number_format or ""):
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


def _sheet(wb: Workbook, name: str, file_name: str) -> Any:
    """A sheet by name, stray spaces and full-width characters ignored."""
    for actual in wb.sheetnames:
        if header(actual) == header(name):
            return wb[actual]
    raise FileRejected(f"{file_name} has no sheet {name} (its sheets: {', '.join(wb.sheetnames)})")


# -- parsing -------------------------------------------------------------------------

def _cover(wb: Workbook, file_name: str, meta: FileMeta, parsed: ParsedFile) -> dict[str, Any]:
    """The raw.district_returns row: label/value pairs, each value in the cell right of its label."""
    where = f"{file_name} {COVER}"
    found: dict[str, tuple[int, Any]] = {}
    for row_no, cells in _rows(_sheet(wb, COVER, file_name), where):
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


def _load_sheet(parsed: ParsedFile, wb: Workbook, sheet: Sheet, meta: FileMeta,
                constants: dict[str, Any], file_name: str, limits: Limits) -> None:
    where = f"{file_name} {sheet.name}"
    rows = _rows(_sheet(wb, sheet.name, file_name), where)
    header_cells = next((cells for row_no, cells in rows if row_no == HEADER_ROW), None)
    if header_cells is None:
        raise FileRejected(f"{where}: no header in row {HEADER_ROW}")
    fields = sheet.fields(meta)
    layout = Layout.from_header(header_cells, fields, f"{where} row {HEADER_ROW}",
                                name_of=lambda i: get_column_letter(i + 1))
    loader = RowLoader(parsed, sheet.table, fields, where=where, constants=constants,
                       record=layout.record, check=sheet.check, sheet=sheet.name, limits=limits, keys=layout.key)
    load_table(loader, layout, rows)


def parse(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> ParsedFile:
    meta = meta_for("district", path)
    settings = config.load()
    limits = limits or settings.limits
    with open_regular(path, max_bytes=settings.max_xlsx_bytes, limit_name="CORRIDOR_MAX_XLSX_BYTES") as fh:
        _check_archive(path, fh)
        wb = _open(path, fh)
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
