"""An independent oracle for the 18 KPIs: recomputed in plain Python from the raw rows, following only the
written specification (``shared/feeds/kpis.md`` and ``shared/feeds/README.md``, beside the repository),
never the dbt models.

SQL is limited to ``select * from raw.<table>``; every rule (latest version, restatements, revocations,
withdrawals, late reporting, distinct counts over the corridor) is applied here, row by row.

``oracle(url, period_ends)`` returns ``{(kpi_code, area_code, period_end): value}`` for the 18 KPIs, the six
areas and ``ALL``, in the units of kpi.kpi_values: counts as plain numbers, K03 as a fraction (None when the
prior-year sum is zero), K09 in 万平方米 (m² / 10,000), K17 in 亿元 (yuan / 1e8).

The other numbers officials see follow the same written rules (kpis.md), the configuration the product ships
as data (``dbt_project/seeds/*.csv``, read as CSV files, with their documentation in ``_seeds__seeds.yml`` and
``dbt_project/README.md``) and the legend the scorecards print, never the dbt SQL:

``scorecard(actuals, keys)`` returns ``{(kpi_code, area_code, grain, period_end): Scored}`` (target, paced
target, completion ratio, status: the columns of kpi.kpi_values beside the actual value), and
``ranking(card)`` returns ``{(year, area_code): Ranked}`` (composite score, KPIs scored, rank: kpi.area_ranking).
"""

from __future__ import annotations

import calendar
import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

AREAS = ("LW", "OH", "YQ", "RA", "ZN", "OJK")
ALL = "ALL"
KPIS = tuple(f"K{n:02d}" for n in range(1, 19))
WINDOW_START = date(2020, 1, 1)  # "累计" counts from 2020-01-01
IP_PLEDGES = {"专利权", "商标权", "著作权"}


def _month_end(day: date) -> date:
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


def _year_start(day: date) -> date:
    return date(day.year, 1, 1)


def _one_year_earlier(day: date) -> date:
    """The same calendar day a year earlier (29 February -> 28 February)."""
    return date(day.year - 1, day.month, min(day.day, calendar.monthrange(day.year - 1, day.month)[1]))


# The columns the rules below read, per raw table: a row keeps these only, and the values that repeat across
# rows (dates, codes, categories, states) are one object each. So a national warehouse's ~10 M raw rows fit
# in memory (whole rows as dicts: ~2 GB at province, ~20 GB at national).
_ORDER = ("ledger_id", "source_row")
COLUMNS = {
    "district_returns": ("area_code", "report_month", "file_version", *_ORDER),
    "district_platforms": ("area_code", "report_month", "file_version", "platform_id", "platform_category",
                           "recognised_date", "change_type", "incubation_area_m2", *_ORDER),
    "district_certifications": ("area_code", "report_month", "file_version", "uscc", "certification_type",
                                "certificate_no", "granted_date", "valid_until", "change_type", *_ORDER),
    "district_projects": ("area_code", "report_month", "file_version", "project_id", "project_category",
                          "start_date", "project_status", *_ORDER),
    "techmarket_contracts": ("export_date", "registration_no", "registration_date", "seller_area_code",
                             "tech_value_10k_yuan", "registration_status", *_ORDER),
    "bank_loans": ("bank_code", "report_month", "loan_id", "borrower_uscc", "area_code", "collateral_type",
                   "loan_amount_yuan", "disbursed_date", *_ORDER),
    "hr_talents": ("file_month", "record_id", "action", "person_key", "category", "intake_date", "area_code",
                   "team_id", *_ORDER),
}
_UNSHARED = {"ledger_id", "source_row", "platform_id", "uscc", "certificate_no", "project_id", "registration_no",
             "tech_value_10k_yuan", "loan_id", "borrower_uscc", "loan_amount_yuan", "record_id", "person_key",
             "team_id", "incubation_area_m2"}


def _rows(conn: psycopg.Connection, table: str) -> list[dict]:
    """``select * from raw.<table>``, streamed from a server-side cursor; each row a dict of ``COLUMNS[table]``."""
    rows = []
    with conn.cursor(name=f"oracle_{table}", row_factory=tuple_row) as cur:
        cur.itersize = 20_000
        cur.execute(f"select * from raw.{table}")  # noqa: S608 - fixed table names
        names = [c.name for c in cur.description]
        kept = [(column, names.index(column), None if column in _UNSHARED else {}) for column in COLUMNS[table]]
        for values in cur:
            rows.append({column: values[i] if shared is None else shared.setdefault(values[i], values[i])
                         for column, i, shared in kept})
    return rows


