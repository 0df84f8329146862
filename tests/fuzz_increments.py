"""A campaign for the incremental models: a demo set delivered in random chunks, `corridor dbt build` after each.

Each round generates a demo set (city by default; random seed and window), cuts its months into 3 to 6 deliveries, sends
some files late (one or two deliveries after their month's; a restatement never before the version it
restates), and for each delivery loads the four feeds (``ingest_feed``) and runs ``corridor dbt build`` (so the
increments, their scope and the tests of the rows they wrote run as in production). Then every incremental
model and ``kpi.kpi_values`` are compared with what ``corridor dbt build --full-refresh`` makes of the same
raw rows, and ``kpi.kpi_values`` and ``kpi.area_ranking`` with the KPI oracle's reading of the written rules
(``tests/kpi_oracle.py``). ``tests/test_warehouse.py::test_incremental_run_equals_full_refresh`` holds one designed history;
this tries many. A round costs about 80 s on two cores::

    .venv/bin/python -m tests.fuzz_increments SECONDS [SEED] --url postgresql://…  (a maintenance database
    URL: each round creates its own database, and drops it unless the round differs)

``--kill P``: before a delivery's build, with probability P, a ``corridor dbt build`` is started and killed
(SIGKILL) after a random 0.3–15 s, as a machine that dies mid-build would; the build after it must say that
its tests read every row (``transform.unverified_writes``), and the round's end must still equal a full refresh.

``--concurrent``: each delivery's four feeds load side by side, in four processes, as the ingest DAGs of the
Airflow deployment do, and a ``corridor dbt build`` runs beside them (started up to 6 s before the loads or 2 s
after: the build DAG starts on any feed's Asset); that build must pass, and so must the delivery's build after
the loads.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tests.test_warehouse import INCREMENTAL_MODELS as MODELS  # every incremental model, with its key

WINDOWS = (("2021-01", "2022-12"), ("2020-07", "2022-06"), ("2021-07", "2022-12"))


def month_of(path: Path) -> str:
    """The month a delivered file belongs to (YYYYMM, from its name)."""
    return re.search(r"_(\d{6})(\d{2})?(_v\d+)?\.", path.name)[1]


def deliveries(files: list[Path], rng: random.Random) -> tuple[dict[Path, int], int]:
    """Each file's delivery (0 on) and how many there are: months cut into 3 to 6 deliveries, ~8 % of the files
    one or two deliveries late, a restatement (v2, v3 …) never before the version it restates."""
    months = sorted({month_of(p) for p in files})
    count = rng.randrange(3, 7)
    cuts = sorted(rng.sample(range(1, len(months)), count - 1))
    of_month = {m: sum(1 for c in cuts if i >= c) for i, m in enumerate(months)}
    delivery = {p: (min(count - 1, of_month[month_of(p)] + rng.randrange(1, 3)) if rng.random() < 0.08
                    else of_month[month_of(p)]) for p in files}
    versions: dict[str, list[tuple[int, Path]]] = {}
    for p in files:
        m = re.match(r"([A-Z]+_\d{6})_v(\d+)\.xlsx$", p.name)
        if m:
            versions.setdefault(m[1], []).append((int(m[2]), p))
    for restated in versions.values():
        restated.sort()
        for (_, earlier), (_, later) in zip(restated, restated[1:], strict=False):
            delivery[later] = max(delivery[later], delivery[earlier])
    return delivery, count


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every incremental model's rows in key order, and kpi_values' in any order (sorted here)."""
    import psycopg

    from tests.test_warehouse import _snapshot

    out = {table: _snapshot(url, table, key) for table, key in MODELS.items()}
    with psycopg.connect(url) as conn:
        out["kpi.kpi_values"] = sorted(conn.execute("select * from kpi.kpi_values").fetchall(), key=repr)
    return out


@dataclass
class Round:
    line: str
    differ: list[str]


INGEST_ONE_FEED = ("import sys; from pathlib import Path; from corridor.ingest import ingest_feed\n"
                   "if __name__ == '__main__':\n"
                   "    summary = ingest_feed(sys.argv[1], sys.argv[2], Path(sys.argv[3]), pii_key=b'fuzz')\n"
                   "    sys.exit(1 if summary.rejected else 0)")


