"""What a scorecard shows, read from the warehouse (marts and kpi schemas only).

`load_scorecards` gathers, for one edition × period and every area asked for
(``ALL`` and areas), in one connection and one query per kind of data: each
KPI's values and monthly series (kpi.kpi_values with kpi.kpi_catalogue), the
year-end ranking (kpi.area_ranking), the period's detail (marts.dim_platform,
marts.fct_certifications, marts.fct_projects: fetched once for the corridor,
an area's rows are its subset), the completeness of the period's deliveries
and the quality gate's outcome. `load_scorecard` is the same for one area.

The detail rows are not held in memory: they stream from the server (libpq's
chunked rows) into temporary files (`DetailRows`, one per area; the corridor's list
is its areas' lists read one after another, `ChainedRows`), which the XLSX and the
data hash read row by row; a page shows only what it summarises (the first rows, counts by
area, and the certified enterprises' names per group, counted in SQL). So a
publication's memory does not grow with the number of detail rows (issue 11:
at national scale a year-end's 315,000 certifications held as dicts took the
publishing process to 653 MiB).

`Scorecard.data_sha256` hashes a canonical JSON of the *data* only (values,
series, ranking, detail, catalogue wording, completeness), not the data's
as-of date, the gate's counts, the edition number or any rendering: the same
data gives the same hash, so publishing it twice records one edition.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from itertools import islice

import psycopg
import yaml
from psycopg import sql

from corridor.scorecards import format as fmt
from corridor.scorecards.completeness import Completeness, completeness_by_area
from corridor.scorecards.editions import Edition, add_months, edition
from corridor.scorecards.gate import normalise_gate

log = logging.getLogger(__name__)

CORRIDOR_NAME = "环大罗山科创走廊"
ALL = "ALL"
ALL_NAME = "全走廊"
AREA_ORDER = ("LW", "OH", "YQ", "RA", "ZN", "OJK")
SERIES_MONTHS = 36  # the trend shows at most the last 36 months
GROUP_NAMES = 20  # enterprise names fetched per area × certification type: the most a page lists

# status -> (label, symbol, colour); the symbol keeps the status readable in black and white
STATUS = {
    "ahead": ("超前", "▲", "#1a7f37"),
    "on_track": ("按进度", "●", "#1f5fae"),
    "behind": ("滞后", "▼", "#c62828"),
    "no_target": ("仅监测", "○", "#6b7280"),
    None: ("无数据", "—", "#6b7280"),
}

# the bracketed notes of an indicator name: "(亿元, 年)" -> "亿元, 年"
_NAME_NOTES = re.compile(r"[(（]([^)）]*)[)）]")

TARGET_KIND_ZH = {"cumulative": "累计目标", "annual": "年度目标"}
# the catalogue's pacing (kpi_values.paced_target_value) in the scorecard's words; the window starts at dbt's
# kpi_window_start (2020-01)
PACING_ZH = {
    "window_linear": "自2020年1月起按月线性分解",
    "year_linear": "按当年月份分解",
    "none": "不分解（即目标本身）",
}

# which versions of the deliveries the figures use (the attestation, every format): the latest version loaded
# before the build the publication read, a restatement delivered after the period included (kpis.md: "in the
# latest version delivered"); never the versions delivered by the period end (a return comes after its month)
VERSIONS_ZH = "采用本版发布时已入库的各报送最新版本（含统计期后的补报与更正）"

GATE_OUTCOMES = {
    "passed": "通过",
    "passed_with_warnings": "通过（有警告）",
    "failed": "未通过",
}


class _ReadLikeAList:
    """Read like a list (``len``, truth, indexing and slices by iterating; pickled as a plain list) by a class
    that gives ``__iter__`` and ``__len__``."""

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            return list(islice(self, start, stop, step)) if step > 0 else list(self)[index]
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("detail row index out of range")
        return next(islice(self, i, None))

    def __reduce__(self):
        return (list, (list(self),))


class DetailRows(_ReadLikeAList):
    """A scorecard's detail list (its certifications, platforms or projects): rows as dicts, kept in a
    temporary file, not in memory.

    Rows are appended (pickled in chunks of :attr:`CHUNK`), then read as often as needed: iterating reads
    the file again, one chunk at a time, so the data hash and the XLSX, which go through every row, hold a
    chunk, not the list. ``len()``, truth and indexing (by iterating: for tests and the first rows) work as
    on a list; a row read is a new dict each time. The file is unlinked from the start
    (``tempfile.TemporaryFile``) and closed with the object; reads use ``os.pread`` (no shared offset: threads may read one list at once). Pickling gives the rows
    as a plain list.
    """

    CHUNK = 1000

    def __init__(self, rows: Iterable[dict] = ()) -> None:
        self._file = None
        self._chunks: list[tuple[int, int]] = []  # (offset, length) of each pickled chunk
        self._end = 0
        self._pending: list[dict] = []
        self._len = 0
        self.extend(rows)

    def append(self, row: dict) -> None:
        self._pending.append(row)
        self._len += 1
        if len(self._pending) >= self.CHUNK:
            self._flush()

    def extend(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.append(row)

    def _flush(self) -> None:
        data = pickle.dumps(self._pending, protocol=pickle.HIGHEST_PROTOCOL)
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="corridor-scorecard-rows-")
        written = 0
        while written < len(data):  # pwrite may write less than asked
            written += os.pwrite(self._file.fileno(), data[written:], self._end + written)
        self._chunks.append((self._end, len(data)))
        self._end += len(data)
        self._pending = []

    def __iter__(self) -> Iterator[dict]:
        chunks, pending = list(self._chunks), list(self._pending)  # as they are when the iteration starts
        for offset, length in chunks:
            data = os.pread(self._file.fileno(), length, offset)
            if len(data) != length:
                raise OSError(f"scorecard detail rows: read {len(data)} of {length} bytes at {offset}")
            yield from pickle.loads(data)
        yield from pending

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"DetailRows({self._len} rows)"


class ChainedRows(_ReadLikeAList):
    """Several detail lists read as one, one after another: the corridor's list made of its areas' lists (the
    rows stored once, not once for the corridor and again for their area). Reads like `DetailRows`."""

    def __init__(self, parts: Iterable[DetailRows]) -> None:
        self._parts = list(parts)

    def __iter__(self) -> Iterator[dict]:
        for part in self._parts:
            yield from part

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts)

    def __repr__(self) -> str:
        return f"ChainedRows({len(self)} rows in {len(self._parts)} parts)"


class PeriodNotAvailable(LookupError):
    """The warehouse has no complete period of this grain starting that day (yet), or it lies before the KPI
    window."""


@dataclass
class Kpi:
    code: str
    name: str
    unit: str
    measure_type: str          # count / sum / rate
    target_kind: str           # cumulative / annual / none
    has_target: bool
    target_text: str           # Chinese, from the catalogue's target_text: the corridor's target
    definition: str            # Chinese when the wording matches the catalogue, else the catalogue's text
    actual: Decimal | None
    target: Decimal | None
    paced_target: Decimal | None
    completion: Decimal | None
    status: str | None
    series: list[tuple[date, Decimal | None, Decimal | None]] = field(default_factory=list)
    pacing: str = "none"       # the catalogue's: window_linear / year_linear / none (`PACING_ZH`)
    # the target as this scorecard states it: the corridor's (ALL), or the area's own with the corridor's
    # (`area_target_text_zh`); derived from target_text and target, so not hashed on its own
    stated_target: str = ""

    @property
    def shown_unit(self) -> str:
        """The unit every format shows: a rate's values are percentages (the XLSX stores the fraction, formatted
        as a percentage), so its unit is "%" (the catalogue's unit of K03 is 比率)."""
        return "%" if self.measure_type == "rate" else self.unit

    @property
    def status_label(self) -> str:
        return STATUS.get(self.status, STATUS[None])[0]

    @property
    def status_symbol(self) -> str:
        return STATUS.get(self.status, STATUS[None])[1]

    @property
    def status_colour(self) -> str:
        return STATUS.get(self.status, STATUS[None])[2]

    @property
    def label(self) -> str:
        """The indicator's name with its unit when the name does not state it: "有效高新技术企业数（家）", but
        "创业孵化面积 (万平方米)" and "知识产权质押融资额 (亿元, 年)" as they are. The unit counts as stated when it
        is an item of a bracketed note of the name (not merely its characters: 人 in 人才, 项 in 项目)."""
        if not self.unit or self.measure_type == "rate" or any(
                self.unit in (item.strip() for item in note.split(","))
                for note in _NAME_NOTES.findall(self.name)):
            return self.name
        return f"{self.name}（{self.unit}）"


@dataclass
class Rank:
    rank: int
    area_code: str
    area_name: str
    score: Decimal | None
    kpis_scored: int


@dataclass
class Scorecard:
    edition: Edition
    period_start: date
    period_end: date
    area_code: str
    area_name: str
    as_of: date
    kpis: list[Kpi]
    ranking: list[Rank] | None
    platforms: DetailRows | ChainedRows | list[dict]
    certifications: DetailRows | ChainedRows | list[dict]
    projects: DetailRows | ChainedRows | list[dict]
    completeness: Completeness
    gate: dict | None
    status_thresholds: tuple[Decimal, Decimal]  # ahead ≥ x, on track ≥ y
    # the certified enterprises' names by area and type, as the page lists them (`certification_groups`)
    certification_groups: list[tuple[str, list[tuple[str, list[str], int]]]]
    edition_no: int | None = None
    # active projects missing from their area's return at the period end (fct_projects.is_unreported)
    unreported_projects: int = 0

    # -- labels -----------------------------------------------------------------------
    @property
    def period_label(self) -> str:
        return self.edition.period_label(self.period_start)

    @property
    def title(self) -> str:
        return f"{CORRIDOR_NAME}建设指标完成情况"

    @property
    def subtitle(self) -> str:
        return f"{self.period_label}{self.edition.label} · {self.area_name}"

    @property
    def full_title(self) -> str:
        return f"{CORRIDOR_NAME}{self.edition.title(self.period_start)}指标完成情况（{self.area_name}）"

    @property
    def provisional(self) -> bool:
        return self.completeness.provisional

    @property
    def pacing_note(self) -> str:
        """How each KPI's target is paced to the period end, as the catalogue says (pacing per KPI), e.g.
        '累计目标自2020年1月起按月线性分解，K03（年度目标）不分解（即目标本身），K12、K15（年度目标）按当年月份分解'.

        A group of KPIs paced alike is named by its kind of target when it is every KPI of that kind, else by
        its codes."""
        targeted = [k for k in self.kpis if k.has_target]
        parts = []
        for pacing in dict.fromkeys(k.pacing for k in targeted):
            group = [k for k in targeted if k.pacing == pacing]
            kinds = list(dict.fromkeys(k.target_kind for k in group))
            label = "、".join(TARGET_KIND_ZH.get(kind, kind) for kind in kinds)
            if len(group) != sum(k.target_kind in kinds for k in targeted):
                label = "、".join(k.code for k in group) + f"（{label}）"
            parts.append(label + PACING_ZH.get(pacing, f"按{pacing}分解"))
        return "，".join(parts)

    @property
    def gate_outcome(self) -> str:
        return (self.gate or {}).get("outcome") or "not_run"

    @property
    def gate_label(self) -> str:
        if not self.gate:
            return "未执行（未提供数据质量检查结果）"
        return GATE_OUTCOMES.get(self.gate.get("outcome"), str(self.gate.get("outcome")))

    @property
    def gate_counts(self) -> str | None:
        g = self.gate or {}
        if g.get("expectations") is None:
            return None
        return (f"{g.get('suites', 0)}个检查套件、{g.get('expectations', 0)}项校验，"
                f"失败{g.get('failed', 0)}项，警告{g.get('warnings', 0)}项")

    @property
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for k in self.kpis:
            counts[k.status_label] = counts.get(k.status_label, 0) + 1
        return counts

    # -- the canonical data ---------------------------------------------------------------
    # the detail lists of `canonical`: streamed row by row into the hash (`_canonical_chunks`)
    _DETAIL = ("certifications", "platforms", "projects")
    _HASH_BATCH = 200  # detail rows JSON-encoded together by the data hash (1000: no faster, +6 MiB)

    def canonical(self) -> dict:
        """The data this scorecard shows, as plain JSON values (no as-of, no gate, no edition number)."""
        return {**self.canonical_head(), **{key: [_plain(r) for r in getattr(self, key)] for key in self._DETAIL}}

    def canonical_head(self) -> dict:
        """`canonical` without the detail lists (certifications, platforms, projects)."""
        return {
            "edition": self.edition.code,
            "period": [self.period_start.isoformat(), self.period_end.isoformat()],
            "area": [self.area_code, self.area_name],
            "kpis": [{
                "code": k.code, "name": k.name, "unit": k.unit, "target_text": k.target_text,
                "definition": k.definition, "actual": _num(k.actual), "target": _num(k.target),
                "paced_target": _num(k.paced_target), "completion": _num(k.completion), "status": k.status,
                "series": [[m.isoformat(), _num(a), _num(p)] for m, a, p in k.series],
            } for k in self.kpis],
            "ranking": None if self.ranking is None else [
                [r.rank, r.area_code, _num(r.score), r.kpis_scored] for r in self.ranking],
            "completeness": {"publishable": self.completeness.publishable, "missing": self.completeness.missing},
            "status_thresholds": [_num(t) for t in self.status_thresholds],
            "unreported_projects": self.unreported_projects,
        }

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def _canonical_chunks(self):
        """`canonical_json`, the same text in pieces: the detail lists one row at a time, so that hashing a
        scorecard of 30,000 rows does not hold a plain copy of every row and the whole text at once."""
        small = self.canonical_head()
        keys = sorted([*small, *self._DETAIL])
        yield "{"
        for i, key in enumerate(keys):
            yield ("," if i else "") + _dumps(key) + ":"
            if key in self._DETAIL:
                # a list's JSON is its items' JSON joined by ",": a batch of rows a call, not a call a row
                yield "["
                rows = iter(getattr(self, key))
                sep = ""
                while batch := [_plain(row) for row in islice(rows, self._HASH_BATCH)]:
                    yield sep + _dumps(batch)[1:-1]
                    sep = ","
                yield "]"
            else:
                yield _dumps(small[key])
        yield "}"

    @property
    def data_sha256(self) -> str:
        """sha256 of `canonical_json`, computed once per scorecard (publishing and every format use it).

        The data is fixed once loaded; the cache is keyed on the detail lists' lengths (and survives
        pickling to a rendering worker), so a scorecard whose lists are replaced by longer or shorter
        ones is hashed again. The fields outside the hash (as-of, gate, edition number) may change.
        The text is hashed in pieces (`_canonical_chunks`): the same bytes, without holding them."""
        key = (len(self.kpis), len(self.platforms), len(self.certifications), len(self.projects))
        cached = self.__dict__.get("_sha256_cache")
        if cached is None or cached[0] != key:
            digest = hashlib.sha256()
            for chunk in self._canonical_chunks():
                digest.update(chunk.encode("utf-8"))
            cached = (key, digest.hexdigest())
            self.__dict__["_sha256_cache"] = cached
        return cached[1]


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _num(value) -> str | None:
    """A number as canonical text (Decimal keeps every digit; no float rounding)."""
    if value is None:
        return None
    d = Decimal(value) if not isinstance(value, Decimal) else value
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _plain(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            out[key] = _num(value)
        elif isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


# -- Chinese wording ------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _definitions_zh() -> dict:
    text = resources.files("corridor.scorecards").joinpath("definitions_zh.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def definition_zh(code: str, catalogue_definition: str) -> str:
    """The Chinese wording when it translates the catalogue's current text; else the catalogue's text."""
    entry = _definitions_zh().get(code)
    if entry and entry.get("source", "").strip() == (catalogue_definition or "").strip():
        return entry["zh"]
    log.warning("KPI %s: the catalogue's definition changed; the scorecard shows the catalogue's text "
                "until definitions_zh.yml is updated", code)
    return catalogue_definition


_TARGET_BY = re.compile(r"^(?P<ge>≥\s*)?(?P<n>[\d,.]+)\s+by\s+(?P<year>\d{4})$")
_TARGET_YEARLY = re.compile(r"^(?P<ge>≥\s*)?(?P<n>[\d,.]+)\s+every\s+year$")


NO_TARGET_ZH = "仅监测，不设目标"


def target_text_zh(text: str | None, unit: str, measure_type: str, share: Decimal | None = None) -> str:
    """'≥ 20 by 2022' → '2022年底前 ≥ 20家'; '10 every year' → '每年 10个'; 'tracked, no target' → '仅监测，不设目标'.

    ``share``: another amount in the same terms (an area's share of the target: '2022年底前 ≥ 3.33家')."""
    text = (text or "").strip()
    if not text or text.startswith("tracked"):
        return NO_TARGET_ZH

    def amount(n: str) -> str:
        if share is not None:
            return fmt.target(share, measure_type) + ("" if measure_type == "rate" else unit)
        if measure_type == "rate":
            return f"{Decimal(n.replace(',', '')) * 100:.0f}%"
        return f"{n}{unit}"

    m = _TARGET_BY.match(text)
    if m:
        return f"{m['year']}年底前{' ≥ ' if m['ge'] else ' '}{amount(m['n'])}"
    m = _TARGET_YEARLY.match(text)
    if m:
        return f"每年{' ≥ ' if m['ge'] else ' '}{amount(m['n'])}"
    return text if share is None else amount("")


def area_target_text_zh(text: str | None, unit: str, measure_type: str, area_target: Decimal | None,
                        uniform: bool) -> str:
    """An area's target as its scorecard states it, with the corridor's: '本片区2022年底前 ≥ 3.33家（分解目标）；走廊2022年底前
    ≥ 20家'; a KPI whose areas have the corridor's target (``uniform``, K03): '本片区与走廊均为每年 ≥ 30%'."""
    corridor = target_text_zh(text, unit, measure_type)
    if corridor == NO_TARGET_ZH:
        return corridor
    if uniform:
        return f"本片区与走廊均为{corridor}"
    if area_target is None:
        return f"走廊{corridor}"
    return f"本片区{target_text_zh(text, unit, measure_type, share=area_target)}（分解目标）；走廊{corridor}"


# -- loading ----------------------------------------------------------------------------------

def area_names(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("select area_code, area_name from marts.dim_area").fetchall())


def latest_period(url: str, edition_code: str) -> date:
    """The latest complete period of the edition's grain as of the data."""
    ed = edition(edition_code)
    with psycopg.connect(url) as conn:
        row = conn.execute("select max(period_start) from kpi.kpi_periods where grain = %s", (ed.grain,)).fetchone()
    if not row or row[0] is None:
        raise PeriodNotAvailable(f"the warehouse has no complete {ed.grain} yet")
    return row[0]


def _status_thresholds(conn: psycopg.Connection) -> tuple[Decimal, Decimal]:
    """(ahead ≥, on track ≥) from seed kpi_status_thresholds, for the footnote; defaults 1.05 / 0.95."""
    found: dict[str, Decimal] = {}
    try:
        with conn.transaction():
            for status, low in conn.execute(
                    "select status, min_completion_ratio from seeds.kpi_status_thresholds").fetchall():
                found[status] = Decimal(str(low))
    except psycopg.Error as exc:
        log.warning("status thresholds unreadable (%s): the footnote shows the defaults", exc)
    return found.get("ahead", Decimal("1.05")), found.get("on_track", Decimal("0.95"))


def load_scorecard(url: str, edition_code: str, period_start: date, area: str, gate: dict | None,
                   edition_no: int | None = None) -> Scorecard:
    """One scorecard (area or ``ALL``); see :func:`load_scorecards`."""
    sc = load_scorecards(url, edition_code, period_start, [area], gate)[area.upper()]
    sc.edition_no = edition_no
    return sc


def load_scorecards(url: str, edition_code: str, period_start: date, areas: list[str],
                    gate: dict | None) -> dict[str, Scorecard]:
    """The scorecards of one edition × period for ``areas`` (``ALL`` and/or area codes), data fetched once.

    {area: Scorecard}, in the order asked. The corridor's detail rows are fetched once (also when only
    areas are asked) and each area's lists are its subset, in the same order as a query per area gives.
    The detail lists are on disk (`DetailRows`): each row streams from the server into its area's list; the
    corridor's list reads its areas' lists one after another (`ChainedRows`). None is held in memory.
    """
    ed = edition(edition_code)
    ed.check_start(period_start)
    wanted = list(dict.fromkeys(a.upper() for a in areas))
    with psycopg.connect(url) as conn:
        # one snapshot for all of it: the rows, the groups' counts and the KPIs of one moment. A snapshot alone
        # does not keep out a build (a table dbt replaces after the snapshot reads as empty in it): publish()
        # holds transform.warehouse_read, which does
        conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
        names = area_names(conn)
        unknown = [a for a in wanted if a != ALL and a not in names]
        if unknown:
            raise ValueError(f"unknown area {unknown[0]!r} (expected ALL or one of {', '.join(sorted(names))})")
        period = conn.execute(
            "select period_end, as_of_date from kpi.kpi_periods where grain = %s and period_start = %s",
            (ed.grain, period_start)).fetchone()
        if period is None:
            # the period spine starts at the KPI window's first month (dbt's kpi_window_start)
            first = conn.execute("select min(period_start) from kpi.kpi_periods where grain = 'month'").fetchone()[0]
            if first is not None and period_start < first:
                raise PeriodNotAvailable(
                    f"{ed.period_label(period_start)} ({ed.grain} from {period_start}) lies before the KPI window, "
                    f"which starts in {first:%Y-%m}: the warehouse has no KPIs for it")
            raise PeriodNotAvailable(
                f"{ed.period_label(period_start)} ({ed.grain} from {period_start}) is not complete in the "
                f"warehouse: the data's as-of month has not reached its end")
        period_end, as_of = period
        kpis = _kpis(conn, ed, period_start, period_end, wanted)
        ranking = _ranking(conn, period_start.year, names) if ed.code == "year_end" else None
        platforms = _platforms(conn, period_start, period_end, names, wanted)
        certifications, groups = _certifications(conn, period_start, period_end, names, wanted)
        projects = _projects(conn, period_start, period_end, names, wanted)
        thresholds = _status_thresholds(conn)
        unreported = {a: _unreported_projects(conn, period_end, None if a == ALL else a) for a in wanted}
    comps = completeness_by_area(url, ed.grain, period_start, wanted, names)
    normal_gate = normalise_gate(gate)
    out = {}
    for area in wanted:
        out[area] = Scorecard(
            edition=ed, period_start=period_start, period_end=period_end, area_code=area,
            area_name=ALL_NAME if area == ALL else names[area], as_of=as_of, kpis=kpis[area],
            ranking=ranking, platforms=platforms[area], certifications=certifications[area],
            projects=projects[area], completeness=comps[area],
            gate=None if normal_gate is None else dict(normal_gate), status_thresholds=thresholds,
            certification_groups=[(name, by_type) for code, name, by_type in groups if area in (ALL, code)],
            unreported_projects=unreported[area])
    return out


def _unreported_projects(conn, period_end: date, area: str | None) -> int:
    """Active (谋划/在建) projects absent from their area's return for the period's last month."""
    return conn.execute(
        """
        select count(distinct project_key) from marts.fct_projects
        where is_unreported and snapshot_date = %(end)s
          and (%(area)s::text is null or area_code = %(area)s::text)
        """, {"end": period_end, "area": area}).fetchone()[0]


def _kpis(conn, ed: Edition, period_start: date, period_end: date, areas: list[str]) -> dict[str, list[Kpi]]:
    rows = conn.execute(
        """
        select a.area_code, c.kpi_code, c.indicator_name, c.unit, c.measure_type, c.target_kind, c.has_target,
               c.target_text, c.definition, v.actual_value, v.target_value, v.paced_target_value,
               v.completion_ratio, v.status, c.area_target_method, c.pacing
        from kpi.kpi_catalogue as c
        cross join unnest(%s::text[]) as a (area_code)
        left join kpi.kpi_values as v
            on v.kpi_code = c.kpi_code and v.area_code = a.area_code and v.grain = %s and v.period_start = %s
        order by a.area_code, c.kpi_code
        """, (areas, ed.grain, period_start)).fetchall()
    first_month = max(date(2020, 1, 1), add_months(date(period_end.year, period_end.month, 1), 1 - SERIES_MONTHS))
    series: dict[tuple[str, str], list] = {}
    for area, code, month, actual, paced in conn.execute(
            """
            select area_code, kpi_code, period_start, actual_value, paced_target_value
            from kpi.kpi_values
            where area_code = any(%s) and grain = 'month' and period_start between %s and %s
            order by area_code, kpi_code, period_start
            """, (areas, first_month, period_end)).fetchall():
        series.setdefault((area, code), []).append((month, actual, paced))
    out: dict[str, list[Kpi]] = {a: [] for a in areas}
    for (area, code, name, unit, mtype, kind, has_target, ttext, definition, actual, target, paced, ratio,
         status, method, pacing) in rows:
        corridor_text = target_text_zh(ttext, unit or "", mtype)
        out[area].append(Kpi(
            code=code, name=name, unit=unit or "", measure_type=mtype, target_kind=kind,
            has_target=bool(has_target), target_text=corridor_text,
            definition=definition_zh(code, definition), actual=actual, target=target, paced_target=paced,
            completion=ratio, status=status, series=series.get((area, code), []), pacing=pacing or "none",
            stated_target=corridor_text if area == ALL else area_target_text_zh(
                ttext, unit or "", mtype, target, method == "uniform")))
    return out


def _ranking(conn, year: int, names: dict[str, str]) -> list[Rank]:
    rows = conn.execute(
        """
        select area_rank, area_code, composite_score, kpis_scored
        from kpi.area_ranking where ranking_year = %s order by area_rank, area_code
        """, (year,)).fetchall()
    return [Rank(rank, code, names.get(code, code), score, kpis or 0) for rank, code, score, kpis in rows]


# the plan's order of the areas (LW, OH, YQ, RA, ZN, OJK), as the detail queries sort on it: an area not in it
# last; within one position, each query's own order
_AREA_POSITION = sql.SQL("array_position(%(area_order)s::text[], area_code) nulls last")
_FETCH_ROWS = 2000  # rows of a detail query the client holds at a time


def _stream_detail(conn, query: sql.Composable, params: dict, names: dict[str, str], wanted: list[str],
                   each: Callable[[dict], None] | None = None) -> dict[str, DetailRows | ChainedRows]:
    """{area asked: its rows} of a detail query's rows (each with its ``area_name``), in the query's order,
    which sorts on the area first: ALL's list (when asked) is every row, its areas' lists one after another
    (`ChainedRows`: each row is stored once, in its area's list, wanted or not), an area's list its own rows.
    The rows stream (libpq's chunked rows: a chunk of _FETCH_ROWS at a time; the query itself runs as any
    other, parallel workers included, which a server-side cursor's would not). ``each`` sees every row first
    (it may take columns out of it)."""
    whole = ALL in wanted
    parts: dict[str, DetailRows | None] = {}  # area code -> its rows (None: not kept), in the order the areas come
    with conn.cursor() as cur:
        cols: list[str] = []
        code: object = object()  # no area yet (None is an area code a row may have)
        part: DetailRows | None = None
        for r in cur.stream(query, {**params, "area_order": list(AREA_ORDER)}, size=_FETCH_ROWS):
            if not cols:
                cols = [d.name for d in cur.description]
            row = dict(zip(cols, r, strict=True))
            row["area_name"] = names.get(row["area_code"], row["area_code"])
            if each is not None:
                each(row)
            if row["area_code"] != code:
                code = row["area_code"]
                if code in parts:  # the query did not sort on the area first
                    raise RuntimeError(f"detail rows of area {code!r} are not consecutive")
                part = parts[code] = DetailRows() if whole or (code != ALL and code in wanted) else None
            if part is not None:
                part.append(row)
    out: dict[str, DetailRows | ChainedRows] = {
        a: part if (part := parts.get(a)) is not None else DetailRows() for a in wanted if a != ALL}
    if whole:
        out = {ALL: ChainedRows(parts.values()), **out}
    return {a: out[a] for a in wanted}


def _platforms(conn, start: date, end: date, names: dict[str, str], wanted: list[str]
               ) -> dict[str, DetailRows | ChainedRows]:
    query = sql.SQL("""
        select area_code, platform_id, platform_name, platform_category, platform_level, host_name,
               first_recognised_date as recognised_date,
               case when revoked_date is not null and revoked_date <= %(end)s then '已撤销' else '在册' end
                   as standing
        from marts.dim_platform
        where first_recognised_date between %(start)s and %(end)s
        order by {area_position}, area_code, first_recognised_date, platform_id
        """).format(area_position=_AREA_POSITION)
    return _stream_detail(conn, query, {"start": start, "end": end}, names, wanted)


# How the page names a certified enterprise: its name (its USCC when it has none), marked （已撤销） when the
# certification was revoked by the period's end. A group (area × certification type) lists each name once.
_DISPLAY_NAME = sql.SQL("""coalesce(nullif(enterprise_name, ''), uscc)
        || case when revoked_date is not null and revoked_date <= %(end)s then '（已撤销）' else '' end""")


def _certifications(conn, start: date, end: date, names: dict[str, str], wanted: list[str]
                    ) -> tuple[dict[str, DetailRows | ChainedRows], list[tuple[str, str, list[tuple[str, list[str], int]]]]]:
    """({area asked: its certifications}, the page's groups of names).

    The groups: [(area code, area name, [(certification type, its first GROUP_NAMES names, how many)])] in
    the rows' order (a group's rows are consecutive: the query sorts on area and type first); a group lists
    its first names in the order of their first rows, and counts every distinct name (``count(distinct)``
    by the server). Memory: GROUP_NAMES names a group, whatever the number of rows.
    """
    query = sql.SQL("""
        select area_code, enterprise_name, uscc, certification_type, certificate_no, granted_date,
               valid_until,
               case when revoked_date is not null and revoked_date <= %(end)s then '已撤销' else '有效' end
                   as standing,
               {display_name} as _display_name
        from marts.fct_certifications
        where granted_date between %(start)s and %(end)s
        order by {area_position}, area_code, certification_type, granted_date, enterprise_name, certificate_no
        """).format(area_position=_AREA_POSITION, display_name=_DISPLAY_NAME)
    params = {"start": start, "end": end}
    groups: list[tuple[str, str, list[tuple[str, list[str]]]]] = []  # counted by the server below

    def group(row: dict) -> None:
        display = row.pop("_display_name")  # not a column of the scorecard's rows
        area, ctype = row["area_code"], row["certification_type"]
        if not groups or groups[-1][0] != area:
            groups.append((area, row["area_name"], []))
        mine = groups[-1][2]
        if not mine or mine[-1][0] != ctype:
            mine.append((ctype, []))
        listed = mine[-1][1]
        if len(listed) < GROUP_NAMES and display not in listed:
            listed.append(display)

    rows = _stream_detail(conn, query, params, names, wanted, each=group)
    counts = dict(((area, ctype), n) for area, ctype, n in conn.execute(sql.SQL("""
        select area_code, certification_type, count(distinct {display_name})
        from marts.fct_certifications
        where granted_date between %(start)s and %(end)s
        group by area_code, certification_type
        """).format(display_name=_DISPLAY_NAME), params))
    return rows, [(area, name, [(ctype, listed, counts[area, ctype]) for ctype, listed in by_type])
                  for area, name, by_type in groups]


_PROJECTS = sql.SQL("""
        select area_code, project_id, project_name, project_category, block_name, start_date,
               planned_completion_date, project_status, cumulative_investment_10k_yuan, progress_pct
        from (
            select distinct on ({key})
                   area_code, project_key, project_id, project_name, project_category, block_name, start_date,
                   planned_completion_date, project_status, cumulative_investment_10k_yuan, progress_pct
            from marts.fct_projects
            where start_date between %(start)s and %(end)s
            order by {key},
                     snapshot_month <= date_trunc('month', %(end)s::date) desc,
                     case when snapshot_month <= date_trunc('month', %(end)s::date) then snapshot_month end
                         desc nulls last,
                     snapshot_month
        ) as latest
        order by {area_position}, start_date, project_id collate "C", {key}
""")


def _projects(conn, start: date, end: date, names: dict[str, str], wanted: list[str]
              ) -> dict[str, DetailRows | ChainedRows]:
    """{area asked: its projects}: the corridor's, one row per project; an area's, its own snapshots only.

    The project's state as of the period end: its latest snapshot up to the period's last month (or
    its first snapshot, when it was first reported later). For the corridor, one row per project; for
    an area, one per project among the snapshots reported by that area (``distinct on (area_code,
    project_key)``), as a query filtered on the area gives. Sorted by area (the plan's order), start date
    and project id (code point order, as Python compares text), then the project.
    """
    params = {"start": start, "end": end}
    out: dict[str, DetailRows | ChainedRows] = {a: DetailRows() for a in wanted}
    if ALL in wanted:
        out[ALL] = _stream_detail(conn, _PROJECTS.format(key=sql.SQL("project_key"), area_position=_AREA_POSITION),
                                  params, names, [ALL])[ALL]
    areas = [a for a in wanted if a != ALL]
    if areas:
        key = sql.SQL("area_code, project_key")
        out.update(_stream_detail(conn, _PROJECTS.format(key=key, area_position=_AREA_POSITION), params, names,
                                  areas))
    return out