def _per_area(values: dict[str, float], d: date, kpi: str, out: dict) -> None:
    for area in (*AREAS, ALL):
        out[(kpi, area, d)] = values.get(area, 0.0)


def _count_distinct(members: list[tuple[str, object]]) -> dict[str, float]:
    """(area, member) pairs -> distinct members per area and over the corridor (ALL)."""
    per_area: dict[str, set] = defaultdict(set)
    for area, member in members:
        per_area[area].add(member)
        per_area[ALL].add(member)
    return {area: float(len(s)) for area, s in per_area.items()}


# ---------------------------------------------------------------- district workbooks (latest version)

def _latest_district(conn: psycopg.Connection) -> dict[str, list[dict]]:
    """The district sheets' rows of the latest version of each area-month only ("a version vN replaces that
    area-month entirely"). The latest version is the highest N loaded for the area-month in any sheet (a
    version with an earlier version's bytes is loaded too, and counts: it replaces the area-month as any does)."""
    sheets = {t: _rows(conn, t) for t in ("district_returns", "district_platforms", "district_certifications",
                                          "district_projects")}
    latest: dict[tuple[str, date], int] = {}
    for rows in sheets.values():
        for r in rows:
            key = (r["area_code"], r["report_month"])
            latest[key] = max(latest.get(key, 0), r["file_version"])
    return {t: [r for r in rows if r["file_version"] == latest[(r["area_code"], r["report_month"])]]
            for t, rows in sheets.items()}


class _Platform:
    def __init__(self, area: str, category: str) -> None:
        self.area = area
        self.category = category
        self.recognitions: list[date] = []  # 新增: counts from its 认定日期
        self.revocations: list[date] = []  # 撤销: last day of the report month
        self.areas_m2: list[tuple[date, int, Decimal | None]] = []  # (effective date, order, 孵化面积)

    def recognised_on(self, d: date) -> date | None:
        """The 认定日期 of the recognition in force on d (None when not in force: never recognised by d, or
        revoked by d after its latest recognition)."""
        recognised = [r for r in self.recognitions if r <= d]
        if not recognised:
            return None
        last = max(recognised)
        if any(last <= x <= d for x in self.revocations):
            return None
        return last

    def first_recognised_in_window(self, d: date) -> bool:
        """新增 with 认定日期 in [2020-01-01, d], not revoked by d."""
        current = self.recognised_on(d)
        return current is not None and WINDOW_START <= current <= d

    def area_m2_on(self, d: date) -> Decimal | None:
        known = [(eff, order, m2) for eff, order, m2 in self.areas_m2 if eff <= d and m2 is not None]
        return max(known, key=lambda t: (t[0], t[1]))[2] if known else None


def _platforms(rows: list[dict]) -> list[_Platform]:
    platforms: dict[tuple[str, str], _Platform] = {}
    for r in sorted(rows, key=lambda r: (r["report_month"], r["ledger_id"], r["source_row"])):
        key = (r["area_code"], r["platform_id"])
        p = platforms.get(key)
        if p is None:
            p = platforms[key] = _Platform(r["area_code"], r["platform_category"])
        order = len(p.areas_m2)
        if r["change_type"] == "新增":
            if r["recognised_date"] is not None:
                p.recognitions.append(r["recognised_date"])
                p.areas_m2.append((r["recognised_date"], order, r["incubation_area_m2"]))
        elif r["change_type"] == "撤销":
            p.revocations.append(_month_end(r["report_month"]))
        elif r["change_type"] == "更新":
            p.areas_m2.append((_month_end(r["report_month"]), order, r["incubation_area_m2"]))
    return list(platforms.values())


