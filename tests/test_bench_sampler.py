"""The benchmark's server CPU sampler (benchmarks/benchlib.py) counts what a step's server processes spent during
the step, on a real PostgreSQL: a backend that started during the step whole, one already running before it
(missed by the first sample) only from when it was first seen."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psycopg

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import benchlib  # noqa: E402


def _burn(conn) -> None:
    conn.execute("select count(*) from generate_series(1, 4000000)").fetchone()


def _cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / benchlib.CLK


def test_a_backend_running_before_the_step_is_counted_from_its_first_sample_not_whole(pg_admin_url):
    with psycopg.connect(pg_admin_url, autocommit=True) as before:
        data = Path(before.execute("show data_directory").fetchone()[0])
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        old = before.info.backend_pid
        for _ in range(3):
            _burn(before)
        spent_before = _cpu(old)
        assert spent_before > 0.2, spent_before  # enough to tell apart from the step's own work
        time.sleep(0.05)
        sampler = benchlib.ServerCpuSampler(postmaster, interval=3600)  # samples only when asked
        sampler.seen.pop(old)  # missed by the first sample (e.g. still exiting from the previous step)
        with psycopg.connect(pg_admin_url, autocommit=True) as during:
            new = during.info.backend_pid
            _burn(during)
            sampler._sample()
            spent_new = _cpu(new)
        total = sampler.stop()
    assert spent_new > 0.05
    # the new backend whole, the old one from its first sample (~0): not its spent_before
    assert spent_new - 0.05 <= total < spent_new + spent_before / 2, (total, spent_new, spent_before)
