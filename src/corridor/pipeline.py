"""The main job: demo landing (if none given) → warehouse → ingest DAGs → build DAG → publish DAG → summary."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from corridor import config, db
from corridor.config import Settings
from corridor.feeds import FEEDS

log = logging.getLogger(__name__)

INGEST_DAGS = [f"ingest_{feed}" for feed in FEEDS]
BUILD_DAG = "build_warehouse"
PUBLISH_DAG = "publish_scorecards"


def ensure_demo_landing(settings: Settings, echo=print) -> Path:
    """Generate the demo landing area once; reuse it while seed, scale and manifest version match."""
    from corridor.demo import generate
    from corridor.demo.generator import MANIFEST_VERSION

    landing = settings.landing_dir
    stamp = landing / "_demo" / "summary.json"
    if stamp.exists():
        summary = json.loads(stamp.read_text(encoding="utf-8"))
        if (summary.get("seed"), summary.get("scale"), summary.get("manifest_version")) == (
                settings.demo_seed, settings.demo_scale, MANIFEST_VERSION):
            echo(f"demo landing area: {landing} (seed {settings.demo_seed}, scale {settings.demo_scale}, reused)")
            return landing
    started = time.perf_counter()
    generate(landing, seed=settings.demo_seed, scale=settings.demo_scale)
    echo(f"demo landing area: {landing} (seed {settings.demo_seed}, scale {settings.demo_scale}, "
         f"generated in {time.perf_counter() - started:.1f} s)")
    return landing


@dataclass
class FeedReport:
    feed: str
    files_new: int = 0
    files_duplicate: int = 0
    files_rejected: int = 0
    rows_received: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


def ledger_report(url: str, since_ledger_id: int) -> dict[str, FeedReport]:
    """What the ledger recorded after ``since_ledger_id``, per feed."""
    reports = {feed: FeedReport(feed) for feed in FEEDS}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select feed, file_name, status, rows_received, rows_loaded, rows_quarantined, message"
            " from ops.load_ledger where ledger_id > %s order by ledger_id", (since_ledger_id,)).fetchall()
    for feed, name, status, received, loaded, quarantined, message in rows:
        r = reports.setdefault(feed, FeedReport(feed))
        if status == "rejected":
            r.files_rejected += 1
            r.rejected.append((name, message))
        elif message and message.startswith("identical bytes"):
            r.files_duplicate += 1
        else:
            r.files_new += 1
        r.rows_received += received
        r.rows_loaded += loaded
        r.rows_quarantined += quarantined
    return reports


def quarantine_by_rule(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select feed, rule_code, count(*) from ops.quarantine group by 1, 2 order by 1, 2").fetchall()


def max_ledger_id(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select coalesce(max(ledger_id), 0) from ops.load_ledger").fetchone()[0]


def format_ingest_summary(reports: dict[str, FeedReport], discovered: dict[str, int]) -> str:
    head = f"{'feed':<11}{'files':>7}{'new':>6}{'dup':>5}{'rej':>5}{'received':>13}{'loaded':>13}{'quarantined':>13}"
    lines = [head, "-" * len(head)]
    for feed, r in reports.items():
        lines.append(f"{feed:<11}{discovered.get(feed, 0):>7}{r.files_new:>6}{r.files_duplicate:>5}"
                     f"{r.files_rejected:>5}{r.rows_received:>13,}{r.rows_loaded:>13,}{r.rows_quarantined:>13,}")
    total = FeedReport("total")
    for r in reports.values():
        for attr in ("files_new", "files_duplicate", "files_rejected", "rows_received", "rows_loaded",
                     "rows_quarantined"):
            setattr(total, attr, getattr(total, attr) + getattr(r, attr))
    lines.append("-" * len(head))
    lines.append(f"{'total':<11}{sum(discovered.values()):>7}{total.files_new:>6}{total.files_duplicate:>5}"
                 f"{total.files_rejected:>5}{total.rows_received:>13,}{total.rows_loaded:>13,}"
                 f"{total.rows_quarantined:>13,}")
    for r in reports.values():
        for name, reason in r.rejected:
            lines.append(f"REJECTED {r.feed}/{name}: {reason}")
    return "\n".join(lines)


def kpi_year_end(url: str, year: int, area: str = "ALL") -> list[tuple]:
    """Each KPI's year-grain value for ``year`` next to its target."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            select v.kpi_code, c.indicator_name, c.unit, v.actual_value, v.target_value,
                   v.completion_ratio, v.status
            from kpi.kpi_values as v
            join kpi.kpi_catalogue as c using (kpi_code)
            where v.area_code = %s and v.grain = 'year' and v.period_start = make_date(%s, 1, 1)
            order by v.kpi_code
            """, (area, year)).fetchall()


def _num(value) -> str:
    if value is None:
        return "—"
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text


def format_kpis(rows: list[tuple]) -> str:
    lines = [f"{'KPI':<5}{'actual':>14}{'target':>12}{'completion':>12}  {'status':<9} indicator"]
    for code, name, unit, actual, target, ratio, status in rows:
        pct = "—" if ratio is None else f"{ratio * 100:.1f} %"
        label = name if unit in name else f"{name} ({unit})"
        lines.append(f"{code:<5}{_num(actual):>14}{_num(target):>12}{pct:>12}  {status or '—':<9} {label}")
    return "\n".join(lines)


def publish(settings: Settings, url: str, echo=print):
    """Run the publish DAG (quality gate, then scorecards) and print what it did."""
    from corridor.orchestration.runner import run_dags

    started = time.perf_counter()
    [result] = run_dags([PUBLISH_DAG], settings.dags_dir)
    seconds = time.perf_counter() - started
    echo("")
    echo(f"== checks and publication ({seconds:.1f} s) ==")
    gate = result.xcom("quality_gate")
    if gate:
        echo(format_gate(gate))
    if "quality_gate" in result.failed_tasks:
        echo("quality gate FAILED: no scorecard published (the publish_scorecards task log names the"
             " failed expectations; `make publish` re-checks after a fix)")
    elif result.state == "success":
        echo("")
        echo("2022 year-end scorecards (年度比拼):")
        echo(format_published(url, "year_end", 2022, settings.root))
    return result


def format_gate(gate: dict) -> str:
    head = f"{'checkpoint':<18}{'suites':>7}{'expectations':>14}{'passed':>8}{'warnings':>10}{'failed':>8}"
    lines = [head, "-" * len(head)]
    for c in gate.get("checkpoints", []):
        lines.append(f"{c['name']:<18}{c['suites']:>7}{c['expectations']:>14}{c['passed']:>8}"
                     f"{c['warnings']:>10}{c['failed']:>8}")
    t = gate.get("totals", {})
    if t:
        lines.append("-" * len(head))
        lines.append(f"{'total':<18}{t['suites']:>7}{t['expectations']:>14}{t['passed']:>8}"
                     f"{t['warnings']:>10}{t['failed']:>8}")
    verdict = "BLOCKED" if gate.get("blocking") else "passed"
    lines.append(f"gate: {verdict}; data as of {gate.get('as_of')}; checks took {gate.get('seconds')} s")
    for f in gate.get("failures", [])[:10]:
        lines.append(f"  [{f['severity']}] {f['expectation']} on {f['table']}: {f['message']}")
    if gate.get("data_docs_path"):
        lines.append(f"data docs: {gate['data_docs_path']}")
    return "\n".join(lines)


def format_published(url: str, edition: str, year: int, root: Path) -> str:
    """The files of the latest edition of each area for ``edition`` in ``year``."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            select distinct on (area_code, format) area_code, format, file_path, bytes, edition_no, provisional
            from ops.scorecard_editions
            where edition = %s and extract(year from period_start) = %s
            order by area_code, format, edition_no desc
            """, (edition, year)).fetchall()
    if not rows:
        return "  (none recorded)"
    lines = []
    for area, fmt, path, size, edition_no, provisional in rows:
        shown = Path(path)
        try:
            shown = shown.relative_to(root)
        except ValueError:
            pass
        flag = " provisional" if provisional else ""
        lines.append(f"  {area:<4}{fmt:<5}{size / 1024:>8.0f} KB  v{edition_no}{flag}  {shown}")
    return "\n".join(lines)


def run(settings: Settings | None = None, echo=print) -> int:
    """Run the whole pipeline; return the process exit code."""
    from corridor import transform
    from corridor.ingest import LandingFolderMissing, close_parse_pool, discover, silence_warning
    from corridor.orchestration.runner import prepare_airflow, run_dags

    started = time.perf_counter()
    settings = settings or config.load()
    if settings.landing_is_demo:
        ensure_demo_landing(settings, echo)
    else:
        echo(f"landing area: {settings.landing_dir}")
    url = db.warehouse_url(settings)
    db.ensure_schema(url)
    echo(f"warehouse: {db.libpq_params(url)['dbname']} on {db.libpq_params(url)['host']}")

    since = max_ledger_id(url)
    transform.set_dbt_env(url)
    prepare_airflow(settings, url)
    ingest_started = time.perf_counter()
    try:
        results = run_dags(INGEST_DAGS, settings.dags_dir)
    finally:
        close_parse_pool()  # the parse workers the four feeds shared: not kept through the build
    ingest_seconds = time.perf_counter() - ingest_started

    discovered, problems = {}, []
    for feed in FEEDS:
        try:
            discovered[feed] = len(discover(settings.landing_dir, feed))
        except LandingFolderMissing as exc:
            discovered[feed] = 0
            problems.append(f"FAILED {exc}")
    with db.connect(url) as conn:
        now = datetime.now(UTC)
        problems += [f"WARNING {w}" for feed in FEEDS if (w := silence_warning(conn, feed, now))]
    echo("")
    echo(f"== ingest ({ingest_seconds:.1f} s) ==")
    echo(format_ingest_summary(ledger_report(url, since), discovered))
    for line in problems:
        echo(line)
    echo("")
    echo("quarantined rows on record, by rule:")
    for feed, rule, count in quarantine_by_rule(url):
        echo(f"  {feed:<11}{rule:<30}{count:>8,}")

    build_started = time.perf_counter()
    results += run_dags([BUILD_DAG], settings.dags_dir)
    build_seconds = time.perf_counter() - build_started
    echo("")
    echo(f"== build: dbt through cosmos ({build_seconds:.1f} s) ==")
    if results[-1].state == "success" and "dbt_build" in results[-1].skipped_tasks:
        echo("nothing loaded and dbt_project unchanged since the last successful build: dbt did not run,"
             " the warehouse is as that build left it")
    if results[-1].state == "success":
        echo("corridor (ALL), year-end 2022, KPI values against the action plan's targets:")
        echo(format_kpis(kpi_year_end(url, 2022)))
    if results[-1].state == "success":
        results.append(publish(settings, url, echo))
    echo("")
    failed = [r for r in results if r.state != "success"]
    for r in results:
        echo(f"DAG {r.dag_id}: {r.state} ({r.seconds:.1f} s)"
             + (f", failed tasks: {', '.join(r.failed_tasks)}" if r.failed_tasks else ""))
    echo(f"\nwall time: {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0
