"""技术合同登记 — ``techmarket/tech_contracts_{YYYYMMDD}.csv`` -> ``raw.techmarket_contracts``.

Spec: shared/feeds/README.md §2. UTF-8 with BOM, comma-separated, quoted,
one header line. Each valid row gets ``row_hash`` (md5 of its normalised
business values): an exact duplicate within the file is quarantined here,
one across files by the loader.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from corridor import config
from corridor.config import Limits
from corridor.feeds import _fast
from corridor.feeds._rows import Check, CsvJob, Field, meta_for, parse_job
from corridor.feeds.base import ParsedFile, Sink
from corridor.normalize import (
    NormalizeError,
    area_code,
    choice,
    code,
    parse_date,
    parse_number,
    show,
    text,
    uscc,
)

TABLE = "raw.techmarket_contracts"
CONTRACT_TYPES = ("技术开发", "技术转让", "技术许可", "技术咨询", "技术服务")
REGISTRATION_STATUSES = ("有效", "变更", "撤销")
_REGISTRATION_NO = re.compile(r"[0-9]{16}")


def registration_no(value: Any) -> str:
    s = code(value)
    if not _REGISTRATION_NO.fullmatch(s):
        raise NormalizeError("invalid_value", f"{show(value)} is not a 16-digit registration number")
    return s


def fields(export_date: date) -> tuple[Field, ...]:
    amount = partial(parse_number, unit="万元")
    return (
        Field("合同登记号", "registration_no", registration_no, required=True),
        Field("登记日期", "registration_date", partial(parse_date, hi=export_date), required=True),
        Field("合同名称", "contract_title", text),
        Field("合同类型", "contract_type", partial(choice, accepted=CONTRACT_TYPES), required=True),
        Field("技术领域", "tech_field", text),
        Field("卖方名称", "seller_name", text),
        Field("卖方统一社会信用代码", "seller_uscc", uscc, required=True),
        Field("卖方所属片区", "seller_area_code", area_code, required=True),
        Field("买方名称", "buyer_name", text),
        Field("买方统一社会信用代码", "buyer_uscc", uscc),
        Field("买方所在地", "buyer_location", text),
        Field("合同成交额（万元）", "contract_value_10k_yuan", amount, required=True),
        Field("技术交易额（万元）", "tech_value_10k_yuan", amount, required=True),
        Field("登记状态", "registration_status", partial(choice, accepted=REGISTRATION_STATUSES), required=True),
    )


def _canonical(value: Any) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # 1234.50 and 1,234.5 hash alike
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def row_hash(row: dict[str, Any], columns: tuple[str, ...]) -> str:
    """md5 hex of the normalised business values, in field order."""
    joined = "\x1f".join(_canonical(row[c]) for c in columns)
    return hashlib.md5(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def _contract_check(columns: tuple[str, ...], seen: dict[str, int] | None = None) -> Check:
    seen = {} if seen is None else seen  # row_hash -> first row carrying it

    def check(row: dict[str, Any], source_row: int) -> None:
        tech, total = row["tech_value_10k_yuan"], row["contract_value_10k_yuan"]
        if tech > total:
            raise NormalizeError("tech_value_exceeds_contract",
                                 f"技术交易额（万元） {tech} exceeds 合同成交额（万元） {total}")
        digest = row_hash(row, columns)
        first = seen.setdefault(digest, source_row)
        if first != source_row:
            raise NormalizeError("duplicate_row", f"an exact duplicate of row {first}")
        row["row_hash"] = digest

    return check


def fast_spec() -> _fast.Spec:
    """The vectorised path's view of the fields (feeds/_fast.py): only values it is sure of."""
    amount = _fast.Kind("number")
    return _fast.Spec(
        kinds={
            "合同登记号": _fast.Kind("code", pattern=r"^[0-9]{16}$"),
            "登记日期": _fast.Kind("date", hi="file"),
            "合同名称": _fast.Kind("text"),
            "合同类型": _fast.Kind("choice", CONTRACT_TYPES),
            "技术领域": _fast.Kind("text"),
            "卖方名称": _fast.Kind("text"),
            "卖方统一社会信用代码": _fast.Kind("uscc"),
            "卖方所属片区": _fast.Kind("area"),
            "买方名称": _fast.Kind("text"),
            "买方统一社会信用代码": _fast.Kind("uscc"),
            "买方所在地": _fast.Kind("text"),
            "合同成交额（万元）": amount,
            "技术交易额（万元）": amount,
            "登记状态": _fast.Kind("choice", REGISTRATION_STATUSES),
        },
        row_ok=lambda c: c["tech_value_10k_yuan"].num <= c["contract_value_10k_yuan"].num,
        row_hash=True, dedup="row_hash", dedup_rule="duplicate_row",
        dedup_message=lambda _key, first: f"an exact duplicate of row {first}", lenient=True,
        keys_column="registration_no")


FAST = fast_spec()


def csv_job(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> CsvJob:
    """The file as a CSV job (several can be parsed together: ``_rows.run_csv_jobs``)."""
    meta = meta_for("techmarket", path)
    parsed = ParsedFile("techmarket", path.name, sink=sink)
    table_fields = fields(meta.period_end)
    columns = tuple(f.column for f in table_fields)
    return CsvJob(parsed, path, "utf-8-sig", TABLE, table_fields, {"export_date": meta.period_start, "file_version": 1},
                  _contract_check(columns), limits or config.load().limits, FAST, partial(_contract_check, columns),
                  {"hi": meta.period_end})


def parse(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> ParsedFile:
    return parse_job(csv_job(path, pii_key=pii_key, sink=sink, limits=limits))
