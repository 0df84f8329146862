"""知识产权等质押融资: monthly GB18030 CSV per bank (spec section 3)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from corridor.demo.context import Context, Quota, weighted, yearly
from corridor.demo.dirty import (
    AREA_KINDS,
    DATE_KINDS,
    NUMBER_KINDS,
    USCC_KINDS,
    Planter,
    date_text,
    dec_text,
    number_text,
)
from corridor.demo.ids import fullwidth, wrong_uscc_check
from corridor.demo.periods import add_months, days_in_month, index_month, month_end, month_index
from corridor.demo.vocab import AREA_BY_CODE, AREA_LIST, BANK_PREFIX, COLLATERAL_TYPES, UNKNOWN_AREAS
from corridor.feeds import BANKS

FEED = "bank"
TABLE = "raw.bank_loans"
HEADER = ("贷款编号", "借款人名称", "借款人统一社会信用代码", "所属片区", "质押物类型", "质押登记号", "知识产权编号",
          "贷款金额（元）", "放款日期", "到期日期", "年利率（%）", "贷款状态", "报告期")
LOAN_ID, NAME, USCC, AREA, COLLATERAL, PLEDGE_NO, IP_NOS, AMOUNT, DISBURSED, DUE, RATE, STATUS, PERIOD = range(13)
BANK_SHARE = {"ICBC": 0.18, "ABC": 0.14, "BOC": 0.12, "CCB": 0.16, "WZB": 0.22, "OHRCB": 0.18}
AREA_BY_NAME_BANKS = {"ICBC", "ABC", "BOC", "CCB"}   # the others write the area code
IP_SEPARATOR = {"ICBC": ";", "ABC": "；", "BOC": ";", "CCB": "；", "WZB": ";", "OHRCB": "；"}
IP_TYPES = ("专利权", "商标权", "著作权")
DIRTY_RATE = 0.034
KINDS = (*AREA_KINDS, *USCC_KINDS, *DATE_KINDS, *NUMBER_KINDS, "missing_required", "negative_amount",
         "date_out_of_range")


@dataclass
class Loan:
    bank: str
    loan_id: str
    area: str
    ent: int
    collateral: str
    pledge_no: str
    ip_numbers: str
    amount: Decimal
    disbursed: date
    due: date
    rate: Decimal

    def row(self, ctx: Context, status: str, period: str) -> list:
        ent = ctx.enterprises
        area = AREA_BY_CODE[self.area].name if self.bank in AREA_BY_NAME_BANKS else self.area
        return [self.loan_id, ent.name(self.area, self.ent), ent.uscc(self.area, self.ent), area,
                self.collateral, self.pledge_no, self.ip_numbers, self.amount, self.disbursed, self.due,
                self.rate, status, period]


def patent_number(rng) -> str:
    """A Chinese patent number ``ZL{12 digits}.{check}`` (CNIPA check digit)."""
    year = rng.randint(2012, 2021)
    body = f"{year}{rng.choice('123')}{rng.randrange(10**7):07d}"
    s = sum(int(c) * w for c, w in zip(body, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True)) % 11
    return f"ZL{body}.{'X' if s == 10 else s}"


class BankGenerator:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.rng = ctx.rng("bank")
        self.planter = Planter(ctx.rng("bank-plant"), DIRTY_RATE)
        self.folder = ctx.landing / "bank"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.f = ctx.factor
        self.pool = {a.code: ctx.pool(a.weight) for a in AREA_LIST}
        self.quotas = {b: Quota(ctx.rng("bank-quota", b)) for b in BANKS}
        self.seq: dict[tuple, int] = {}
        self.pending: dict[int, dict[str, list[tuple[Loan, str]]]] = {}
        self.wan_planted = False
        self.k17: dict[int, Decimal] = {}
        self.k18: dict[int, set] = {}

    def _push(self, idx: int, loan: Loan, status: str) -> None:
        if self.ctx.start_idx <= idx <= self.ctx.end_idx:
            self.pending.setdefault(idx, {}).setdefault(loan.bank, []).append((loan, status))

    def _disburse(self, idx: int, bank: str) -> list[Loan]:
        rng, y = self.rng, index_month(idx)[0]
        n = self.quotas[bank].take(yearly("loans", y) / 12 * BANK_SHARE[bank] * self.f)
        loans = []
        for _ in range(n):
            key = (bank, idx)
            self.seq[key] = self.seq.get(key, 0) + 1
            m = index_month(idx)[1]
            r = rng.random()
            a = AREA_LIST[-1]
            for a in AREA_LIST:
                r -= a.weight
                if r < 0:
                    break
            ent = int(self.pool[a.code] * rng.random() ** 1.5)
            collateral = weighted(rng, COLLATERAL_TYPES)
            seq = rng.randrange(10**6)
            if collateral == "专利权":
                ips = [patent_number(rng) for _ in range(rng.choice((1, 1, 2, 3, 5)))]
                pledge = f"Y{y}33{seq:07d}"
            elif collateral == "商标权":
                ips = [f"{rng.randrange(10**6, 6 * 10**7)}" for _ in range(rng.choice((1, 1, 2, 3)))]
                pledge = f"TM{y}{seq:06d}"
            elif collateral == "著作权":
                ips = [f"{rng.randint(y - 6, y - 1)}SR{rng.randrange(10**7):07d}" for _ in range(rng.choice((1, 2)))]
                pledge = f"{y}-ZQ-{seq:06d}"
            elif collateral == "股权":
                ips, pledge = [], f"(温)股质登记设字[{y}]第{seq % 10000:04d}号"
            else:
                ips, pledge = [], f"{rng.randrange(10**19, 10**20)}"
            sep = IP_SEPARATOR[bank] if rng.random() < 0.9 else ("；" if IP_SEPARATOR[bank] == ";" else ";")
            amount = max(500_000, min(50_000_000, rng.lognormvariate(0, 0.9) * 2_800_000))
            amount = Decimal(round(amount, -4 if rng.random() < 0.9 else -3))
            disbursed = date(y, m, rng.randint(1, days_in_month(idx)))
            term = weighted(rng, ((12, 0.65), (24, 0.2), (36, 0.1), (6, 0.05)))
            due = add_months(disbursed, term) - timedelta(days=1)
            rate = Decimal(str(round(rng.uniform(3.65, 6.5), 2)))
            loan = Loan(bank, f"{BANK_PREFIX[bank]}{y}{m:02d}{self.seq[key]:05d}", a.code, ent, collateral, pledge,
                        sep.join(ips), amount, disbursed, due, rate)
            loans.append(loan)
            self._schedule(loan, idx, term)
        return loans

    def _schedule(self, loan: Loan, idx: int, term: int) -> None:
        rng = self.rng
        due_idx = month_index(loan.due.year, loan.due.month)
        r = rng.random()
        if r < 0.08 and term > 1:
            self._push(idx + rng.randint(1, term - 1), loan, "结清")
        elif r < 0.15:
            self._push(due_idx + 1, loan, "逾期")
            if rng.random() < 0.5:
                self._push(due_idx + 1 + rng.randint(2, 8), loan, "结清")
            else:
                self._push(due_idx + 1 + rng.randint(6, 12), loan, "核销")
        else:
            self._push(due_idx, loan, "结清")

    def run(self) -> None:
        ctx = self.ctx
        for idx in range(max(ctx.start_idx - 40, 2015 * 12), ctx.start_idx):
            for bank in BANKS:
                self._disburse(idx, bank)
        for idx in ctx.months():
            pending = self.pending.pop(idx, {})
            for bank in BANKS:
                new = self._disburse(idx, bank)
                self._file(bank, idx, new, pending.get(bank, []))
        ctx.kpi["K17_ip_pledge_yi_yuan_by_year"] = {str(y): round(float(v) / 1e8, 2) for y, v in sorted(self.k17.items())}
        ctx.kpi["K18_borrowers_by_year"] = {str(y): len(v) for y, v in sorted(self.k18.items())}

    def _file(self, bank: str, idx: int, new: list[Loan], changes: list[tuple[Loan, str]]) -> None:
        ctx = self.ctx
        y, m = index_month(idx)
        period = f"{y}{m:02d}"
        fname = f"{bank}_{period}.csv"
        rows = [(loan.row(ctx, "正常", period), loan) for loan in new]
        rows += [(loan.row(ctx, status, period), None) for loan, status in
                 sorted(changes, key=lambda c: c[0].loan_id)]
        path = self.folder / fname
        with path.open("w", encoding="gb18030", newline="") as fh:
            w = csv.writer(fh, lineterminator="\r\n")
            w.writerow(HEADER)
            for i, (row, loan) in enumerate(rows):
                kind = self.planter.pick(self._eligible(row))
                extra = self._apply(row, kind, idx, loan) if kind else None
                w.writerow([render(v) for v in row])
                if kind:
                    expect = extra.pop("expect")
                    ctx.manifest.add(FEED, fname, None, 2 + i, kind, expect, year=y, **extra)
                if loan is not None and (extra is None or expect != "quarantine"):
                    ctx.count(y, "loans")
                    if loan.collateral in IP_TYPES:
                        self.k17[y] = self.k17.get(y, Decimal(0)) + loan.amount
                    self.k18.setdefault(y, set()).add((loan.area, loan.ent))
        ctx.feed_files[FEED] += 1
        ctx.feed_rows[FEED] += len(rows)

    def _eligible(self, row: list) -> list[str]:
        return [k for k in KINDS if k != "number_thousands" or row[AMOUNT] >= 1000]

    def _apply(self, row: list, kind: str, idx: int, loan: Loan | None) -> dict:
        rng = self.rng
        if kind in AREA_KINDS:
            area = row[AREA]
            code = area if area in AREA_BY_CODE else next(a.code for a in AREA_LIST if a.name == area)
            if kind == "area_short_form":
                row[AREA] = AREA_BY_CODE[code].short
            elif kind == "area_stray_spaces":
                row[AREA] = rng.choice((f" {area}", f"{area} ", f" {area}  "))
            else:
                row[AREA] = UNKNOWN_AREAS[rng.randrange(len(UNKNOWN_AREAS))]
                return {"expect": "quarantine"}
            return {"expect": "normalise", "table": TABLE, "column": "area_code", "value": code}
        if kind in USCC_KINDS:
            code = row[USCC]
            if kind == "uscc_bad_check":
                row[USCC] = wrong_uscc_check(code)
                return {"expect": "quarantine"}
            row[USCC] = {"uscc_lowercase": code.lower(), "uscc_spaces": rng.choice((f" {code}", f"{code} ", f"{code}  ")),
                         "uscc_fullwidth": fullwidth(code)}[kind]
            return {"expect": "normalise", "table": TABLE, "column": "borrower_uscc", "value": code}
        if kind in DATE_KINDS:
            c = DISBURSED if rng.random() < 0.6 else DUE
            d = row[c]
            row[c] = date_text(kind, d)
            return {"expect": "normalise", "table": TABLE, "column": "disbursed_date" if c == DISBURSED else "due_date",
                    "value": d.isoformat()}
        if kind in NUMBER_KINDS:
            value = row[AMOUNT]
            wan = kind == "number_unit_suffix" and value % 10_000 == 0 and (not self.wan_planted or rng.random() < 0.5)
            if wan and not self.wan_planted and loan is not None:
                value = loan.amount = row[AMOUNT] = Decimal(500_000)   # the spec's example: 50万元
                self.wan_planted = True
            row[AMOUNT] = number_text(kind, value, unit="元", wan=wan)
            return {"expect": "normalise", "table": TABLE, "column": "loan_amount_yuan", "value": dec_text(value)}
        if kind == "missing_required":
            c = (AMOUNT, USCC, DISBURSED, STATUS)[rng.randrange(4)]
            row[c] = ""
            return {"expect": "quarantine", "column": {AMOUNT: "loan_amount_yuan", USCC: "borrower_uscc",
                                                      DISBURSED: "disbursed_date", STATUS: "loan_status"}[c]}
        if kind == "negative_amount":
            row[AMOUNT] = -row[AMOUNT]
            return {"expect": "quarantine"}
        if kind == "date_out_of_range":
            if rng.random() < 0.5:
                d = month_end(idx) + timedelta(days=rng.randint(1, 300))
            else:
                d = date(rng.randint(2008, 2014), rng.randint(1, 12), rng.randint(1, 28))
            row[DISBURSED] = d
            return {"expect": "quarantine", "value": d.isoformat()}
        raise ValueError(kind)


def render(v) -> str:
    if v is None:
        return ""
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return f"{v:.2f}"
    return str(v)
