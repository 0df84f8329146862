"""The production topology for real: the native Celery stack (corridor.stack) runs the DAGs.

One stack per module, started from a copy of the code tree that is mounted
read-only for every process of the stack (a fresh-clone layout: no dbt
target/, no state): Redis, an aiosmtpd mail catcher, PostgreSQL for the
metadata and the warehouse, api-server, scheduler, dag-processor, triggerer
and two Celery workers. The DAGs are unpaused and triggered through the REST
API; the Asset cascade ingest -> build_warehouse -> publish_scorecards runs on
its own.
"""

from __future__ import annotations

import mailbox
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from email.header import decode_header, make_header
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.conftest import ROOT, TEST_PII_KEY

pytestmark = pytest.mark.timeout(1800)

INGEST = ["ingest_district", "ingest_techmarket", "ingest_bank", "ingest_hr"]
BUILD, PUBLISH = "build_warehouse", "publish_scorecards"
CASCADE_TIMEOUT = 900  # seconds, for the whole cascade on a shared 2-core machine


def _copy_code_tree(target: Path) -> Path:
    """The files a fresh clone has (tracked, plus new files not ignored), nothing generated."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for rel in files:
        source = ROOT / rel
        if source.is_file():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    return target


def _tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _can_mount_read_only(tmp: Path) -> bool:
    probe = tmp / "ro-probe"
    probe.mkdir(exist_ok=True)
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'mount --bind -o ro "{probe}" "{probe}" && ! touch "{probe}/x"'],
                          capture_output=True)
    return proc.returncode == 0 and not (probe / "x").exists()


class Running:
    def __init__(self, stack, api, code, state, output, landing, warehouse_url, snapshot):
        self.stack, self.api, self.code, self.state, self.output = stack, api, code, state, output
        self.landing, self.warehouse_url, self.snapshot = landing, warehouse_url, snapshot

    def runs(self, dag_id: str) -> list[dict]:
        return self.api.get(f"/dags/{dag_id}/dagRuns?order_by=start_date&limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")["task_instances"]

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        body = {"logical_date": None, **({"conf": conf} if conf else {})}
        return self.api.post(f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise TimeoutError(f"{dag_id} {run_id} not finished after {timeout} s")


@pytest.fixture(scope="module")
def running(tmp_path_factory, pg_admin_url):
    from corridor import config, db
    from corridor import stack as native
    from corridor.demo import generate

    base = tmp_path_factory.mktemp("stack")
    code = _copy_code_tree(base / "code")
    read_only = os.geteuid() == 0 and shutil.which("unshare") is not None and _can_mount_read_only(base)
    if not read_only:  # not root: plain permissions make the copy read-only
        subprocess.run(["chmod", "-R", "a-w", str(code)], check=True)
    landing = base / "landing"
    generate(landing, start="2021-07", end="2022-12")
    state, output = base / "state", base / "output"

    saved = dict(os.environ)
    os.environ.update({"CORRIDOR_STATE_DIR": str(state), "CORRIDOR_OUTPUT_DIR": str(output),
                       "CORRIDOR_LANDING_DIR": str(landing), "CORRIDOR_PII_KEY": TEST_PII_KEY.decode()})
    if os.environ.get("CORRIDOR_TEST_URL"):  # a given server: two fresh databases on it
        from tests.conftest import _new_database

        os.environ["CORRIDOR_AIRFLOW_DB_URL"] = _new_database(pg_admin_url)
        os.environ["CORRIDOR_WAREHOUSE_URL"] = _new_database(pg_admin_url)
    snapshot = _tree_snapshot(code)
    settings = config.load()
    stack = native.up(settings, workers=2, api_port=native.free_port(), code_root=code,
                      read_only_code=read_only, timeout=420)
    try:
        yield Running(stack, native.Api(stack), code, state, output, landing, db.warehouse_url(settings),
                      snapshot)
    finally:
        native.down(settings)
        os.environ.clear()
        os.environ.update(saved)
        if not read_only:
            subprocess.run(["chmod", "-R", "u+w", str(code)], check=False)


def test_dag_processor_imports_every_dag_from_a_read_only_fresh_tree(running):
    assert running.stack.read_only_code or os.geteuid() != 0
    assert not (running.code / "dbt_project" / "target").exists()
    errors = running.api.get("/importErrors")
    print("dag-processor import errors:", errors["import_errors"])
    assert errors["total_entries"] == 0, errors
    dags = {d["dag_id"] for d in running.api.get("/dags")["dags"]}
    assert dags == {*INGEST, BUILD, PUBLISH}


def _duration(run: dict) -> float:
    start = datetime.fromisoformat(run["start_date"])
    end = datetime.fromisoformat(run["end_date"])
    return (end - start).total_seconds()


@pytest.fixture(scope="module")
def cascade(running):
    """Unpause every DAG, trigger the ingest DAGs, wait until the cascade has settled."""
    for dag_id in [*INGEST, BUILD, PUBLISH]:
        running.api.patch(f"/dags/{dag_id}", {"is_paused": False})
    started = time.monotonic()
    for dag_id in INGEST:
        running.trigger(dag_id)
    deadline = started + CASCADE_TIMEOUT
    while time.monotonic() < deadline:
        runs = {d: running.runs(d) for d in [*INGEST, BUILD, PUBLISH]}
        settled = all(r["state"] in ("success", "failed") for rs in runs.values() for r in rs)
        ingested = all(runs[d] for d in INGEST)
        built = any(r["state"] == "success" for r in runs[BUILD])
        published = [r for r in runs[PUBLISH] if r["run_type"] == "asset_triggered"]
        if settled and ingested and built and published:
            break
        time.sleep(5)
    else:
        raise TimeoutError(f"cascade not settled after {CASCADE_TIMEOUT} s: "
                           f"{ {d: [(r['run_type'], r['state']) for r in rs] for d, rs in runs.items()} }")
    print(f"\ncascade settled in {time.monotonic() - started:.0f} s")
    for dag_id, rs in runs.items():
        for r in rs:
            print(f"  {dag_id:<20}{r['run_type']:<17}{r['state']:<9}{_duration(r):>7.1f} s")
    return runs


def test_asset_cascade_ingest_build_publish_succeeds_on_the_celery_stack(running, cascade):
    for dag_id in INGEST:
        assert [r["state"] for r in cascade[dag_id]] == ["success"] * len(cascade[dag_id]), dag_id
    # the feeds' Asset events start builds; the daily 08:00 timetable starts runs too (AssetOrTimeSchedule:
    # unpaused with catchup off, its latest time is run at once), which check freshness only
    assert {r["run_type"] for r in cascade[BUILD]} <= {"asset_triggered", "scheduled"}, cascade[BUILD]
    assert any(r["run_type"] == "asset_triggered" for r in cascade[BUILD])
    for r in cascade[BUILD]:  # the daily run checks freshness only: builds follow the Asset events
        if r["run_type"] == "scheduled":
            states = {t["task_id"]: t["state"] for t in running.task_instances(BUILD, r["dag_run_id"])}
            assert states["dbt_build"] == "skipped" and states["source_freshness"] == "success", states
    assert [r["state"] for r in cascade[BUILD]] == ["success"] * len(cascade[BUILD])
    triggered = [r for r in cascade[PUBLISH] if r["run_type"] == "asset_triggered"]
    assert triggered and all(r["state"] == "success" for r in triggered)
    with psycopg.connect(running.warehouse_url) as conn:
        assert conn.execute("select count(*) from kpi.kpi_values").fetchone()[0] > 0
        assert conn.execute("select count(*) from ops.load_ledger where status = 'loaded'").fetchone()[0] > 500


def test_tasks_spread_over_both_celery_workers(running, cascade):
    by_worker: Counter = Counter()
    for dag_id, rs in cascade.items():
        for r in rs:
            for ti in running.task_instances(dag_id, r["dag_run_id"]):
                if ti["state"] in ("success", "failed"):
                    by_worker[ti["hostname"]] += 1
                    assert ti["queue"] == "default"
    print("task instances per worker:", dict(by_worker))
    assert set(by_worker) == {"worker-1", "worker-2"}, by_worker
    assert min(by_worker.values()) >= 2


def test_manual_publish_writes_scorecards_and_the_mail_catcher_receives_them(running, cascade):
    run = running.wait_run(PUBLISH, running.trigger(PUBLISH))
    states = {t["task_id"]: t["state"] for t in running.task_instances(PUBLISH, run["dag_run_id"])}
    print(f"manual {PUBLISH}: {run['state']} in {_duration(run):.1f} s, tasks {states}")
    assert run["state"] == "success", states
    files = sorted(p for p in (running.output / "scorecards").rglob("*") if p.is_file())
    assert {p.suffix for p in files} >= {".pdf", ".xlsx", ".html"}
    # the catcher also holds the data team's alerts (e.g. the LATE mail of the scheduled run's
    # deadline), in no particular order: the scorecard mails are the ones with a PDF attached
    messages = list(mailbox.Maildir(str(running.stack.maildir), create=False))
    scorecards = [m for m in messages if any((part.get_filename() or "").endswith(".pdf") for part in m.walk())]
    subjects = [str(make_header(decode_header(m["Subject"]))) for m in messages]
    print(f"{len(files)} scorecard files; {len(messages)} e-mail(s) caught, {len(scorecards)} with a PDF"
          + (f", e.g. To: {scorecards[0]['To']} Subject: {make_header(decode_header(scorecards[0]['Subject']))}"
             if scorecards else f"; subjects: {subjects}"))
    assert scorecards, f"no scorecard mail (with a PDF) among {subjects}"
    assert all(m["To"] and "data-team" not in m["To"] for m in scorecards)


def test_build_dag_on_the_stack_against_a_plain_dbt_build_of_the_same_project(running, cascade):
    """Printed, not asserted (machines are shared): the DAG run's wall time next to `dbt build`'s."""
    from corridor import db, transform

    # The plain `dbt build` below runs outside Airflow, so outside the pool that keeps
    # readers off a warehouse being rebuilt: no publish run may start meanwhile.
    running.api.patch(f"/dags/{PUBLISH}", {"is_paused": True})
    for r in running.runs(PUBLISH):
        if r["state"] not in ("success", "failed"):
            running.wait_run(PUBLISH, r["dag_run_id"])
    # nothing was loaded since the cascade's build, so only a forced run builds
    run = running.wait_run(BUILD, running.trigger(BUILD, conf={"force": True}))
    assert run["state"] == "success"
    dag_seconds = _duration(run)
    tis = {t["task_id"]: t for t in running.task_instances(BUILD, run["dag_run_id"])}
    assert tis["dbt_build"]["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    # dbt itself, under the build lock the project's guard asks for (transform.build_lock names its backend in
    # the environment the subprocess inherits)
    with transform.build_lock(running.warehouse_url, ["build"]):
        env = {**os.environ, **db.dbt_env(running.warehouse_url), "DBT_TARGET_PATH": str(running.state / "plain"),
               "DBT_LOG_PATH": str(running.state / "plain-logs")}
        started = time.perf_counter()
        proc = subprocess.run([str(Path(sys.executable).with_name("dbt")), "build", "--quiet",
                               "--project-dir", str(running.code / "dbt_project"),
                               "--profiles-dir", str(running.code / "dbt_project")],
                              env=env, capture_output=True, text=True)
        plain = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-3000:]
    print(f"\nbuild_warehouse on the Celery stack: {dag_seconds:.1f} s (dbt_build task "
          f"{tis['dbt_build']['duration']:.1f} s on {tis['dbt_build']['hostname']}, source_freshness "
          f"{tis['source_freshness']['duration']:.1f} s); plain `dbt build`: {plain:.1f} s; "
          f"ratio {dag_seconds / plain:.2f}")


def test_nothing_was_written_into_the_code_tree(running, cascade):
    assert _tree_snapshot(running.code) == running.snapshot
    assert not (running.code / "expectations" / "uncommitted").exists()
    assert (running.state / "gx" / "uncommitted").is_dir()
