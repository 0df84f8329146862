"""corridor.progress: done/total, rates and time left on a terminal, a log line every N units."""

from __future__ import annotations

import io
import logging

import pytest

from corridor.demo import generate
from corridor.progress import Progress, format_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_logs_every_n_units_with_rate_and_time_left(caplog):
    clock = Clock()
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        with Progress("ingest district", total=10, unit="files", log=log, every=4, stream=io.StringIO(),
                      clock=clock) as p:
            for _ in range(10):
                clock.now += 2.0
                p.advance(1, rows=500)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # at 4, at 8, and the closing line
    assert lines[0] == "ingest district  4/10 files  40 %  0.50 files/s  2,000 rows (250/s)  12 s left"
    assert lines[1].startswith("ingest district  8/10 files  80 %") and lines[1].endswith("4 s left")
    assert lines[2] == "done: ingest district  10/10 files  100 %  0.50 files/s  5,000 rows (250/s)  in 20 s"


def test_progress_logs_slow_work_by_time_and_says_when_it_stopped(caplog):
    """... and lets the error through: the loader, the generator and publish run inside a Progress, and an
    error it swallowed would end an ingest or a publication as if it had succeeded."""
    clock = Clock()
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"), pytest.raises(RuntimeError, match="boom"):
        with Progress("publish", total=1000, unit="scorecards", log=log, every=500, log_seconds=30,
                      stream=io.StringIO(), clock=clock) as p:
            clock.now += 31
            p.advance(1)
            raise RuntimeError("boom")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("publish  1/1,000 scorecards  0 %")
    assert lines[1].startswith("stopped: publish  1/1,000 scorecards")


def test_progress_draws_one_line_on_a_terminal_and_nothing_off_it():
    clock = Clock()
    tty = Terminal()
    with Progress("generate city", total=4, unit="feed-months", stream=tty, refresh=0, clock=clock) as p:
        for _ in range(4):
            clock.now += 1
            p.advance()
    out = tty.getvalue()
    assert out.count("\r\x1b[2K") == 5 and out.endswith("4/4 feed-months  100 %  1.00 feed-months/s  in 4 s\n")
    pipe = io.StringIO()
    with Progress("generate city", total=4, stream=pipe, refresh=0, clock=clock) as p:
        p.advance(4)
    assert pipe.getvalue() == ""


def test_unknown_total_shows_counts_and_no_time_left():
    clock = Clock()
    p = Progress("scan", stream=io.StringIO(), clock=clock)
    clock.now += 4
    p.advance(8)
    assert p.eta() is None
    assert p.line() == "scan  8 items  2.00 items/s"
    p.set_total(16)
    assert p.eta() == 4.0
    assert format_seconds(3725) == "1 h 02 min" and format_seconds(185) == "3 min 05 s"


def test_generation_counts_every_feed_month_in_process_and_in_workers(tmp_path):
    for workers, feeds in ((1, ("hr",)), (2, ("bank", "hr"))):
        p = Progress("generate", stream=io.StringIO())
        generate(tmp_path / f"w{workers}", scale="city", start="2022-10", end="2022-12", feeds=feeds,
                 workers=workers, progress=p)
        assert (p.done, p.total) == (3 * len(feeds), 3 * len(feeds)), workers
