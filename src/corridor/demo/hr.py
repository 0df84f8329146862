"""高层次人才引育: monthly JSON Lines (spec section 4)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from corridor.demo.context import Context, Quota, weighted, yearly
from corridor.demo.dirty import AREA_KINDS, DATE_KINDS, ID_KINDS, USCC_KINDS, Planter, date_text
from corridor.demo.ids import fullwidth, wrong_id_check, wrong_uscc_check
from corridor.demo.master import person_name
from corridor.demo.periods import days_in_month, index_month, month_end, month_start
from corridor.demo.vocab import (
    AREA_BY_CODE,
    AREA_LIST,
    INSTITUTIONS,
    TALENT_CATEGORY_WEIGHTS,
    TALENT_TITLES,
    UNKNOWN_AREAS,
)

FEED = "hr"
TABLE = "raw.hr_talents"
DIRTY_RATE = 0.033
KINDS = (*AREA_KINDS, *USCC_KINDS, *ID_KINDS, *DATE_KINDS, "missing_required", "date_out_of_range",
         "invalid_json", "unknown_category", "duplicate_record_id")
AGE = {"A": (50, 75), "B": (36, 60), "C": (32, 55), "D": (28, 50), "E": (24, 38)}
SEASON = (0.7, 0.6, 1.0, 1.0, 1.0, 1.1, 1.2, 1.0, 1.0, 0.9, 1.1, 1.4)
P_UPDATE, P_WITHDRAW, P_TWICE = 0.03, 0.02, 0.015


class HrGenerator:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.rng = ctx.rng("hr")
        self.planter = Planter(ctx.rng("hr-plant"), DIRTY_RATE)
        self.folder = ctx.landing / "hr"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.f = ctx.factor
        self.pool = {a.code: ctx.pool(a.weight) for a in AREA_LIST}
        self.quota = Quota(ctx.rng("hr-quota"))
        self.seq: dict[int, int] = {}
        self.team_seq: dict[int, int] = {}
        self.teams: dict[int, int] = {}            # month index -> teams arriving
        self.pending: dict[int, list[tuple[str, dict]]] = {}
        self.persons: dict[int, int] = {}          # person (ID without check) -> records counting for K06
        self.team_years: dict[str, int] = {}

    def _record_id(self, y: int) -> str:
        self.seq[y] = self.seq.get(y, 0) + 1
        return f"HR-{y}-{self.seq[y]:06d}"

    def _plan_teams(self, y: int) -> None:
        rng = self.ctx.rng("hr-teams", y)
        for _ in range(round(yearly("teams", y) * self.f)):
            idx = y * 12 + rng.randrange(12)
            self.teams[idx] = self.teams.get(idx, 0) + 1

    def _person(self, idx: int, *, area: str | None = None, category: str | None = None,
                employer: tuple[str, str] | None = None, team_id: str | None = None) -> dict:
        rng, ctx = self.rng, self.ctx
        y, m = index_month(idx)
        if area is None:
            r = rng.random()
            for a in AREA_LIST:
                r -= a.weight
                if r < 0:
                    break
            area = a.code
        category = category or weighted(rng, TALENT_CATEGORY_WEIGHTS)
        lo, hi = AGE[category]
        id_number = ctx.people.new_id(rng, date(y - hi, 1, 1), date(y - lo, 12, 31))
        if employer is None:
            if rng.random() < 0.25:
                employer = ctx.enterprises.institution(rng.randrange(len(INSTITUTIONS)))
            else:
                n = int(self.pool[area] * rng.random() ** 1.5)
                employer = (ctx.enterprises.name(area, n), ctx.enterprises.uscc(area, n))
        if rng.random() < 0.85 or idx <= ctx.start_idx:
            intake = date(y, m, rng.randint(1, days_in_month(idx)))
        else:
            intake = max(month_start(idx) - timedelta(days=rng.randint(1, 55)), date(2015, 1, 1))
        intake_type = "引进" if team_id or rng.random() < 0.6 else "培育"
        overseas = rng.random() < (0.35 if intake_type == "引进" else 0.05)
        titles = TALENT_TITLES[category]
        return {"record_id": self._record_id(y), "id_number": id_number, "name": person_name(rng),
                "category": category, "title": titles[rng.randrange(len(titles))],
                "employer_name": employer[0], "employer_uscc": employer[1], "area": area,
                "intake_date": intake, "intake_type": intake_type, "overseas": overseas,
                "team_id": team_id, "action": "new"}

    def run(self) -> None:
        ctx = self.ctx
        for y in ctx.years:
            self._plan_teams(y)
        for idx in ctx.months():
            self._month(idx)
        ctx.kpi["K06_distinct_talents_since_2020"] = sum(1 for v in self.persons.values() if v > 0)
        years: dict[str, int] = {}
        for y in self.team_years.values():
            years[str(y)] = years.get(str(y), 0) + 1
        ctx.kpi["K12_teams_by_year"] = dict(sorted(years.items()))

    def _month(self, idx: int) -> None:
        rng, ctx = self.rng, self.ctx
        y, m = index_month(idx)
        fresh: list[dict] = []
        teams = self.teams.get(idx, 0)
        expected = (yearly("talents", y) - yearly("teams", y) * 4.5) / 12 * SEASON[m - 1] * self.f
        for _ in range(self.quota.take(expected)):
            fresh.append(self._person(idx))
        for _ in range(teams):
            self.team_seq[y] = self.team_seq.get(y, 0) + 1
            team_id = f"TD-{y}-{self.team_seq[y]:03d}"
            leader = self._person(idx, category=weighted(rng, (("A", 0.3), ("B", 0.5), ("C", 0.2))), team_id=team_id)
            fresh.append(leader)
            for _ in range(rng.randint(2, 5)):
                fresh.append(self._person(idx, area=leader["area"], employer=(leader["employer_name"],
                             leader["employer_uscc"]), category=weighted(rng, (("C", 0.3), ("D", 0.4), ("E", 0.3))),
                             team_id=team_id))
        # the file: new records (with dirt), then corrections and withdrawals of earlier records
        lines: list[tuple[str, str | None, dict | None]] = []   # (text, kind, manifest extra)
        dup_of: list[str] = []
        for rec in fresh:
            kind = self.planter.pick(self._eligible(rec))
            extra = self._apply(rec, kind, idx) if kind and kind != "duplicate_record_id" else None
            text = extra.pop("text", None) if extra else None
            lines.append((text or dumps(rec), kind if kind != "duplicate_record_id" else None, extra))
            if kind == "duplicate_record_id":
                dup_of.append(dumps(rec))
            if extra is None or extra["expect"] != "quarantine":
                self._delivered(rec, idx, follow_up=kind is None)
        for text in dup_of:
            src = next(i for i, (t, _k, _e) in enumerate(lines) if t == text)
            lines.insert(rng.randint(src + 1, len(lines)), (text, "duplicate_record_id", {"expect": "quarantine"}))
        for kind, rec in self.pending.pop(idx, []):
            lines.append((dumps(rec), kind, {"expect": "load", "table": TABLE, "key": rec["record_id"]}))
            if kind == "talent_same_person_twice":
                self._delivered(rec, idx, follow_up=False)
            elif kind == "talent_withdraw":
                self._withdrawn(rec)
        fname = f"talent_{y}{m:02d}.jsonl"
        with (self.folder / fname).open("w", encoding="utf-8", newline="\n") as fh:
            for i, (text, kind, extra) in enumerate(lines):
                fh.write(text + "\n")
                if kind:
                    extra = dict(extra or {})
                    expect = extra.pop("expect")
                    ctx.manifest.add(FEED, fname, None, i + 1, kind, expect, year=y, **extra)
        ctx.feed_files[FEED] += 1
        ctx.feed_rows[FEED] += len(lines)

    def _delivered(self, rec: dict, idx: int, *, follow_up: bool) -> None:
        ctx, rng = self.ctx, self.rng
        intake = rec["intake_date"]
        if isinstance(intake, date):
            ctx.count(intake.year, "talent_intakes")
            if intake >= date(2020, 1, 1):
                key = int(rec["id_number"][:17])
                self.persons[key] = self.persons.get(key, 0) + 1
            if rec["team_id"] and rec["team_id"] not in self.team_years:
                self.team_years[rec["team_id"]] = intake.year
        if not follow_up:
            return
        r = rng.random()
        if r < P_UPDATE:
            later = dict(rec, action="update")
            if rng.random() < 0.5 and later["category"] in "CDE":
                later["category"] = "BCD"["CDE".index(later["category"])]
                later["title"] = TALENT_TITLES[later["category"]][0]
            else:
                titles = TALENT_TITLES[later["category"]]
                later["title"] = titles[(titles.index(later["title"]) + 1) % len(titles)]
            self._later(idx + rng.randint(1, 5), "talent_update", later)
        elif r < P_UPDATE + P_WITHDRAW:
            self._later(idx + rng.randint(2, 12), "talent_withdraw", dict(rec, action="withdraw"))
        elif r < P_UPDATE + P_WITHDRAW + P_TWICE:
            at = idx + rng.randint(1, 8)
            y, m = index_month(at)
            if at <= ctx.end_idx:
                again = dict(rec, record_id=self._record_id(y), team_id=None,
                             intake_date=date(y, m, rng.randint(1, days_in_month(at))))
                if rng.random() < 0.6:  # reported again by another employer (often another area)
                    area = AREA_LIST[rng.randrange(len(AREA_LIST))].code
                    n = int(self.pool[area] * rng.random())
                    again.update(area=area, employer_name=ctx.enterprises.name(area, n),
                                 employer_uscc=ctx.enterprises.uscc(area, n))
                self._later(at, "talent_same_person_twice", again)

    def _withdrawn(self, rec: dict) -> None:
        if rec["intake_date"] >= date(2020, 1, 1):
            key = int(rec["id_number"][:17])
            self.persons[key] = self.persons.get(key, 0) - 1

    def _later(self, idx: int, kind: str, rec: dict) -> None:
        if idx <= self.ctx.end_idx:
            self.pending.setdefault(idx, []).append((kind, rec))

    def _eligible(self, rec: dict) -> list[str]:
        kinds = []
        for k in KINDS:
            if k == "uscc_lowercase" and not any(c.isalpha() for c in rec["employer_uscc"]):
                continue
            kinds.append(k)
        return kinds

    def _apply(self, rec: dict, kind: str, idx: int) -> dict:
        rng, ctx = self.rng, self.ctx
        if kind in AREA_KINDS:
            code = rec["area"]
            if kind == "area_short_form":
                rec["area"] = AREA_BY_CODE[code].short
            elif kind == "area_stray_spaces":
                rec["area"] = rng.choice((f" {code}", f"{code} ", f" {AREA_BY_CODE[code].name} "))
            else:
                rec["area"] = UNKNOWN_AREAS[rng.randrange(len(UNKNOWN_AREAS))]
                return {"expect": "quarantine"}
            return {"expect": "normalise", "table": TABLE, "column": "area_code", "value": code}
        if kind in USCC_KINDS:
            code = rec["employer_uscc"]
            if kind == "uscc_bad_check":
                rec["employer_uscc"] = wrong_uscc_check(code)
                return {"expect": "quarantine"}
            rec["employer_uscc"] = {"uscc_lowercase": code.lower(), "uscc_spaces": f" {code} ",
                                    "uscc_fullwidth": fullwidth(code)}[kind]
            return {"expect": "normalise", "table": TABLE, "column": "employer_uscc", "value": code}
        if kind == "id_lowercase_x":
            y = index_month(idx)[0]
            lo, hi = AGE[rec["category"]]
            clean = ctx.people.new_id(rng, date(y - hi, 1, 1), date(y - lo, 12, 31), want_x=True)
            rec["id_number"] = clean[:17] + "x"
            return {"expect": "normalise", "table": TABLE, "column": "person_key", "value": clean}
        if kind == "id_bad_check":
            rec["id_number"] = wrong_id_check(rec["id_number"])
            return {"expect": "quarantine"}
        if kind in DATE_KINDS:
            d = rec["intake_date"]
            rec["intake_date"] = date_text(kind, d)
            return {"expect": "normalise", "table": TABLE, "column": "intake_date", "value": d.isoformat()}
        if kind == "missing_required":
            field = "intake_date" if rng.random() < 0.7 else "record_id"
            rec[field] = "" if rng.random() < 0.5 else None
            return {"expect": "quarantine", "column": field}
        if kind == "date_out_of_range":
            if rng.random() < 0.5:
                d = month_end(idx) + timedelta(days=rng.randint(1, 300))
            else:
                d = date(rng.randint(2008, 2014), rng.randint(1, 12), rng.randint(1, 28))
            rec["intake_date"] = d
            return {"expect": "quarantine", "value": d.isoformat()}
        if kind == "unknown_category":
            rec["category"] = rng.choice(("F", "G", "Z", "甲", "AA"))
            return {"expect": "quarantine"}
        if kind == "invalid_json":
            text = dumps(rec)
            how = rng.randrange(4)
            if how == 0:
                bad = text[: -rng.randint(1, 12)]                       # truncated in transfer
            elif how == 1:
                bad = text.replace('"', "'")                             # Python repr, not JSON
            elif how == 2:
                bad = text[:-1] + ", }"                                  # trailing comma
            else:
                bad = "[" + text + "]"                                  # not an object
            return {"expect": "quarantine", "text": bad}
        raise ValueError(kind)


def dumps(rec: dict) -> str:
    out = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in rec.items()}
    return json.dumps(out, ensure_ascii=False)
