"""Progress of long work: a live line on a terminal, a line in the log every N units.

A national run must never be silent for minutes. Wrap the loop of any long job
(generating, ingesting, publishing) in a :class:`Progress`::

    from corridor.progress import Progress

    with Progress("ingest district", total=len(files), unit="files", log=log, every=100) as p:
        for path in files:
            rows = load(path)
            p.advance(1, rows=rows)          # one file done, ``rows`` more rows

What it shows:

- on a terminal (``stream.isatty()``, default ``sys.stderr``): one line,
  rewritten at most every ``refresh`` seconds::

      ingest district  812/1,613 files  50 %  14.2 files/s  61,200 rows/s  56 s left

- in the log (``log``, a :class:`logging.Logger`, at INFO): a line of the same
  text every ``every`` units, and at least every ``log_seconds`` seconds while
  work goes on (so a task log shows life even when units are slow), plus one
  closing line with the totals (``done`` or ``stopped at`` when the block
  raised). Nothing is logged when ``log`` is None.
- off a terminal (Airflow task logs, CI, pipes) no carriage-return line is
  written: only the log lines.

API:

- ``Progress(label, total=None, unit="items", *, log=None, every=None,
  log_seconds=30.0, stream=None, refresh=0.25, clock=time.monotonic)``;
  ``total`` may be unknown (None: no percentage, no time left) and set later
  with :meth:`set_total`; ``every`` defaults to about 5 % of ``total``
  (at least 1), or 100 when the total is unknown.
- :meth:`advance(n=1, **counts) <Progress.advance>`: ``n`` units done; keyword
  counts (``rows=…``, ``bytes=…``) are summed and shown as rates.
- :meth:`line` the current status text; :attr:`done`, :attr:`counts`,
  :attr:`elapsed`, :meth:`rate`, :meth:`eta` (seconds left or None).
- :meth:`close` (called by ``with``) writes the final line.
- Thread-safe: workers in threads may call ``advance``. Worker *processes*
  report to the parent (e.g. through a queue the parent drains into
  ``advance``); see ``corridor.demo.generator``.

Time comes from ``clock`` (monotonic by default) so tests can drive it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


def _fmt_count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _fmt_rate(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Done/total, rate and time left of one long job; see the module docstring."""

    def __init__(self, label: str, total: int | None = None, unit: str = "items", *,
                 log: logging.Logger | None = None, every: int | None = None, log_seconds: float = 30.0,
                 stream: TextIO | None = None, refresh: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.log = log
        self._every = every
        self.log_seconds = log_seconds
        self.stream = stream if stream is not None else sys.stderr
        self.refresh = refresh
        self.clock = clock
        self.done = 0
        self.counts: dict[str, float] = {}
        self._lock = threading.Lock()
        self._started = clock()
        self._last_draw = float("-inf")
        self._last_log_at = self._started
        self._next_log_unit = self.every
        self._drawn = False
        self._closed = False
        try:
            self._tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self._tty = False

    # -- figures ---------------------------------------------------------------------------
    @property
    def every(self) -> int:
        if self._every:
            return self._every
        if self.total:
            return max(1, round(self.total / 20))
        return 100

    @property
    def elapsed(self) -> float:
        return self.clock() - self._started

    def rate(self, count: str | None = None) -> float:
        """Units (or the named count) per second so far."""
        elapsed = self.elapsed
        value = self.done if count is None else self.counts.get(count, 0)
        return value / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds left at the rate so far; None while unknown."""
        if not self.total or self.done <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate()) if self.rate() > 0 else None

    def line(self) -> str:
        parts = [self.label]
        if self.total:
            parts.append(f"{self.done:,}/{self.total:,} {self.unit}")
            parts.append(f"{min(100, 100 * self.done // self.total)} %")
        else:
            parts.append(f"{self.done:,} {self.unit}")
        parts.append(f"{_fmt_rate(self.rate())} {self.unit}/s")
        for name, value in self.counts.items():
            parts.append(f"{_fmt_count(value)} {name} ({_fmt_rate(self.rate(name))}/s)")
        eta = self.eta()
        if self._closed:
            parts.append(f"in {format_seconds(self.elapsed)}")
        elif eta is not None:
            parts.append(f"{format_seconds(eta)} left")
        return "  ".join(parts)

    # -- updates ---------------------------------------------------------------------------
    def set_total(self, total: int | None) -> None:
        with self._lock:
            self.total = total
            if not self._every:
                self._next_log_unit = self.done + self.every

    def advance(self, n: int = 1, **counts: float) -> None:
        with self._lock:
            self.done += n
            for name, value in counts.items():
                self.counts[name] = self.counts.get(name, 0) + value
            now = self.clock()
            if self._tty and now - self._last_draw >= self.refresh:
                self._draw()
                self._last_draw = now
            if self.log is not None and (self.done >= self._next_log_unit
                                         or now - self._last_log_at >= self.log_seconds):
                self.log.info("%s", self.line())
                self._last_log_at = now
                while self._next_log_unit <= self.done:
                    self._next_log_unit += self.every

    def _draw(self) -> None:
        text = self.line()
        try:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
            self._drawn = True
        except (OSError, ValueError):
            self._tty = False

    def close(self, failed: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            text = self.line()
            if self._tty:
                try:
                    self.stream.write(("\r\x1b[2K" if self._drawn else "") + text
                                      + (" (stopped)" if failed else "") + "\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
            if self.log is not None:
                self.log.info("%s %s", "stopped:" if failed else "done:", text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)