def _platform_kpis(platforms: list[_Platform], d: date, out: dict) -> None:
    def count(pred) -> dict[str, float]:
        return _count_distinct([(p.area, id(p)) for p in platforms if pred(p)])

    _per_area(count(lambda p: p.category == "高能级创新平台" and p.first_recognised_in_window(d)), d, "K01", out)
    _per_area(count(lambda p: p.category == "省级企业研究院" and p.first_recognised_in_window(d)), d, "K02", out)
    _per_area(count(lambda p: p.category == "产业创新服务综合体" and p.recognised_on(d)), d, "K07", out)
    _per_area(count(lambda p: p.category == "高校协同创新中心" and p.recognised_on(d)), d, "K13", out)
    _per_area(count(lambda p: p.category == "产教融合示范基地" and p.recognised_on(d)), d, "K14", out)
    m2: dict[str, Decimal] = defaultdict(Decimal)
    for p in platforms:
        if p.category in ("孵化器", "加速器") and p.recognised_on(d):
            value = p.area_m2_on(d) or Decimal(0)
            m2[p.area] += value
            m2[ALL] += value
    _per_area({a: float(v / Decimal(10_000)) for a, v in m2.items()}, d, "K09", out)


class _Certificate:
    def __init__(self, r: dict) -> None:
        self.area = r["area_code"]
        self.uscc = r["uscc"]
        self.kind = r["certification_type"]
        self.granted = r["granted_date"]
        self.valid_until = r["valid_until"]
        self.revocations: list[date] = []


def _certificates(rows: list[dict]) -> list[_Certificate]:
    """One per 证书编号 granted (新增; the latest report of it wins); a 撤销 revokes that certificate only,
    from the last day of its report month."""
    certs: dict[str, _Certificate] = {}
    revocations: list[tuple[str, date]] = []
    for r in sorted(rows, key=lambda r: (r["report_month"], r["ledger_id"], r["source_row"])):
        if r["change_type"] == "新增" and r["granted_date"] is not None:
            old = certs.get(r["certificate_no"])
            certs[r["certificate_no"]] = cert = _Certificate(r)
            if old is not None:
                cert.revocations = old.revocations
        elif r["change_type"] == "撤销":
            revocations.append((r["certificate_no"], _month_end(r["report_month"])))
    for number, effective in revocations:
        if number in certs:
            certs[number].revocations.append(effective)
    return list(certs.values())


def _certificate_kpis(certs: list[_Certificate], d: date, out: dict) -> None:
    def valid_on(c: _Certificate) -> bool:
        return (c.granted <= d and (c.valid_until is None or d <= c.valid_until)
                and not any(x <= d for x in c.revocations))

    _per_area(_count_distinct([(c.area, c.uscc) for c in certs if c.kind == "高新技术企业" and valid_on(c)]),
              d, "K04", out)
    _per_area(_count_distinct([(c.area, c.uscc) for c in certs if c.kind == "省级科技型中小企业" and valid_on(c)]),
              d, "K05", out)
    _per_area(_count_distinct([(c.area, c.uscc) for c in certs
                               if c.kind in ("瞪羚企业", "创新型领军企业") and WINDOW_START <= c.granted <= d]),
              d, "K10", out)


def _project_history(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Each project's monthly rows (of the latest version of each area-month), by report month."""
    history: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r["report_month"], r["ledger_id"], r["source_row"])):
        history[(r["area_code"], r["project_id"])].append(r)
    return history


def _project_kpis(history: dict[tuple[str, str], list[dict]], d: date, out: dict) -> None:
    """A project's state as of d is its row in the latest report month up to d."""
    states = []
    for (area, project), rows in history.items():
        upto = [r for r in rows if r["report_month"] <= d]
        if upto:
            states.append((area, project, upto[-1]))

    def count(pred) -> dict[str, float]:
        return _count_distinct([(area, (area, project)) for area, project, r in states if pred(r)])

    ystart = _year_start(d)
    _per_area(count(lambda r: r["project_category"] == "未来社区" and r["project_status"] in ("在建", "完成")),
              d, "K08", out)
    _per_area(count(lambda r: r["project_category"] == "重大科技项目" and r["start_date"] is not None
                    and WINDOW_START <= r["start_date"] <= d and r["project_status"] != "终止"), d, "K11", out)
    _per_area(count(lambda r: r["project_category"] == "卡脖子技术攻关" and r["start_date"] is not None
                    and ystart <= r["start_date"] <= d and r["project_status"] != "终止"), d, "K15", out)
    _per_area(count(lambda r: r["project_category"] == "重点区块" and r["project_status"] == "完成"), d, "K16", out)


# ---------------------------------------------------------------- technology contracts

