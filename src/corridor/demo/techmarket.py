"""技术合同登记: a daily CSV export (spec section 2)."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal

from corridor.demo.context import Context, weighted, yearly
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
from corridor.demo.periods import business_days, index_month, month_index
from corridor.demo.vocab import (
    AREA_LIST,
    BUYER_LOCATIONS,
    BUYER_PLACE_WORD,
    BUYER_PREFIX,
    CONTRACT_TYPES,
    INSTITUTIONS,
    TECH_FIELDS,
    TECH_SUBJECTS,
    UNKNOWN_AREAS,
)

FEED = "techmarket"
TABLE = "raw.techmarket_contracts"
HEADER = ("合同登记号", "登记日期", "合同名称", "合同类型", "技术领域", "卖方名称", "卖方统一社会信用代码",
          "卖方所属片区", "买方名称", "买方统一社会信用代码", "买方所在地", "合同成交额（万元）", "技术交易额（万元）",
          "登记状态")
(REG_NO, REG_DATE, TITLE, CTYPE, FIELD, SELLER, SELLER_USCC, SELLER_AREA, BUYER, BUYER_USCC, BUYER_LOC,
 VALUE, TECH, STATUS) = range(14)
SEASON = (0.8, 0.6, 1.0, 1.0, 1.0, 1.05, 1.0, 0.95, 1.0, 0.9, 1.1, 1.5)
COUNT_GROWTH = 0.105   # contracts per year grow ~10.5 %; value per contract makes up the rest
MEDIAN_2019 = 46.0     # median contract value, 万元
DIRTY_RATE = 0.031
P_AMEND = 0.03
KINDS = (*AREA_KINDS, *USCC_KINDS, *DATE_KINDS, *NUMBER_KINDS, "missing_required", "negative_amount",
         "date_out_of_range", "tech_value_exceeds_contract", "duplicate_row_within_file",
         "duplicate_row_across_files")
_KINDS_BIG = KINDS
_KINDS_SMALL = tuple(k for k in KINDS if k != "number_thousands")  # 1,234.5 needs four digits
CENT = Decimal("0.01")
EARLIEST = date(2015, 1, 1)  # the feeds' dates start here (earlier ones are quarantined)
FOREIGN_BUYERS = ("Rheinland Antriebstechnik GmbH", "Pacific Sensor Systems Inc.", "Nordic Motion AB",
                  "Kansai Precision Co., Ltd.", "Lombardia Valvole S.r.l.")


class TechmarketGenerator:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.rng = ctx.rng("techmarket")
        self.planter = Planter(ctx.rng("techmarket-plant"), DIRTY_RATE, {"duplicate_row_within_file": 1.5,
                                                                         "duplicate_row_across_files": 1.5})
        self.folder = ctx.landing / "techmarket"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.f = ctx.factor
        self.pool = {a.code: ctx.pool(a.weight) for a in AREA_LIST}
        self.seq: dict[int, int] = {}
        self.pending: dict[int, list[tuple]] = {}  # business day number -> (row, kind, area, old tech value)
        self.carry: list[list] = []                          # duplicates for the next file
        self.day_no = 0
        self.tech_sum: dict[tuple[int, str], Decimal] = {}   # (registration year, area) -> 技术交易额
        self._per_day: dict[int, float] = {}

    def _expected_per_day(self, year: int) -> float:
        if year not in self._per_day:
            weight = sum(SEASON[m - 1] * len(business_days(month_index(year, m))) for m in range(1, 13))
            self._per_day[year] = yearly("contracts", year) * self.f / weight
        return self._per_day[year]

    def run(self) -> None:
        ctx = self.ctx
        for idx in ctx.months():
            y, m = index_month(idx)
            for day in business_days(idx):
                self.day_no += 1
                mu = self._expected_per_day(y) * SEASON[m - 1]
                n = max(0, round(self.rng.gauss(mu, mu ** 0.5)))
                self._day(day, n)
        ctx.kpi["K03_tech_value_yi_yuan_by_year"] = {
            str(y): round(float(sum(v for (yy, _), v in self.tech_sum.items() if yy == y)) / 10_000, 2)
            for y in ctx.years}
        growth: dict[str, dict[str, float]] = {}
        first = index_month(ctx.start_idx)
        for a in [x.code for x in AREA_LIST] + ["ALL"]:
            for y in ctx.years:
                if (y - 1, 1) < first:   # the year before is not (wholly) in the data
                    continue
                cur = sum(v for (yy, aa), v in self.tech_sum.items() if yy == y and a in (aa, "ALL"))
                prev = sum(v for (yy, aa), v in self.tech_sum.items() if yy == y - 1 and a in (aa, "ALL"))
                if prev:
                    growth.setdefault(a, {})[str(y)] = round(float(cur / prev) - 1, 3)
        ctx.kpi["K03_growth"] = growth

    # ------------------------------------------------------------------ one day

    def _new_contract(self, day: date) -> tuple[list, str]:
        rng, ent = self.rng, self.ctx.enterprises
        a = AREA_LIST[-1]
        r = rng.random()
        for a in AREA_LIST:
            r -= a.weight
            if r < 0:
                break
        y = day.year
        self.seq[y] = self.seq.get(y, 0) + rng.randint(1, 3)
        reg_no = f"{y}3303{self.seq[y]:08d}"
        reg_date = day
        if rng.random() < 0.07:  # registered on an earlier working day, exported today
            reg_date = day - timedelta(days=rng.randint(1, 3))
            while reg_date.weekday() >= 5:
                reg_date -= timedelta(days=1)
            reg_date = max(reg_date, EARLIEST)
        n = int(self.pool[a.code] * rng.random() ** 2)
        ctype = weighted(rng, CONTRACT_TYPES)
        subject = TECH_SUBJECTS[rng.randrange(len(TECH_SUBJECTS))]
        loc = weighted(rng, BUYER_LOCATIONS)
        if rng.random() < 0.01:
            loc = rng.choice(("德国", "美国", "日本", "意大利"))
            buyer_uscc, buyer_name = "", rng.choice(FOREIGN_BUYERS)
        elif rng.random() < 0.06 and loc == "浙江省温州市":
            buyer_name, buyer_uscc = ent.institution(rng.randrange(len(INSTITUTIONS)))
        else:
            buyer_uscc, buyer_name = ent.buyer(BUYER_PREFIX[loc], BUYER_PLACE_WORD[loc],
                                               rng.randrange(40_000 * self.f) + 1)
        years = y - 2019
        median = MEDIAN_2019 * ((1 + a.value_growth) / (1 + COUNT_GROWTH)) ** years
        value = Decimal(str(max(0.5, min(60_000.0, rng.lognormvariate(0, 1.2) * median)))).quantize(CENT)
        share = 1.0 if rng.random() < 0.4 else rng.uniform(0.55, 1.0)
        tech = (value * Decimal(str(round(share, 4)))).quantize(CENT, rounding=ROUND_DOWN)
        row = [reg_no, reg_date, f"{subject}{ctype}合同", ctype, TECH_FIELDS[rng.randrange(len(TECH_FIELDS))],
               ent.name(a.code, n), ent.uscc(a.code, n), a.name, buyer_name, buyer_uscc, loc, value, tech, "有效"]
        return row, a.code

    def _day(self, day: date, n: int) -> None:
        rng = self.rng
        body: list[tuple[list, str | None, dict | None]] = []   # (cells, manifest kind, manifest extra)
        # contracts of earlier days amended or cancelled today (the latest file wins)
        for row, kind, area, old_tech in self.pending.pop(self.day_no, []):
            body.append((row, kind, {"expect": "load", "table": TABLE, "key": row[REG_NO]}))
            key = (row[REG_DATE].year, area)
            self.tech_sum[key] += (row[TECH] if row[STATUS] == "变更" else 0) - old_tech
        carried, self.carry = self.carry, []
        within = []
        for _ in range(n):
            row, area = self._new_contract(day)
            kind = self.planter.pick(self._eligible(row))
            if kind is None or kind.startswith("duplicate"):
                body.append((row, None, None))
                self._count(row, area)
                if kind is None and rng.random() < P_AMEND:
                    self._schedule_change(row, area)
                elif kind == "duplicate_row_within_file":
                    within.append(row)
                elif kind == "duplicate_row_across_files":
                    self.carry.append(list(row))
            else:
                extra = self._apply(row, kind, day)
                body.append((row, kind, extra))
                if extra["expect"] != "quarantine":
                    self._count(row, area)
        # exact duplicates: a later copy of a row of this file, and copies of yesterday's rows
        for row in within:
            src = next(i for i, (r, _k, _e) in enumerate(body) if r is row)
            body.insert(rng.randint(src + 1, len(body)), (list(row), "duplicate_row_within_file",
                                                           {"expect": "quarantine"}))
        for row in carried:
            body.insert(rng.randint(0, len(body)), (row, "duplicate_row_across_files", {"expect": "quarantine"}))
        self._write(f"tech_contracts_{day:%Y%m%d}.csv", day, body)

    def _count(self, row: list, area: str) -> None:
        d = row[REG_DATE]
        year = d.year if isinstance(d, date) else int(str(d)[:4])
        key = (year, area)
        tech = row[TECH] if isinstance(row[TECH], Decimal) else Decimal(str(row[TECH]).translate(_UNFULL)
                                                                          .replace(",", "").replace("万元", ""))
        self.tech_sum[key] = self.tech_sum.get(key, Decimal(0)) + tech
        self.ctx.count(year, "contracts")

    def _schedule_change(self, row: list, area: str) -> None:
        rng = self.rng
        later = list(row)
        if rng.random() < 0.7:
            value = (row[VALUE] * Decimal(str(round(rng.uniform(0.7, 1.3), 3)))).quantize(CENT)
            share = row[TECH] / row[VALUE] if row[VALUE] else Decimal(1)
            later[VALUE] = value
            later[TECH] = min(value, (value * share).quantize(CENT, rounding=ROUND_DOWN))
            later[STATUS] = "变更"
            kind = "contract_amended"
        else:
            later[STATUS] = "撤销"
            kind = "contract_cancelled"
        self.pending.setdefault(self.day_no + rng.randint(5, 60), []).append((later, kind, area, row[TECH]))

    def _eligible(self, row: list) -> tuple[str, ...]:
        return _KINDS_BIG if row[VALUE] >= 1000 or row[TECH] >= 1000 else _KINDS_SMALL

    def _apply(self, row: list, kind: str, day: date) -> dict:
        rng = self.rng
        if kind in AREA_KINDS:
            area = row[SELLER_AREA]
            code = next(a.code for a in AREA_LIST if a.name == area)
            if kind == "area_short_form":
                row[SELLER_AREA] = next(a.short for a in AREA_LIST if a.name == area)
            elif kind == "area_stray_spaces":
                row[SELLER_AREA] = rng.choice((f" {area}", f"{area} ", f" {area}  "))
            else:
                row[SELLER_AREA] = UNKNOWN_AREAS[rng.randrange(len(UNKNOWN_AREAS))]
                return {"expect": "quarantine"}
            return {"expect": "normalise", "table": TABLE, "column": "seller_area_code", "value": code}
        if kind in USCC_KINDS:
            c = BUYER_USCC if row[BUYER_USCC] and "MA" in row[BUYER_USCC] and rng.random() < 0.25 else SELLER_USCC
            code = row[c]
            column = "buyer_uscc" if c == BUYER_USCC else "seller_uscc"
            if kind == "uscc_bad_check":
                row[c] = wrong_uscc_check(code)
                return {"expect": "quarantine", "column": column}
            row[c] = {"uscc_lowercase": code.lower(), "uscc_spaces": rng.choice((f" {code}", f"{code} ", f"  {code} ")),
                      "uscc_fullwidth": fullwidth(code)}[kind]
            return {"expect": "normalise", "table": TABLE, "column": column, "value": code}
        if kind in DATE_KINDS:
            d = row[REG_DATE]
            row[REG_DATE] = date_text(kind, d)
            return {"expect": "normalise", "table": TABLE, "column": "registration_date", "value": d.isoformat()}
        if kind in NUMBER_KINDS:
            choices = [c for c in (VALUE, TECH) if kind != "number_thousands" or row[c] >= 1000]
            c = choices[rng.randrange(len(choices))]
            value = row[c]
            row[c] = number_text(kind, value, unit="万元")
            column = "contract_value_10k_yuan" if c == VALUE else "tech_value_10k_yuan"
            return {"expect": "normalise", "table": TABLE, "column": column, "value": dec_text(value)}
        if kind == "missing_required":
            c = (CTYPE, VALUE, SELLER_USCC, REG_DATE)[rng.randrange(4)]
            row[c] = ""
            return {"expect": "quarantine", "column": {CTYPE: "contract_type", VALUE: "contract_value_10k_yuan",
                                                      SELLER_USCC: "seller_uscc", REG_DATE: "registration_date"}[c]}
        if kind == "negative_amount":
            row[TECH] = -row[TECH] if row[TECH] else Decimal("-1.00")
            return {"expect": "quarantine"}
        if kind == "date_out_of_range":
            if rng.random() < 0.5:
                d = day + timedelta(days=rng.randint(1, 400))
            else:
                d = date(rng.randint(2005, 2014), rng.randint(1, 12), rng.randint(1, 28))
            row[REG_DATE] = d
            return {"expect": "quarantine", "value": d.isoformat()}
        if kind == "tech_value_exceeds_contract":
            if row[TECH] < row[VALUE]:
                row[VALUE], row[TECH] = row[TECH], row[VALUE]
            else:
                row[TECH] = (row[VALUE] * Decimal("1.2")).quantize(CENT)
            if row[VALUE] <= 0:
                row[VALUE] = Decimal("0.50")
            return {"expect": "quarantine"}
        raise ValueError(kind)

    def _write(self, fname: str, day: date, body: list) -> None:
        ctx = self.ctx
        with (self.folder / fname).open("w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
            w.writerow(HEADER)
            for i, (row, kind, extra) in enumerate(body):
                w.writerow([render(v) for v in row])
                if kind is not None:
                    extra = dict(extra or {})
                    expect = extra.pop("expect")
                    ctx.manifest.add(FEED, fname, None, 2 + i, kind, expect, year=day.year, **extra)
        ctx.feed_files[FEED] += 1
        ctx.feed_rows[FEED] += len(body)


_UNFULL = {ord(c) + 0xFEE0: ord(c) for c in "0123456789.,-"}


def render(v) -> str:
    if v is None:
        return ""
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return f"{v:.2f}"
    return str(v)