def one_round(admin_url: str, rng: random.Random, work: Path, name: str, scale: str = "city",
              kill: float = 0.0, concurrent: bool = False) -> Round:
    """Generate, deliver, build after each delivery, compare with a full refresh; the database is dropped when
    the round agrees."""
    import psycopg

    from corridor import db, transform
    from corridor.demo import generate
    from corridor.feeds import FEEDS
    from corridor.ingest import ingest_feed

    demo = work / "demo"
    seed = rng.randrange(1, 10**6)
    start, end = rng.choice(WINDOWS)
    generate(demo, seed=seed, scale=scale, start=start, end=end)
    files = [p for feed in FEEDS for p in sorted((demo / feed).iterdir())]
    delivery, count = deliveries(files, rng)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')
    url = db.with_database(admin_url, name)
    db.ensure_schema(url)
    env = {**os.environ, "CORRIDOR_WAREHOUSE_URL": url, "CORRIDOR_PII_KEY": "fuzz",
           "CORRIDOR_STATE_DIR": str(work / "state"), "CORRIDOR_OUTPUT_DIR": str(work / "out")}
    corridor = str(Path(sys.executable).with_name("corridor"))
    target = work / "target"

    def build(*extra: str) -> str:
        done = subprocess.run([corridor, "dbt", "build", "--target-path", str(target), *extra], env=env,
                              capture_output=True, text=True)
        if done.returncode:
            output = (done.stdout + done.stderr)[-3000:]
            raise RuntimeError(f"corridor dbt build {' '.join(extra)} failed:\n{output}")
        return done.stdout

    def killed_build() -> bool:
        """A `corridor dbt build` killed after a random while; True if it was still running then."""
        proc = subprocess.Popen([corridor, "dbt", "build", "--target-path", str(target)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(rng.uniform(0.3, 15.0))
            return False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return True

    def unverified() -> bool:
        """Whether the next whole build must test every row: a dbt command's row in ops.dbt_unverified_writes
        (a build killed after it wrote its row and before it was recorded), or no build recorded yet."""
        return bool(transform.unverified_commands(url)) or transform.last_build(url) is None

    def loads_beside_a_build(n: int) -> list[str]:
        """The four feeds loaded in four processes, a build started among them; what went wrong, if anything."""
        # the build first, by up to 6 s (its models start some 3 s in, after dbt's start-up), or the loads first,
        # by up to 2 s: either way its models run while files are being committed
        lead = rng.uniform(-2.0, 6.0)
        if lead > 0:
            building = subprocess.Popen([corridor, "dbt", "build", "--target-path", str(target)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(lead)
        loads = [subprocess.Popen([sys.executable, "-c", INGEST_ONE_FEED, url, feed, str(landing)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for feed in FEEDS]
        if lead <= 0:
            time.sleep(-lead)
            building = subprocess.Popen([corridor, "dbt", "build", "--target-path", str(target)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wrong = [f"delivery {n}: loading {feed} failed: {proc.communicate()[1][-1500:]}"
                 for feed, proc in zip(FEEDS, loads, strict=True) if proc.wait() != 0]
        output = building.communicate()[0]
        if building.returncode:
            wrong.append(f"delivery {n}: the build beside the loads failed:\n{output[-3000:]}")
        return wrong

    kills: list[bool] = []  # per build that followed a kill: whether it had to test every row
    beside: list[str] = []  # what went wrong while loads and a build ran side by side
    wrong_scope = []  # (delivery, expected) where the build after a kill tested every row or not against that

    landing = work / "landing"
    for feed in FEEDS:
        (landing / feed).mkdir(parents=True)
    for n in range(count):
        for p in files:
            if delivery[p] == n:
                shutil.copy2(p, landing / p.parent.name / p.name)
        if concurrent:
            beside += loads_beside_a_build(n)
        else:
            for feed in FEEDS:
                ingest_feed(url, feed, landing, pii_key=b"fuzz")
        killed = bool(kill) and rng.random() < kill and killed_build()
        expected = unverified() if killed else None
        output = build()
        if killed:  # killed before its row, between its row and its record (unverified), or after its record
            kills.append(expected)
            if ("read every row" in output) != expected:
                wrong_scope.append((n, expected))
    incremental = snapshot(url)
    # the numbers themselves, against the KPI oracle's reading of the written rules (tests/kpi_oracle.py)
    from tests.test_kpi_oracle import differences_at_the_warehouses_periods

    oracle_differs = differences_at_the_warehouses_periods(url)
    build("--full-refresh")
    full = snapshot(url)
    first: dict[str, int] = {}  # month -> its earliest delivery
    for p in files:
        first[month_of(p)] = min(first.get(month_of(p), count), delivery[p])
    late = sum(1 for p in files if delivery[p] > first[month_of(p)])
    line = (f"{scale} demo seed {seed} {start}..{end}: {count} deliveries, {late} files late, "
            + (f"{len(kills)} build{'' if len(kills) == 1 else 's'} killed ({sum(kills)} leaving"
               " unverified writes), " if kill else "")
            + ("feeds loaded side by side beside a build, " if concurrent else "")
            + f"{sum(len(rows) for rows in full.values())} rows compared")
    differ = [table for table in full if incremental[table] != full[table]]
    if oracle_differs:
        differ.append(f"{len(oracle_differs)} values differ from the KPI oracle, e.g. {'; '.join(oracle_differs[:5])}")
    differ += [f"the build after the kill before delivery {n} {'did not test' if expected else 'tested'} every row"
               for n, expected in wrong_scope]
    differ += beside
    if not differ:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}"')
    return Round(line, differ)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import warnings

    from corridor.ingest import close_parse_pool

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("seed", type=int, nargs="?", default=None)
    parser.add_argument("--url", required=True, help="a maintenance database URL of the server to run on")
    parser.add_argument("--scale", default="city", choices=("city", "province"),
                        help="the demo sets' scale (province: ~4 min a round)")
    parser.add_argument("--kill", type=float, default=0.0, metavar="P",
                        help="the probability that a delivery's build follows one killed mid-way")
    parser.add_argument("--concurrent", action="store_true",
                        help="each delivery's feeds loaded in four processes side by side, a build among them")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    deadline = time.monotonic() + args.seconds
    rounds = differing = 0
    try:
        while time.monotonic() < deadline:
            rounds += 1
            work = Path(tempfile.mkdtemp(prefix="fuzz-increments-"))
            try:
                result = one_round(args.url, rng, work, f"fuzz_increments_{seed}_{rounds}", args.scale, args.kill,
                                   args.concurrent)
                print(("DIFFERS " if result.differ else "same ") + result.line
                      + (f": {', '.join(result.differ)} (database fuzz_increments_{seed}_{rounds} kept)"
                         if result.differ else ""), flush=True)
                differing += bool(result.differ)
            except Exception:
                differing += 1
                print(f"ERROR in round {rounds}: {traceback.format_exc()[-2000:]}", flush=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        close_parse_pool()
    print(f"seed {seed}: {rounds} rounds, {differing} differing")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