def _contracts(conn: psycopg.Connection) -> list[dict]:
    """The latest row of each 合同登记号 (the latest file wins: export date, then load order, then line)."""
    latest: dict[str, dict] = {}
    for r in sorted(_rows(conn, "techmarket_contracts"),
                    key=lambda r: (r["export_date"], r["ledger_id"], r["source_row"])):
        latest[r["registration_no"]] = r
    return list(latest.values())


def _contract_kpis(contracts: list[dict], d: date, out: dict) -> None:
    def total(start: date, end: date) -> dict[str, Decimal]:
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for c in contracts:
            if c["registration_status"] != "撤销" and start <= c["registration_date"] <= end:
                sums[c["seller_area_code"]] += c["tech_value_10k_yuan"]
                sums[ALL] += c["tech_value_10k_yuan"]
        return sums

    now = total(_year_start(d), d)
    before = total(date(d.year - 1, 1, 1), _one_year_earlier(d))
    for area in (*AREAS, ALL):
        out[("K03", area, d)] = float(now[area] / before[area] - 1) if before[area] else None


# ---------------------------------------------------------------- bank loans

def _loans(conn: psycopg.Connection) -> list[dict]:
    """The latest report (报告期) of each loan (bank, 贷款编号)."""
    latest: dict[tuple[str, str], dict] = {}
    for r in sorted(_rows(conn, "bank_loans"), key=lambda r: (r["report_month"], r["ledger_id"], r["source_row"])):
        latest[(r["bank_code"], r["loan_id"])] = r
    return list(latest.values())


def _loan_kpis(loans: list[dict], d: date, out: dict) -> None:
    in_year = [r for r in loans if _year_start(d) <= r["disbursed_date"] <= d]
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    for r in in_year:
        if r["collateral_type"] in IP_PLEDGES:
            amounts[r["area_code"]] += r["loan_amount_yuan"]
            amounts[ALL] += r["loan_amount_yuan"]
    _per_area({a: float(v / Decimal(100_000_000)) for a, v in amounts.items()}, d, "K17", out)
    _per_area(_count_distinct([(r["area_code"], r["borrower_uscc"]) for r in in_year]), d, "K18", out)


# ---------------------------------------------------------------- talents

class _Talent:
    def __init__(self) -> None:
        self.attributes: dict | None = None  # the latest new/update row
        self.withdrawn: date | None = None  # last day of the withdraw file's month


def _talents(conn: psycopg.Connection) -> list[_Talent]:
    records: dict[str, _Talent] = defaultdict(_Talent)
    for r in sorted(_rows(conn, "hr_talents"), key=lambda r: (r["file_month"], r["ledger_id"], r["source_row"])):
        t = records[r["record_id"]]
        if r["action"] == "withdraw":
            effective = _month_end(r["file_month"])
            t.withdrawn = effective if t.withdrawn is None else min(t.withdrawn, effective)
        else:
            t.attributes = r
    return [t for t in records.values() if t.attributes is not None]


def _talent_kpis(talents: list[_Talent], d: date, out: dict) -> None:
    counting = [t.attributes for t in talents
                if t.attributes["intake_date"] <= d and (t.withdrawn is None or t.withdrawn > d)]
    # K06: a person once, in the area of their earliest intake in [2020-01-01, d]
    earliest: dict[str, dict] = {}
    for r in counting:
        if r["intake_date"] >= WINDOW_START and r["category"] in ("A", "B", "C", "D", "E"):
            key = (r["intake_date"], r["record_id"])
            e = earliest.get(r["person_key"])
            if e is None or key < (e["intake_date"], e["record_id"]):
                earliest[r["person_key"]] = r
    _per_area(_count_distinct([(r["area_code"], p) for p, r in earliest.items()]), d, "K06", out)
    # K12: a team in the year and area of its first (not withdrawn) member
    first: dict[str, dict] = {}
    for r in counting:
        if r["team_id"]:
            key = (r["intake_date"], r["record_id"])
            f = first.get(r["team_id"])
            if f is None or key < (f["intake_date"], f["record_id"]):
                first[r["team_id"]] = r
    _per_area(_count_distinct([(r["area_code"], team) for team, r in first.items()
                               if _year_start(d) <= r["intake_date"] <= d]), d, "K12", out)


