"""知识产权质押等融资 — ``bank/{BANK}_{YYYYMM}.csv`` -> ``raw.bank_loans``.

Spec: shared/feeds/README.md §3. GB18030, comma-separated, one header line.
Amounts in yuan; 报告期 must be the file's month.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from corridor import config
from corridor.config import Limits
from corridor.feeds import _fast
from corridor.feeds._rows import CsvJob, Field, dates_in_order, meta_for, parse_job
from corridor.feeds.base import ParsedFile, Sink
from corridor.normalize import (
    NormalizeError,
    area_code,
    choice,
    code,
    parse_date,
    parse_month,
    parse_number,
    show,
    text,
    uscc,
)

TABLE = "raw.bank_loans"
COLLATERAL_TYPES = ("专利权", "商标权", "著作权", "股权", "应收账款", "租金收入")
LOAN_STATUSES = ("正常", "结清", "逾期", "核销")
_IP_SEPARATOR = re.compile(r"[;；]")


def ip_numbers(value: Any) -> list[str]:
    """知识产权编号 split on ; or ；, each stripped (NFKC); none -> []."""
    return [s for part in _IP_SEPARATOR.split(str(value)) if (s := unicodedata.normalize("NFKC", part).strip())]


def report_month(file_month: date) -> Callable[[Any], date]:
    def convert(value: Any) -> date:
        month = parse_month(value)
        if month != file_month:
            raise NormalizeError("period_mismatch",
                                 f"{show(value)} is not the file's month {file_month:%Y%m}")
        return month

    return convert


def loan_amount(value: Any) -> Decimal:
    """贷款金额（元）: above 0 (negative -> negative_amount; 0 -> invalid_value: no loan lends nothing)."""
    amount = parse_number(value, unit="元")
    if amount == 0:
        raise NormalizeError("invalid_value", f"{show(value)} is not above 0")
    return amount


def annual_rate(value: Any) -> Decimal:
    """年利率（%）: a percentage 0..100 (negative -> negative_amount; above 100 -> invalid_value)."""
    rate = parse_number(value, unit="%")
    if rate > 100:
        raise NormalizeError("invalid_value", f"{show(value)} is not an annual rate within 0..100 %")
    return rate


def fields(period_start: date, period_end: date) -> tuple[Field, ...]:
    return (
        Field("贷款编号", "loan_id", code, required=True),
        Field("借款人名称", "borrower_name", text),
        Field("借款人统一社会信用代码", "borrower_uscc", uscc, required=True),
        Field("所属片区", "area_code", area_code, required=True),
        Field("质押物类型", "collateral_type", partial(choice, accepted=COLLATERAL_TYPES), required=True),
        Field("质押登记号", "pledge_registration_no", code),
        Field("知识产权编号", "ip_numbers", ip_numbers),
        Field("贷款金额（元）", "loan_amount_yuan", loan_amount, required=True),
        Field("放款日期", "disbursed_date", partial(parse_date, hi=period_end), required=True),
        Field("到期日期", "due_date", parse_date),
        Field("年利率（%）", "annual_rate_pct", annual_rate),
        Field("贷款状态", "loan_status", partial(choice, accepted=LOAN_STATUSES), required=True),
        Field("报告期", "report_month", report_month(period_start), required=True),
    )


def _check_loan(row: dict[str, Any], _source_row: int) -> None:
    """No 知识产权编号: an empty list. A 到期日期 before the 放款日期: quarantined (dates_out_of_order)."""
    if row["ip_numbers"] is None:
        row["ip_numbers"] = []
    dates_in_order(row, "disbursed_date", "due_date", "放款日期", "到期日期")


def fast_spec() -> _fast.Spec:
    """The vectorised path's view of the fields (feeds/_fast.py): only values it is sure of."""
    return _fast.Spec(kinds={
        "贷款编号": _fast.Kind("code"),
        "借款人名称": _fast.Kind("text"),
        "借款人统一社会信用代码": _fast.Kind("uscc"),
        "所属片区": _fast.Kind("area"),
        "质押物类型": _fast.Kind("choice", COLLATERAL_TYPES),
        "质押登记号": _fast.Kind("code"),
        "知识产权编号": _fast.Kind("ip"),
        "贷款金额（元）": _fast.Kind("number", check=lambda n: n > 0),
        "放款日期": _fast.Kind("date", hi="file"),
        "到期日期": _fast.Kind("date"),
        "年利率（%）": _fast.Kind("number", check=lambda n: n <= 100),
        "贷款状态": _fast.Kind("choice", LOAN_STATUSES),
        "报告期": _fast.Kind("month"),
    }, row_ok=lambda cols: _fast.in_order(cols, "disbursed_date", "due_date"))


FAST = fast_spec()


def csv_job(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> CsvJob:
    """The file as a CSV job (several can be parsed together: ``_rows.run_csv_jobs``)."""
    meta = meta_for("bank", path)
    parsed = ParsedFile("bank", path.name, sink=sink)
    return CsvJob(parsed, path, "gb18030", TABLE, fields(meta.period_start, meta.period_end),
                  {"bank_code": meta.bank_code, "file_version": 1}, _check_loan,
                  limits or config.load().limits, FAST, lambda _seen: _check_loan,
                  {"hi": meta.period_end, "month": f"{meta.period_start:%Y%m}",
                   "month_iso": meta.period_start.isoformat()})


def parse(path: Path, *, pii_key: bytes, sink: Sink | None = None, limits: Limits | None = None) -> ParsedFile:
    return parse_job(csv_job(path, pii_key=pii_key, sink=sink, limits=limits))
