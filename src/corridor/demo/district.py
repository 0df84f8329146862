"""片区月报: one workbook per area per month (spec section 1)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from corridor.demo.context import Context, Quota, weighted, yearly
from corridor.demo.dirty import (
    NUMBER_KINDS,
    USCC_KINDS,
    XLSX_DATE_KINDS,
    Planter,
    date_text,
    dec_text,
    number_text,
)
from corridor.demo.ids import fullwidth, wrong_uscc_check
from corridor.demo.master import mobile, person_name
from corridor.demo.periods import add_years, days_in_month, index_month, month_end, month_start
from corridor.demo.vocab import (
    AREA_LIST,
    INSTITUTIONS,
    NAME_INDUSTRIES,
    PLATFORM_PLAN,
    PROJECT_PLAN,
    PROJECT_TECHS,
    ROAD_NAMES,
    VILLAGES,
    Area,
)
from corridor.demo.xlsx import SheetData, SheetSpec, write_workbook

FEED = "district"
PLATFORMS = SheetSpec(
    "创新平台",
    ("平台编号", "平台名称", "平台类别", "级别", "认定日期", "依托单位", "依托单位统一社会信用代码", "变动类型",
     "孵化面积（平方米）"),
    ("text", "text", "text", "text", "date", "text", "text", "text", "int"),
    (12, 36, 18, 8, 12, 34, 24, 10, 18),
    "填报说明：填报本月新增、撤销、更新的创新平台；撤销、更新按平台编号填报，自报告期末生效；孵化面积仅孵化器、加速器填报。",
)
CERTS = SheetSpec(
    "企业认定",
    ("统一社会信用代码", "企业名称", "认定类别", "证书编号", "认定日期", "有效期至", "变动类型"),
    ("text", "text", "text", "text", "date", "date", "text"),
    (24, 34, 18, 18, 12, 12, 10),
    "填报说明：填报本月新增、撤销的企业认定；撤销按证书编号填报；有效期至按证书填写，长期有效的留空。",
)
PROJECTS = SheetSpec(
    "重点项目",
    ("项目编号", "项目名称", "项目类别", "所属区块", "开始日期", "计划完成日期", "状态", "累计完成投资（万元）",
     "形象进度（%）"),
    ("text", "text", "text", "text", "date", "date", "text", "dec", "int"),
    (12, 40, 14, 30, 12, 14, 8, 18, 12),
    "填报说明：在库项目每月填报；累计完成投资单位为万元（累计数），形象进度填0-100。",
)
TABLE = {"创新平台": "raw.district_platforms", "企业认定": "raw.district_certifications",
         "重点项目": "raw.district_projects"}
COLUMN = {  # spec header -> raw column
    "认定日期": {"创新平台": "recognised_date", "企业认定": "granted_date"},
    "有效期至": "valid_until", "开始日期": "start_date", "计划完成日期": "planned_completion_date",
    "孵化面积（平方米）": "incubation_area_m2", "累计完成投资（万元）": "cumulative_investment_10k_yuan",
    "依托单位统一社会信用代码": "host_uscc", "统一社会信用代码": "uscc",
}
DATE_FORMATS = {"LW": "yyyy-mm-dd", "OH": "yyyy/m/d", "YQ": "yyyy-mm-dd", "RA": 'yyyy"年"m"月"d"日"',
                "ZN": "yyyy-mm-dd", "OJK": "yyyy/mm/dd"}
REPORT_LAG = ((0, 0.62), (1, 0.22), (2, 0.11), (3, 0.05))
INCUBATING = ("孵化器", "加速器")
RATE = {"创新平台": 0.12, "企业认定": 0.03, "重点项目": 0.028}
P_TOTAL_ROW, P_EMPTY_ROW, P_HEADER_DIRTY = 0.05, 0.05, 0.02
P_RESTATED, P_RESENT = 0.035, 0.015


def column(header: str, sheet: str) -> str:
    c = COLUMN[header]
    return c[sheet] if isinstance(c, dict) else c


@dataclass
class Platform:
    pid: str
    name: str
    category: str
    level: str
    recognised: date
    host_name: str
    host_uscc: str
    area_m2: int | None

    def row(self, change: str) -> list:
        return [self.pid, self.name, self.category, self.level, self.recognised, self.host_name,
                self.host_uscc, change, self.area_m2]


@dataclass
class Cert:
    area: str
    ent: int
    uscc: str
    name: str
    ctype: str
    cert_no: str
    granted: date
    valid_until: date | None

    def row(self, change: str) -> list:
        return [self.uscc, self.name, self.ctype, self.cert_no, self.granted, self.valid_until, change]


@dataclass
class Project:
    pid: str
    name: str
    category: str
    block: str | None
    start: date
    start_idx: int
    build_idx: int            # first month 在建
    done_idx: int             # month of the 完成 row
    planned: date
    budget: Decimal
    a: float                  # shape of the investment curve
    b: float                  # shape of the progress curve
    terminate_idx: int | None = None

    def row(self, idx: int) -> list | None:
        if self.terminate_idx is not None and idx > self.terminate_idx or idx > self.done_idx:
            return None
        if self.terminate_idx == idx:
            status = "终止"
        elif idx < self.build_idx:
            status = "谋划"
        elif idx < self.done_idx:
            status = "在建"
        else:
            status = "完成"
        invest, progress = self._state(idx if status != "终止" else idx - 1)
        if status == "完成":
            progress = 100
            invest = (self.budget * Decimal("0.97")).quantize(Decimal("0.01"))
        return [self.pid, self.name, self.category, self.block, self.start, self.planned, status,
                invest, progress]

    def _state(self, idx: int) -> tuple[Decimal, int]:
        if idx < self.build_idx:
            k = max(0, idx - self.start_idx)
            return (self.budget * Decimal("0.002") * k).quantize(Decimal("0.01")), 0
        t = (idx - self.build_idx + 1) / (self.done_idx - self.build_idx + 1)
        invest = self.budget * Decimal(str(round(0.01 + 0.93 * t ** self.a, 6)))
        return invest.quantize(Decimal("0.01")), min(99, int(round(100 * t ** self.b)))


@dataclass
class AreaState:
    area: Area
    next_ent: int
    pool: int
    next_platform: int
    next_project: int
    ht_valid: dict[int, date] = field(default_factory=dict)   # enterprise -> HT valid until
    ht_cohort: dict[int, list[int]] = field(default_factory=dict)
    honoured: set[int] = field(default_factory=set)          # 瞪羚/领军 already
    projects: list[Project] = field(default_factory=list)


class DistrictGenerator:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.rng = ctx.rng("district")
        self.f = ctx.factor
        self.folder = ctx.landing / "district"
        self.folder.mkdir(parents=True, exist_ok=True)
        # number kinds in 孵化面积 can only go on the few incubator rows: preferred when possible
        self.planters = {name: Planter(ctx.rng("district-plant", name), rate,
                                       {k: 4.0 for k in NUMBER_KINDS} if name == "创新平台" else None)
                         for name, rate in RATE.items()}
        self.book_rng = ctx.rng("district-book")
        self.areas: dict[str, AreaState] = {}
        for a in AREA_LIST:
            pool = ctx.pool(a.weight)
            self.areas[a.code] = AreaState(a, next_ent=int(pool * 0.4), pool=pool,
                                           next_platform=self.rng.randint(3, 25),
                                           next_project=self.rng.randint(5, 40))
        # pending[report month index][area] -> list of (sheet, row, meta)
        self.pending: dict[int, dict[str, list[tuple[str, list, dict]]]] = {}
        self.quotas: dict[tuple, Quota] = {}
        self.seq: dict[tuple, int] = {}
        self.batch_days: dict[tuple, int] = {}
        # KPI preview state (delivered records only)
        self.platform_state: dict[str, list] = {}     # pid -> [area, category, recognised, revoked_at, m2]
        self.ht_valid_end: dict[str, set[int]] = {a.code: set() for a in AREA_LIST}
        self.sme_valid_end: dict[str, set[int]] = {a.code: set() for a in AREA_LIST}
        self.honour_new: dict[str, set[int]] = {a.code: set() for a in AREA_LIST}
        self.project_state: dict[str, list] = {}      # pid -> [area, category, start, status]
        self.end = month_end(ctx.end_idx)
        self.restated, self.resent, self.v3 = self._plan_versions()

    # ------------------------------------------------------------------ planning

    def _plan_versions(self) -> tuple[set, set, set]:
        rng = self.ctx.rng("district-versions")
        cells = [(a.code, i) for i in range(self.ctx.start_idx, self.ctx.end_idx + 1) for a in AREA_LIST]
        rng.shuffle(cells)
        n_restated = max(1, round(len(cells) * P_RESTATED))
        n_resent = max(1, round(len(cells) * P_RESENT))
        restated = set(cells[:n_restated])
        resent = set(cells[n_restated:n_restated + n_resent])
        v3 = set(sorted(restated)[:: 4]) if restated else set()
        return restated, resent, v3

    def _quota(self, *key) -> Quota:
        q = self.quotas.get(key)
        if q is None:
            q = self.quotas[key] = Quota(self.ctx.rng("district-quota", *key))
        return q

    def _next_seq(self, key: tuple, step_max: int = 1) -> int:
        self.seq[key] = self.seq.get(key, 0) + (self.rng.randint(1, step_max) if step_max > 1 else 1)
        return self.seq[key]

    def _batch_day(self, kind: str, idx: int) -> date:
        key = (kind, idx)
        if key not in self.batch_days:
            self.batch_days[key] = self.ctx.rng("batch", kind, idx).randint(5, min(28, days_in_month(idx)))
        y, m = index_month(idx)
        return date(y, m, self.batch_days[key])

    def _push(self, idx: int, area: str, sheet: str, row: list, meta: dict) -> None:
        if idx > self.ctx.end_idx:
            return
        self.pending.setdefault(idx, {}).setdefault(area, []).append((sheet, row, meta))

    def _lagged(self, idx: int) -> int:
        return idx + int(weighted(self.rng, REPORT_LAG))

    # ------------------------------------------------------------------ events

    def _grant_certificates(self, idx: int) -> None:
        y, m = index_month(idx)
        plan = []
        if m in (10, 12):
            plan.append(("高新技术企业", yearly("ht_new", y) * (0.4 if m == 10 else 0.6)))
        if m >= 3:
            plan.append(("省级科技型中小企业", yearly("sme_new", y) / 10))
        if m == 7:
            plan.append(("瞪羚企业", yearly("gazelle", y)))
            plan.append(("创新型领军企业", yearly("leader", y)))
        for ctype, expected in plan:
            granted = self._batch_day(ctype, idx)
            for a in AREA_LIST:
                st = self.areas[a.code]
                n = self._quota("cert", ctype, a.code).take(expected * a.weight * self.f)
                for _ in range(n):
                    cert = self._new_cert(st, ctype, granted)
                    if cert is not None:
                        self._push(self._lagged(idx), a.code, "企业认定", cert.row("新增"),
                                   {"event": "cert_new", "cert": cert})

    def _pick_enterprise(self, st: AreaState, ctype: str, granted: date) -> int | None:
        rng = self.rng
        if ctype == "省级科技型中小企业":
            if rng.random() < 0.85 or st.next_ent < 100:
                st.next_ent += 1
                return st.next_ent - 1
            return rng.randrange(st.next_ent)
        if ctype == "高新技术企业":
            for _ in range(8):
                r = rng.random()
                cohort = st.ht_cohort.get(granted.year - 3)
                if r < 0.2 and cohort:
                    n = cohort[rng.randrange(len(cohort))]
                elif r < 0.8:
                    n = rng.randrange(st.next_ent)
                else:
                    st.next_ent += 1
                    n = st.next_ent - 1
                if st.ht_valid.get(n, date.min) < granted:
                    return n
            return None
        holders = [n for n, until in st.ht_valid.items() if until >= granted and n not in st.honoured] \
            if len(st.ht_valid) < 5000 else None
        for _ in range(20):
            n = holders[rng.randrange(len(holders))] if holders else rng.randrange(st.next_ent)
            if n not in st.honoured:
                st.honoured.add(n)
                return n
        return None

    def _new_cert(self, st: AreaState, ctype: str, granted: date) -> Cert | None:
        n = self._pick_enterprise(st, ctype, granted)
        if n is None:
            return None
        ent = self.ctx.enterprises
        y = granted.year
        if ctype == "高新技术企业":
            space = min(999_999, max(9_999, int(30 * yearly("ht_new", y) * self.f)))
            step = max(1, int(space / (yearly("ht_new", y) * self.f * 1.3)))
            cert_no = f"GR{y}33{self._next_seq(('GR', y), 2 * step - 1):06d}"
            until = add_years(granted, 3) - timedelta(days=1)
            st.ht_valid[n] = until
            st.ht_cohort.setdefault(y, []).append(n)
        elif ctype == "省级科技型中小企业":
            cert_no = f"{y}3303{self._next_seq(('KX', y), 3):06d}"
            until = add_years(granted, 3) - timedelta(days=1) if self.rng.random() < 0.7 else None
        elif ctype == "瞪羚企业":
            cert_no = f"WZDL{y}{self._next_seq(('DL', y)):04d}"
            until = add_years(granted, 3) - timedelta(days=1)
        else:
            cert_no = f"WZLJ{y}{self._next_seq(('LJ', y)):04d}"
            until = None
        return Cert(st.area.code, n, ent.uscc(st.area.code, n), ent.name(st.area.code, n), ctype, cert_no,
                    granted, until)

    def _seed_cohorts(self) -> None:
        """HT holders before the demo period (their 新增 rows are not in the data)."""
        y0 = index_month(self.ctx.start_idx)[0]
        for a in AREA_LIST:
            st = self.areas[a.code]
            for y in (y0 - 3, y0 - 2, y0 - 1):
                for _ in range(round(yearly("ht_new", y) * a.weight * self.f)):
                    n = self.rng.randrange(st.next_ent)
                    st.ht_valid[n] = date(y + 3, 12, 1)
                    st.ht_cohort.setdefault(y, []).append(n)

    def _recognise_platforms(self, idx: int) -> None:
        y, _ = index_month(idx)
        for category, per_year, levels, m2_range in PLATFORM_PLAN:
            n = self._quota("platform", category).take(per_year * (1 + 0.05 * (y - 2019)) / 12 * self.f)
            for _ in range(n):
                a = AREA_LIST[0]
                r = self.rng.random() * sum(x.weight for x in AREA_LIST)
                for a in AREA_LIST:
                    r -= a.weight
                    if r < 0:
                        break
                p = self._new_platform(self.areas[a.code], idx, category, levels, m2_range)
                self._push(self._lagged(idx), a.code, "创新平台", p.row("新增"), {"event": "platform_new", "p": p})

    def _new_platform(self, st: AreaState, idx: int, category: str, levels, m2_range) -> Platform:
        rng, ent = self.rng, self.ctx.enterprises
        code = st.area.code
        pid = f"{code}-P-{st.next_platform:04d}"
        st.next_platform += 1
        y, m = index_month(idx)
        recognised = date(y, m, rng.randint(1, days_in_month(idx)))
        tech = PROJECT_TECHS[rng.randrange(len(PROJECT_TECHS))]
        industry = NAME_INDUSTRIES[rng.randrange(len(NAME_INDUSTRIES))]
        use_institution = category in ("高校协同创新中心", "产教融合示范基地") or (
            category == "高能级创新平台" and rng.random() < 0.6)
        if use_institution:
            host_name, host_uscc = ent.institution(rng.randrange(len(INSTITUTIONS)))
        else:
            n = rng.randrange(st.next_ent)
            host_name, host_uscc = ent.name(code, n), ent.uscc(code, n)
        short = ent.short(code, rng.randrange(st.next_ent))
        block = st.area.blocks[rng.randrange(2)]
        name = {
            "高能级创新平台": f"{host_name}{tech}研究中心" if use_institution else f"温州{short}{tech}研究院",
            "省级企业研究院": f"浙江省{short}研究院",
            "产业创新服务综合体": f"{st.area.name}{industry}产业创新服务综合体",
            "高校协同创新中心": f"{host_name}{tech}协同创新中心",
            "产教融合示范基地": f"{host_name}{industry}产教融合示范基地",
            "孵化器": f"{block}{rng.choice(('科技企业', '众创', '人才创业园', '创新创业'))}孵化器",
            "加速器": f"{block}产业加速器",
            "科创飞地": f"{st.area.name}驻{rng.choice(('上海', '杭州', '深圳', '北京'))}科创飞地",
        }[category]
        level = weighted(rng, levels)
        m2 = round(rng.uniform(*m2_range), -2) if m2_range else None
        return Platform(pid, name, category, level, recognised, host_name, host_uscc,
                        int(m2) if m2 is not None else None)

    def _start_projects(self, idx: int, *, history: bool = False) -> None:
        y, m = index_month(idx)
        for category, per_year, budget, duration in PROJECT_PLAN:
            if category == "未来社区" and y < 2019:
                continue
            n = self._quota("project", category).take(per_year / 12 * self.f)
            for _ in range(n):
                r = self.rng.random() * sum(x.weight for x in AREA_LIST)
                a = AREA_LIST[-1]
                for a in AREA_LIST:
                    r -= a.weight
                    if r < 0:
                        break
                p = self._new_project(self.areas[a.code], idx, category, budget, duration)
                if not history or p.done_idx >= self.ctx.start_idx and (
                        p.terminate_idx is None or p.terminate_idx >= self.ctx.start_idx):
                    self.areas[a.code].projects.append(p)

    def _new_project(self, st: AreaState, idx: int, category: str, budget, duration) -> Project:
        rng = self.rng
        code = st.area.code
        pid = f"{code}-X-{st.next_project:04d}"
        st.next_project += 1
        y, m = index_month(idx)
        start = date(y, m, rng.randint(1, days_in_month(idx)))
        plan_m = rng.choice((0, 1, 1, 2, 3, 4, 6))
        dur = rng.randint(*duration)
        delay = 0 if rng.random() < 0.6 else rng.randint(1, 6)
        block = st.area.blocks[rng.randrange(2)]
        tech = PROJECT_TECHS[rng.randrange(len(PROJECT_TECHS))]
        village = VILLAGES[rng.randrange(len(VILLAGES))]
        name = {
            "重大科技项目": f"{self.ctx.enterprises.short(code, rng.randrange(st.next_ent))}{tech}研发及产业化项目",
            "卡脖子技术攻关": f"{tech}关键核心技术攻关",
            "重点区块": f"{block}{rng.choice(('一期', '二期', '三期', '核心区', '配套'))}建设工程",
            "未来社区": f"{st.area.name}{village}未来社区",
            "交通路网": f"{ROAD_NAMES[rng.randrange(len(ROAD_NAMES))]}（{st.area.short}段）{rng.choice(('新建', '改造提升', '快速化改造'))}工程",
            "环境整治": f"{village}{rng.choice(('旧村改造', '环境综合整治', '旧厂房改造提升', '河道整治'))}工程",
        }[category]
        has_block = category == "重点区块" or rng.random() < 0.4
        planned = month_end(idx + plan_m + dur)
        p = Project(pid, name, category, block if has_block else None, start, idx, idx + plan_m,
                    idx + plan_m + dur + delay, planned,
                    Decimal(str(round(rng.uniform(*budget), -1))), rng.uniform(0.9, 1.4), rng.uniform(0.8, 1.1))
        if category != "未来社区" and rng.random() < 0.04:
            p.terminate_idx = idx + rng.randint(1, plan_m + dur)
        return p

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        ctx = self.ctx
        self._seed_cohorts()
        for idx in range(max(ctx.start_idx - 36, 2015 * 12), ctx.start_idx):
            self._start_projects(idx, history=True)
        for idx in range(max(ctx.start_idx - 3, 2015 * 12), ctx.start_idx):  # reported late, in the period
            self._grant_certificates(idx)
            self._recognise_platforms(idx)
        for idx in ctx.months():
            self._grant_certificates(idx)
            self._recognise_platforms(idx)
            self._start_projects(idx)
            month_pending = self.pending.pop(idx, {})
            for a in AREA_LIST:
                self._area_month(a, idx, month_pending.get(a.code, []))
        self._kpis()

    def _area_month(self, a: Area, idx: int, events: list) -> None:
        y, m = index_month(idx)
        st = self.areas[a.code]
        order = {"新增": 0, "更新": 1, "撤销": 2}
        plat, cert = [], []
        for sheet, row, meta in events:
            if meta["event"] == "platform_update":
                row = self._update_platform(meta["p"]).row("更新")
            elif meta["event"] == "platform_revoke":
                row = meta["p"].row("撤销")
            (plat if sheet == "创新平台" else cert).append((sheet, row, meta))
        plat.sort(key=lambda e: (order[e[1][7]], e[1][0]))
        cert.sort(key=lambda e: (order[e[1][6]], e[1][2], e[1][3]))
        proj, active = [], []
        for p in st.projects:
            row = p.row(idx)
            if row is not None:  # restated every month until its 完成 or 终止 row
                proj.append(("重点项目", row, {"event": "project", "p": p}))
                active.append(p)
        st.projects = active
        truth = {"创新平台": plat, "企业认定": cert, "重点项目": proj}
        cell = (a.code, idx)
        stem = f"{a.code}_{y}{m:02d}"
        restated = cell in self.restated

        # v1: the truth with (for a restated month) errors, and planted dirty records
        errors_a = self._restatement_errors(truth, cell, "a") if restated else {}
        v1 = self._render(truth, errors_a)
        quarantined, rowmap = self._plant(v1, truth, f"{stem}_v1.xlsx", idx, errors_a)
        final = f"{stem}_v1.xlsx"
        self._write(a, idx, 1, v1)
        if cell in self.resent:
            shutil.copyfile(self.folder / f"{stem}_v1.xlsx", self.folder / f"{stem}_v2.xlsx")
            self.ctx.feed_files[FEED] += 1
            # a version replaces its area-month whatever it holds: loaded (its numbers are v1's)
            self.ctx.manifest.add(FEED, f"{stem}_v2.xlsx", None, None, "resent_identical", "supersede",
                                  year=y, supersedes=f"{stem}_v1.xlsx", same_as=f"{stem}_v1.xlsx", corrections=[])
        if restated:
            quarantined = set()  # the final version carries every record, clean, in truth order
            rowmap = {(sheet, i): 4 + i for sheet, rows in truth.items() for i in range(len(rows))}
            versions = [(2, self._restatement_errors(truth, cell, "b", avoid=errors_a)), (3, {})] \
                if cell in self.v3 else [(2, {})]
            prev, prev_errors = f"{stem}_v1.xlsx", errors_a
            for version, errors in versions:
                self._write(a, idx, version, self._render(truth, errors))
                name = f"{stem}_v{version}.xlsx"
                self.ctx.manifest.add(FEED, name, None, None, "restatement", "supersede", supersedes=prev,
                                      corrections=[e["note"] for e in prev_errors.values()])
                prev, prev_errors = name, errors
            final = prev
        self._after_delivery(a, idx, truth, quarantined, final, rowmap)

    def _update_platform(self, p: Platform) -> Platform:
        rng = self.rng
        if p.area_m2:
            p.area_m2 = int(round(p.area_m2 * rng.uniform(1.1, 1.6), -2))
        elif p.level == "市级":
            p.level = "省级"
        elif p.level == "省级" and p.category not in ("省级企业研究院",):
            p.level = "国家级"
        else:
            p.name = p.name.replace("研究院", "创新研究院", 1) if "研究院" in p.name else p.name + "（升级）"
        return p

    # ------------------------------------------------------------------ rendering and dirt

    def _render(self, truth: dict, errors: dict) -> dict[str, SheetData]:
        out = {}
        for spec in (PLATFORMS, CERTS, PROJECTS):
            rows = []
            for i, (_, row, _meta) in enumerate(truth[spec.name]):
                err = errors.get((spec.name, i))
                if err is None:
                    rows.append(list(row))
                elif err["drop"]:
                    continue
                else:
                    r = list(row)
                    r[err["col"]] = err["value"]
                    rows.append(r)
            out[spec.name] = SheetData(spec, list(spec.headers), rows)
        return out

    def _restatement_errors(self, truth: dict, cell: tuple, tag: str, avoid: dict | None = None) -> dict:
        """Errors of an earlier version, corrected by the next: {(sheet, truth index): {...}}."""
        rng = self.ctx.rng("restate", tag, *cell)
        options = []
        for i, (_, row, _m) in enumerate(truth["重点项目"]):
            if row[7] and row[7] > 0:
                options.append(("重点项目", i, "investment"))
            if row[6] == "在建":
                options.append(("重点项目", i, "progress"))
        for i, (_, row, _m) in enumerate(truth["企业认定"]):
            if row[6] == "新增":
                options.append(("企业认定", i, "missing"))
        for i, (_, row, _m) in enumerate(truth["创新平台"]):
            if row[8]:
                options.append(("创新平台", i, "area"))
        options = [o for o in options if not avoid or (o[0], o[1]) not in avoid]
        errors = {}
        rng.shuffle(options)
        for sheet, i, what in options[: rng.randint(1, 3)]:
            row = truth[sheet][i][1]
            if what == "investment":
                wrong = (row[7] * 10).quantize(Decimal("0.01"))
                errors[(sheet, i)] = {"drop": False, "col": 7, "value": wrong,
                                      "note": f"{row[0]} 累计完成投资 {dec_text(wrong)} -> {dec_text(row[7])}"}
            elif what == "progress":
                wrong = min(100, row[8] + rng.randint(5, 30))
                errors[(sheet, i)] = {"drop": False, "col": 8, "value": wrong,
                                      "note": f"{row[0]} 形象进度 {wrong} -> {row[8]}"}
            elif what == "missing":
                errors[(sheet, i)] = {"drop": True, "note": f"企业认定 {row[3]} 漏报，补报"}
            else:
                wrong = int(row[8] * 10) if rng.random() < 0.5 else int(row[8] // 10)
                errors[(sheet, i)] = {"drop": False, "col": 8, "value": wrong,
                                      "note": f"{row[0]} 孵化面积 {wrong} -> {row[8]}"}
        return errors

    def _plant(self, data: dict[str, SheetData], truth: dict, fname: str, idx: int,
               errors: dict) -> tuple[set, dict]:
        """Plant dirty records in a v1 workbook.

        Returns the (sheet, truth index) of the quarantined rows, and the Excel row of every
        (sheet, truth index) written.

        ``data`` rows are in truth order except rows dropped by a restatement error; those rows
        carry no dirt. Workbook-level dirt (an empty row) is placed first so that the manifest's
        row numbers are final.
        """
        y, _ = index_month(idx)
        man = self.ctx.manifest
        rng = self.book_rng
        quarantined: set[tuple[str, int]] = set()
        period_end = month_end(idx)
        # truth index of every rendered row (None for an inserted empty row)
        tindex = {s.name: [i for i in range(len(truth[s.name])) if not errors.get((s.name, i), {}).get("drop")]
                  for s in (PLATFORMS, CERTS, PROJECTS)}
        if rng.random() < P_EMPTY_ROW:
            spec = PROJECTS if rng.random() < 0.7 else CERTS
            rows = data[spec.name].rows
            if len(rows) >= 3:
                pos = rng.randint(1, len(rows) - 1)
                rows.insert(pos, None)
                tindex[spec.name].insert(pos, None)
        for spec in (PLATFORMS, CERTS, PROJECTS):
            sheet = data[spec.name]
            planter = self.planters[spec.name]
            change_col = {"创新平台": 7, "企业认定": 6}.get(spec.name)
            for pos, row in enumerate(sheet.rows):
                if row is None:
                    man.add(FEED, fname, spec.name, 4 + pos, "empty_row", "skip", year=y)
                    continue
                if (spec.name, tindex[spec.name][pos]) in errors or (
                        change_col is not None and row[change_col] != "新增"):
                    continue
                kind = planter.pick(self._eligible(spec, row))
                if kind is None:
                    continue
                rec = self._apply(spec, row, kind, period_end, rng)
                expect = rec.pop("expect")
                man.add(FEED, fname, spec.name, 4 + pos, kind, expect, year=y, **rec)
                if expect == "quarantine":
                    quarantined.add((spec.name, tindex[spec.name][pos]))
        rowmap = {(sheet, t): 4 + pos for sheet, ts in tindex.items() for pos, t in enumerate(ts) if t is not None}
        if rng.random() < P_TOTAL_ROW:
            spec = PROJECTS if rng.random() < 0.7 or not data["企业认定"].rows else CERTS
            rows = data[spec.name].rows
            if rows:
                if spec is PROJECTS:
                    total = sum((r[7] for r in rows if r and isinstance(r[7], Decimal)), Decimal(0))
                    rows.append(["合计", None, None, None, None, None, None, total, None])
                else:
                    rows.append(["合计", f"共{sum(1 for r in rows if r)}家", None, None, None, None, None])
                man.add(FEED, fname, spec.name, 3 + len(rows), "total_row", "quarantine", year=y)
        if rng.random() < P_HEADER_DIRTY:
            spec = (PLATFORMS, CERTS, PROJECTS)[rng.randrange(3)]
            cells = data[spec.name].header_cells
            changed = []
            for c, h in enumerate(cells):
                if "（" in h and rng.random() < 0.8:
                    cells[c] = h.replace("（", "(").replace("）", ")")
                    changed.append(cells[c])
                elif rng.random() < 0.25:
                    cells[c] = rng.choice((f" {h}", f"{h} ", f" {h} "))
                    changed.append(cells[c])
            if not changed:
                cells[0] = f"{cells[0]} "
                changed.append(cells[0])
            man.add(FEED, fname, spec.name, 3, "header_dirty", "load_file", year=y, cells=changed)
        return quarantined, rowmap

    def _eligible(self, spec: SheetSpec, row: list) -> list[str]:
        kinds: list[str] = []
        if spec is PLATFORMS:
            if row[6] and any(ch.isalpha() for ch in row[6]):
                kinds += USCC_KINDS
            else:
                kinds += [k for k in USCC_KINDS if k != "uscc_lowercase"]
            kinds += XLSX_DATE_KINDS
            if row[2] in INCUBATING and row[8]:
                kinds += [k for k in NUMBER_KINDS if k != "number_thousands" or row[8] >= 1000]
            kinds += ["missing_required"]
            if row[7] == "新增":
                kinds.append("date_out_of_range")
        elif spec is CERTS:
            kinds += [*USCC_KINDS, *XLSX_DATE_KINDS, "missing_required", "date_out_of_range"]
        else:
            kinds += XLSX_DATE_KINDS
            if row[7] and row[7] > 0:
                kinds += [k for k in NUMBER_KINDS if k != "number_thousands" or row[7] >= 1000]
                kinds.append("negative_amount")
            kinds.append("missing_required")
        return kinds

    def _apply(self, spec: SheetSpec, row: list, kind: str, period_end: date, rng) -> dict:
        sheet = spec.name
        table = TABLE[sheet]
        if kind in USCC_KINDS:
            c = 6 if spec is PLATFORMS else 0
            code = row[c]
            if kind == "uscc_bad_check":
                row[c] = wrong_uscc_check(code)
                return {"expect": "quarantine"}
            row[c] = {"uscc_lowercase": code.lower(), "uscc_spaces": rng.choice((f" {code}", f"{code} ", f" {code}  ")),
                      "uscc_fullwidth": fullwidth(code)}[kind]
            return {"expect": "normalise", "table": table, "column": column(spec.headers[c], sheet), "value": code}
        if kind in XLSX_DATE_KINDS:
            if spec is PROJECTS:
                c = 4 if rng.random() < 0.5 else 5
            elif spec is CERTS:
                c = 5 if row[5] and rng.random() < 0.3 else 4
            else:
                c = 4
            d = row[c]
            row[c] = date_text(kind, d)
            return {"expect": "normalise", "table": table, "column": column(spec.headers[c], sheet),
                    "value": d.isoformat()}
        if kind in NUMBER_KINDS:
            if spec is PLATFORMS:
                value = Decimal(row[8])
                row[8] = number_text(kind, value, unit="㎡", decimals=0)
                c = 8
            else:
                value = row[7]
                row[7] = number_text(kind, value, unit="万元")
                c = 7
            return {"expect": "normalise", "table": table, "column": column(spec.headers[c], sheet),
                    "value": dec_text(value)}
        if kind == "missing_required":
            if spec is PLATFORMS:
                # 平台类别 is required of a 新增 only (a 撤销 or 更新 names the platform by its 平台编号)
                c = (8 if row[2] in INCUBATING else 2) if row[7] == "新增" else 0
            elif spec is CERTS:
                c = 4 if row[6] == "新增" and rng.random() < 0.6 else 3
            else:
                c = 6 if rng.random() < 0.5 else 2
            row[c] = None
            return {"expect": "quarantine", "column": column_name(spec, c)}
        if kind == "negative_amount":
            row[7] = -row[7]
            return {"expect": "quarantine"}
        if kind == "date_out_of_range":
            if rng.random() < 0.5:
                d = period_end + timedelta(days=rng.randint(1, 400))
            else:
                d = date(rng.randint(2008, 2014), rng.randint(1, 12), rng.randint(1, 28))
            row[4] = d
            return {"expect": "quarantine", "value": d.isoformat()}
        raise ValueError(kind)

    def _write(self, a: Area, idx: int, version: int, data: dict[str, SheetData]) -> None:
        y, m = index_month(idx)
        rng = self.ctx.rng("cover", a.code, idx)
        submitted = month_end(idx) + timedelta(days=rng.randint(3, 10) + (version - 1) * rng.randint(5, 20))
        path = self.folder / f"{a.code}_{y}{m:02d}_v{version}.xlsx"
        title = f"{a.name}环大罗山科创走廊月度报表（{y}年{m:02d}月）"
        cover = [("填报单位", a.name), ("报告期", f"{y}年{m:02d}月"), ("填报人", person_name(rng)),
                 ("联系电话", mobile(rng)), ("报送日期", submitted)]
        sheets = [data[s.name] for s in (PLATFORMS, CERTS, PROJECTS)]
        write_workbook(path, title=title, author=f"{a.name}科技局", cover=cover, sheets=sheets,
                       created=datetime(submitted.year, submitted.month, submitted.day, 9, 30),
                       date_format=DATE_FORMATS[a.code])
        self.ctx.feed_files[FEED] += 1
        self.ctx.feed_rows[FEED] += sum(len(s.rows) for s in sheets)

    # ------------------------------------------------------------------ after delivery

    def _after_delivery(self, a: Area, idx: int, truth: dict, quarantined: set, final: str,
                        rowmap: dict) -> None:
        """Statistics of the delivered records, and the follow-up events of the clean ones."""
        y, _ = index_month(idx)
        ctx, rng = self.ctx, self.rng
        end_idx = ctx.end_idx
        for i, (_, row, meta) in enumerate(truth["创新平台"]):
            p: Platform = meta["p"]
            change = row[7]
            if ("创新平台", i) in quarantined:
                continue
            ctx.count(y, "platform_events")
            if change == "新增":
                self.platform_state[p.pid] = [a.code, p.category, p.recognised, None, p.area_m2]
                rev = idx + rng.randint(4, 24) if rng.random() < 0.06 else None
                if rng.random() < (0.3 if p.category in INCUBATING else 0.1):
                    upd = idx + rng.randint(2, 20)
                    if rev is None or upd < rev:
                        self._push(upd, a.code, "创新平台", [], {"event": "platform_update", "p": p})
                if rev is not None:
                    self._push(rev, a.code, "创新平台", [], {"event": "platform_revoke", "p": p})
            elif change == "撤销":
                self.platform_state[p.pid][3] = month_end(idx)
                ctx.manifest.add(FEED, final, "创新平台", rowmap[("创新平台", i)], "platform_revoked", "load",
                                 table=TABLE["创新平台"], key=p.pid)
            else:
                self.platform_state[p.pid][4] = row[8]
                ctx.manifest.add(FEED, final, "创新平台", rowmap[("创新平台", i)], "platform_updated", "load",
                                 table=TABLE["创新平台"], key=p.pid)
        for i, (_, row, meta) in enumerate(truth["企业认定"]):
            if ("企业认定", i) in quarantined:
                continue
            c: Cert = meta["cert"]
            if row[6] == "新增":
                ctx.count(c.granted.year, {"高新技术企业": "ht_new", "省级科技型中小企业": "sme_new"}.get(
                    c.ctype, "honour_new"))
                p_rev = {"高新技术企业": 0.015, "省级科技型中小企业": 0.02}.get(c.ctype, 0.03)
                rev = idx + rng.randint(3, 24) if rng.random() < p_rev else None
                if rev is not None and c.valid_until is not None and month_start(rev) > c.valid_until:
                    rev = None
                if rev is not None:
                    self._push(rev, a.code, "企业认定", c.row("撤销"), {"event": "cert_revoke", "cert": c})
                revoked_by_end = rev is not None and rev <= end_idx
                valid_end = c.granted <= self.end and (c.valid_until is None or c.valid_until >= self.end)
                if valid_end and not revoked_by_end:
                    if c.ctype == "高新技术企业":
                        self.ht_valid_end[a.code].add(c.ent)
                    elif c.ctype == "省级科技型中小企业":
                        self.sme_valid_end[a.code].add(c.ent)
                if c.ctype in ("瞪羚企业", "创新型领军企业") and c.granted >= date(2020, 1, 1):
                    self.honour_new[a.code].add(c.ent)
            else:
                ctx.manifest.add(FEED, final, "企业认定", rowmap[("企业认定", i)], "certificate_revoked", "load",
                                 table=TABLE["企业认定"], key=c.cert_no)
        for i, (_, row, meta) in enumerate(truth["重点项目"]):
            p = meta["p"]
            ctx.count(y, "project_rows")
            state = self.project_state.get(p.pid)
            if state is None:
                state = self.project_state[p.pid] = [a.code, p.category, p.start, ""]
                if p.start >= month_start(ctx.start_idx):
                    ctx.count(p.start.year, "projects_new")
            if ("重点项目", i) not in quarantined:
                state[3] = row[6]

    def _kpis(self) -> None:
        ctx = self.ctx
        w0 = date(2020, 1, 1)
        per_area: dict[str, dict[str, float]] = {a.code: {} for a in AREA_LIST}

        def bump(area: str, key: str, v: float = 1) -> None:
            per_area[area][key] = per_area[area].get(key, 0) + v

        for area, category, recognised, revoked, m2 in self.platform_state.values():
            in_force = recognised <= self.end and (revoked is None or revoked > self.end)
            if not in_force:
                continue
            if category in ("高能级创新平台", "省级企业研究院") and recognised >= w0:
                bump(area, {"高能级创新平台": "K01", "省级企业研究院": "K02"}[category])
            if category in ("产业创新服务综合体", "高校协同创新中心", "产教融合示范基地"):
                bump(area, {"产业创新服务综合体": "K07", "高校协同创新中心": "K13", "产教融合示范基地": "K14"}[category])
            if category in INCUBATING and m2:
                bump(area, "K09", m2 / 10_000)
        for a in AREA_LIST:
            bump(a.code, "K04", len(self.ht_valid_end[a.code]))
            bump(a.code, "K05", len(self.sme_valid_end[a.code]))
            bump(a.code, "K10", len(self.honour_new[a.code]))
        k15: dict[int, int] = {}
        for area, category, start, status in self.project_state.values():
            if category == "未来社区" and status in ("在建", "完成"):
                bump(area, "K08")
            if category == "重大科技项目" and start >= w0 and status != "终止":
                bump(area, "K11")
            if category == "重点区块" and status == "完成":
                bump(area, "K16")
            if category == "卡脖子技术攻关" and status != "终止":
                k15[start.year] = k15.get(start.year, 0) + 1
        total = {}
        for vals in per_area.values():
            for k, v in vals.items():
                total[k] = total.get(k, 0) + v
        ctx.kpi["district_as_of_end"] = {k: round(v, 1) for k, v in sorted(total.items())}
        ctx.kpi["district_by_area"] = {a: {k: round(v, 1) for k, v in sorted(vals.items())}
                                       for a, vals in per_area.items()}
        ctx.kpi["K15_by_start_year"] = dict(sorted(k15.items()))


def column_name(spec: SheetSpec, c: int) -> str:
    h = spec.headers[c]
    try:
        return column(h, spec.name)
    except KeyError:
        return {"平台类别": "platform_category", "证书编号": "certificate_no", "状态": "project_status",
                "项目类别": "project_category"}.get(h, h)