# ---------------------------------------------------------------- the oracle

def oracle(url: str, period_ends: list[date]) -> dict[tuple[str, str, date], float | None]:
    """Every KPI x area (six areas and ALL) at each period end, from the raw rows."""
    with psycopg.connect(url) as conn:
        district = _latest_district(conn)
        contracts = _contracts(conn)
        loans = _loans(conn)
        talents = _talents(conn)
    platforms = _platforms(district["district_platforms"])
    certs = _certificates(district["district_certifications"])
    projects = _project_history(district["district_projects"])
    out: dict[tuple[str, str, date], float | None] = {}
    for d in period_ends:
        _platform_kpis(platforms, d, out)
        _certificate_kpis(certs, d, out)
        _project_kpis(projects, d, out)
        _contract_kpis(contracts, d, out)
        _loan_kpis(loans, d, out)
        _talent_kpis(talents, d, out)
    return out


# ---------------------------------------------------------------- targets, pacing, status (the scorecards)

SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"
WINDOW_END = date(2022, 12, 31)  # the action plan's window 2020-01-01 .. 2022-12-31 (kpis.md)
WINDOW_MONTHS = (WINDOW_END.year - WINDOW_START.year) * 12 + WINDOW_END.month - WINDOW_START.month + 1  # 36
VALUE_SCALE = 10  # "values are rounded to 10 decimals before the status is decided" (dbt_project/README.md)
SCORE_CAP = Fraction(6, 5)  # min(actual / target, 1.2) (kpis.md)
NO_TARGET = "no_target"
BEHIND = "behind"


def _seed(name: str, seeds: Path) -> list[dict[str, str]]:
    with (seeds / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _exact(value: float | Decimal | None) -> Fraction | None:
    """A value as the decimal it stands for (the oracle's floats come from decimals), exactly."""
    return None if value is None else Fraction(Decimal(repr(value)) if isinstance(value, float) else value)


def _rounded(value: Fraction | None) -> Decimal | None:
    """Rounded to VALUE_SCALE decimals, halves away from zero (as numeric rounding), exactly."""
    if value is None:
        return None
    scaled = value * 10 ** VALUE_SCALE
    whole = (abs(scaled.numerator) * 2 + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(whole if scaled >= 0 else -whole).scaleb(-VALUE_SCALE)


@dataclass(frozen=True)
class Targets:
    """The configuration of kpi_targets, kpi_area_allocation, kpi_status_thresholds and kpi_weights."""

    kind: dict[str, str]  # kpi -> cumulative / annual / none
    pacing: dict[str, str]  # kpi -> window_linear / year_linear / none
    target: dict[tuple[str, str], Fraction | None]  # (kpi, area or ALL) -> the area's target
    thresholds: list[tuple[Fraction, str]]  # (lowest completion ratio, status), highest first
    weight: dict[str, Fraction]  # kpi -> ranking weight (1 when the seed has no row)


def targets(seeds: Path = SEEDS) -> Targets:
    """The targets as configured: ALL has the corridor target; an ``allocated`` KPI's area target is the
    corridor target × weight / Σ weights of the six areas (a missing row = weight 1), none for an area of
    weight 0 (and so for every area when the six weights are all 0: ``_seeds__seeds.yml``); a ``uniform``
    KPI's (a rate) every area has the corridor target; ``target_kind`` none = no target."""
    kind, pacing, target = {}, {}, {}
    allocation = {(r["kpi_code"], r["area_code"]): Fraction(r["allocation_weight"])
                  for r in _seed("kpi_area_allocation", seeds)}
    for r in _seed("kpi_targets", seeds):
        kpi = r["kpi_code"]
        if r["direction"] != "higher_is_better":
            raise NotImplementedError(f"{kpi}: no written rule for a completion ratio of {r['direction']}")
        kind[kpi], pacing[kpi] = r["target_kind"], r["pacing"]
        corridor = Fraction(r["corridor_target"]) if r["target_kind"] != "none" and r["corridor_target"] else None
        target[(kpi, ALL)] = corridor
        weights = {a: allocation.get((kpi, a), Fraction(1)) for a in AREAS}
        for area in AREAS:
            if corridor is None:
                target[(kpi, area)] = None
            elif r["area_target_method"] == "uniform":
                target[(kpi, area)] = corridor
            elif weights[area] > 0:
                target[(kpi, area)] = corridor * weights[area] / sum(weights.values())
            else:
                target[(kpi, area)] = None  # no allocation: no target of its own (no_target)
    thresholds = sorted(((Fraction(r["min_completion_ratio"]), r["status"])
                         for r in _seed("kpi_status_thresholds", seeds)), reverse=True)
    weight = {kpi: Fraction(1) for kpi in kind}
    weight.update({r["kpi_code"]: Fraction(r["ranking_weight"]) for r in _seed("kpi_weights", seeds)})
    return Targets(kind, pacing, target, thresholds, weight)


def _pace(pacing: str, grain: str, end: date) -> Fraction:
    """The share of the target due at ``end``: window_linear = months elapsed since 2020-01 (inclusive) / 36,
    capped at 1; year_linear = month of the year / 12 (a year row: the whole annual target); none = 1."""
    if pacing == "window_linear":
        elapsed = (end.year - WINDOW_START.year) * 12 + end.month - WINDOW_START.month + 1
        return min(Fraction(max(elapsed, 0), WINDOW_MONTHS), Fraction(1))
    if pacing == "year_linear":
        return Fraction(1) if grain == "year" else Fraction(end.month, 12)
    if pacing == "none":
        return Fraction(1)
    raise ValueError(f"unknown pacing {pacing!r}")


@dataclass(frozen=True)
class Scored:
    target: Decimal | None
    paced_target: Decimal | None
    completion_ratio: Decimal | None
    status: str | None


def _status(ratio: Decimal | None, config: Targets) -> str | None:
    if ratio is None:
        return None  # a target but no measurable value (K03 without a base)
    for lowest, status in config.thresholds:
        if Fraction(ratio) >= lowest:
            return status
    return BEHIND


def scorecard(actuals: dict[tuple[str, str, date], float | None], keys: Iterable[tuple[str, str, str, date]],
              config: Targets | None = None) -> dict[tuple[str, str, str, date], Scored]:
    """Target, paced target, completion ratio (actual / paced target) and status of each (kpi, area, grain,
    period end) in ``keys``, from the oracle's actual values (``oracle()``), each rounded to 10 decimals."""
    config = config or targets()
    out = {}
    for kpi, area, grain, end in keys:
        target = config.target[(kpi, area)]
        if target is None:
            out[(kpi, area, grain, end)] = Scored(None, None, None, NO_TARGET)
            continue
        paced = target * _pace(config.pacing[kpi], grain, end)
        actual = _exact(actuals[(kpi, area, end)])
        ratio = _rounded(actual / paced) if actual is not None and paced else None
        out[(kpi, area, grain, end)] = Scored(_rounded(target), _rounded(paced), ratio, _status(ratio, config))
    return out


# ---------------------------------------------------------------- the annual competition (年度比拼)

@dataclass(frozen=True)
class Ranked:
    composite_score: Decimal | None
    kpis_scored: int
    area_rank: int


def ranking(card: dict[tuple[str, str, str, date], Scored],
            config: Targets | None = None) -> dict[tuple[int, str], Ranked]:
    """Per year with a year row, the six areas ranked by the composite score: the weighted mean (kpi_weights,
    default 1) over the KPIs with a target and a completion ratio of min(year-row completion ratio, 1.2),
    rounded to 10 decimals; the rank is 1 + the number of areas with a higher score (ties share a rank)."""
    config = config or targets()
    years = sorted({end.year for (_k, _a, grain, end) in card if grain == "year"})
    out = {}
    for year in years:
        end = date(year, 12, 31)
        scores: dict[str, tuple[Decimal | None, int]] = {}
        for area in AREAS:
            scored = [(config.weight[kpi], min(Fraction(s.completion_ratio), SCORE_CAP))
                      for kpi in config.kind
                      if (s := card.get((kpi, area, "year", end))) is not None
                      and s.target is not None and s.completion_ratio is not None]
            total = sum(w for w, _ in scored)
            score = _rounded(sum(w * r for w, r in scored) / total) if total else None
            scores[area] = (score, len(scored))
        for area, (score, count) in scores.items():
            higher = sum(1 for other, _ in scores.values()
                         if other is not None and (score is None or other > score))
            out[(year, area)] = Ranked(score, count, 1 + higher)
    return out
