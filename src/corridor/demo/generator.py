"""The demo data set: the four feeds of the landing area, with planted dirt and a manifest."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corridor.demo.bank import BankGenerator
from corridor.demo.context import SCALES, Context
from corridor.demo.dirty import Manifest
from corridor.demo.district import DistrictGenerator
from corridor.demo.hr import HrGenerator
from corridor.demo.master import Enterprises
from corridor.demo.periods import month_index, parse_month
from corridor.demo.techmarket import TechmarketGenerator
from corridor.progress import Progress

log = logging.getLogger(__name__)

FEED_ORDER = ("district", "techmarket", "bank", "hr")
DEMO_DIR = "_demo"
# The meaning of the manifest's expectations; raised when one changes, so that a landing area made before is
# made again (pipeline.ensure_demo_landing). 2: a district _v2 with _v1's bytes is a restatement, loaded
# (it was a no-op, `noop_file`).
MANIFEST_VERSION = 2


@dataclass
class DemoSummary:
    landing_dir: str
    seed: int
    scale: str
    start: str
    end: str
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    dirty_rows: dict[str, int] = field(default_factory=dict)
    dirty_share: dict[str, float] = field(default_factory=dict)
    dirty: dict[str, dict[str, int]] = field(default_factory=dict)
    scenarios: dict[str, dict[str, int]] = field(default_factory=dict)
    dirty_years: dict[str, list[int]] = field(default_factory=dict)
    per_year: dict[str, dict[str, int]] = field(default_factory=dict)
    kpi_preview: dict[str, object] = field(default_factory=dict)
    manifest_lines: int = 0
    # what the manifest's expectations mean (MANIFEST_VERSION): a landing area of another is made again
    manifest_version: int = 0

    @property
    def total_files(self) -> int:
        return sum(self.files.values())

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("landing_dir")  # the summary is byte-identical wherever the set is written
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


# Progress of the current process's feed generation: one call per feed-month done. In a worker
# process it puts a unit on the parent's queue (set by _init_worker); in-process, generate() sets it.
_TICK: Callable[[], None] = lambda: None  # noqa: E731


def _init_worker(queue) -> None:
    global _TICK
    _TICK = lambda: queue.put(1)  # noqa: E731


def _drain(queue, progress: Progress) -> None:
    while queue.get() is not None:
        progress.advance(1)


def _run_feed(feed: str, landing: str, seed: int, scale: str, start_idx: int, end_idx: int) -> dict:
    """Generate one feed (in this process or a worker): its files and its part of the manifest."""
    landing_dir = Path(landing)
    manifest = Manifest(landing_dir / DEMO_DIR / f".manifest.{feed}.part")
    ctx = Context(landing=landing_dir, seed=seed, scale=scale, factor=SCALES[scale], start_idx=start_idx,
                  end_idx=end_idx, manifest=manifest, enterprises=Enterprises(seed), tick=_TICK)
    try:
        GENERATORS[feed](ctx).run()
    finally:
        manifest.close()
    return {"files": ctx.feed_files[feed], "rows": ctx.feed_rows[feed],
            "dirty_rows": manifest.dirty_rows[feed], "dirty": dict(manifest.dirty.get(feed, {})),
            "scenarios": dict(manifest.scenarios.get(feed, {})),
            "dirty_years": sorted(manifest.dirty_years.get(feed, ())), "lines": manifest.lines,
            "per_year": {y: dict(c) for y, c in ctx.per_year.items()}, "kpi": ctx.kpi}


GENERATORS = {"district": DistrictGenerator, "techmarket": TechmarketGenerator, "bank": BankGenerator,
              "hr": HrGenerator}


def generate(landing_dir: Path | str, *, seed: int = 20200305, scale: str = "city",
             start: str = "2019-01", end: str = "2022-12", feeds: tuple[str, ...] = FEED_ORDER,
             overwrite: bool = False, workers: int | None = None,
             progress: Progress | None = None) -> DemoSummary:
    """Write the demo landing area under ``landing_dir`` and return what was written.

    ``scale``: ``city`` (the corridor's real magnitudes), ``province`` (×20 rows) or ``national``
    (×200 rows); the file set is the same. ``start``/``end``: ``YYYY-MM``, inclusive. Same
    arguments give byte-identical files, whatever ``workers`` is.

    The four feed folders and ``_demo`` are emptied first when they hold an earlier demo set
    (``_demo`` exists); feed files without ``_demo`` beside them may be real deliveries, so
    generation refuses to touch them unless ``overwrite`` is set. Other content of
    ``landing_dir`` is left alone. ``feeds``: a subset (for timing). ``workers``: feeds generated
    in parallel processes (default: 1 at city scale, else up to 4 or the CPU count).
    ``progress``: where feed-months done are counted (default: a :class:`corridor.progress.Progress`
    on stderr when it is a terminal, and a log line per ~5 % on this module's logger).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r} (expected one of {', '.join(SCALES)})")
    unknown = set(feeds) - set(FEED_ORDER)
    if unknown:
        raise ValueError(f"unknown feed(s) {sorted(unknown)} (expected some of {', '.join(FEED_ORDER)})")
    feeds = tuple(f for f in FEED_ORDER if f in feeds)
    start_idx, end_idx = month_index(*parse_month(start)), month_index(*parse_month(end))
    if end_idx < start_idx:
        raise ValueError(f"end {end} is before start {start}")
    if start_idx < month_index(2015, 1):
        raise ValueError(f"start {start} is before 2015-01: the feeds' dates begin on 2015-01-01")
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    _clear(landing, overwrite)
    (landing / DEMO_DIR).mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = 1 if scale == "city" else min(4, os.cpu_count() or 1)
    args = [(feed, str(landing), seed, scale, start_idx, end_idx) for feed in feeds]
    own_progress = progress is None
    if progress is None:
        progress = Progress(f"generate {scale}", total=len(feeds) * (end_idx - start_idx + 1),
                            unit="feed-months", log=log)
    else:
        progress.set_total(len(feeds) * (end_idx - start_idx + 1))
    try:
        results = _run_feeds(args, workers, progress)
    except BaseException:
        if own_progress:
            progress.close(failed=True)
        raise
    if own_progress:
        progress.close()
    with (landing / DEMO_DIR / "manifest.jsonl").open("wb") as out:
        for feed in feeds:
            part = landing / DEMO_DIR / f".manifest.{feed}.part"
            with part.open("rb") as fh:
                shutil.copyfileobj(fh, out)
            part.unlink()
    per_year: dict[int, dict[str, int]] = {}
    kpi: dict[str, object] = {}
    for feed in feeds:
        for y, counts in results[feed]["per_year"].items():
            for k, v in counts.items():
                per_year.setdefault(y, {})[k] = per_year.get(y, {}).get(k, 0) + v
        kpi.update(results[feed]["kpi"])
    r = results
    summary = DemoSummary(
        landing_dir=str(landing), seed=seed, scale=scale, start=f"{start_idx // 12}-{start_idx % 12 + 1:02d}",
        end=f"{end_idx // 12}-{end_idx % 12 + 1:02d}",
        files={f: r[f]["files"] for f in feeds},
        rows={f: r[f]["rows"] for f in feeds},
        dirty_rows={f: r[f]["dirty_rows"] for f in feeds},
        dirty_share={f: round(r[f]["dirty_rows"] / r[f]["rows"], 4) if r[f]["rows"] else 0.0 for f in feeds},
        dirty={f: dict(sorted(r[f]["dirty"].items())) for f in feeds},
        scenarios={f: dict(sorted(r[f]["scenarios"].items())) for f in feeds},
        dirty_years={f: r[f]["dirty_years"] for f in feeds},
        per_year={str(y): dict(sorted(c.items())) for y, c in sorted(per_year.items())},
        kpi_preview={k: kpi[k] for k in sorted(kpi)},
        manifest_lines=sum(r[f]["lines"] for f in feeds),
        manifest_version=MANIFEST_VERSION,
    )
    (landing / DEMO_DIR / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    return summary


_WEIGHT = {"district": 0, "techmarket": 1, "bank": 2, "hr": 3}


def _run_feeds(args: list[tuple], workers: int, progress: Progress) -> dict[str, dict]:
    global _TICK
    if workers > 1 and len(args) > 1:
        queue = multiprocessing.get_context().Queue()
        drainer = threading.Thread(target=_drain, args=(queue, progress), daemon=True)
        drainer.start()
        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(args)), initializer=_init_worker,
                                     initargs=(queue,)) as pool:
                # the big feeds first, so that the small ones fill the gaps
                futures = {a[0]: pool.submit(_run_feed, *a) for a in sorted(args, key=lambda a: _WEIGHT[a[0]])}
                return {a[0]: futures[a[0]].result() for a in args}
        finally:
            queue.put(None)
            drainer.join(timeout=10)
    previous, _TICK = _TICK, (lambda: progress.advance(1))
    try:
        return {a[0]: _run_feed(*a) for a in args}
    finally:
        _TICK = previous


def _clear(landing: Path, overwrite: bool) -> None:
    """Remove an earlier demo set; refuse to remove feed files that may be real deliveries."""
    occupied = [sub for sub in FEED_ORDER if (landing / sub).is_dir() and any((landing / sub).iterdir())]
    if occupied and not (landing / DEMO_DIR).is_dir() and not overwrite:
        raise FileExistsError(
            f"{landing} already holds feed files ({', '.join(occupied)}) and no {DEMO_DIR}/ folder: "
            "not a demo set; refusing to overwrite (use overwrite=True, or another folder)")
    for sub in (*FEED_ORDER, DEMO_DIR):
        if (landing / sub).is_dir():
            shutil.rmtree(landing / sub)


def main(argv: list[str] | None = None) -> int:
    """``python -m corridor.demo --landing DIR [--seed N] [--scale city] [--start YYYY-MM] [--end YYYY-MM]``."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="corridor-demo", description="Generate the demo landing area.")
    parser.add_argument("--landing", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=20200305)
    parser.add_argument("--scale", choices=tuple(SCALES), default="city")
    parser.add_argument("--start", default="2019-01")
    parser.add_argument("--end", default="2022-12")
    parser.add_argument("--feeds", default=",".join(FEED_ORDER))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace feed files even when the folder holds no earlier demo set")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    s = generate(args.landing, seed=args.seed, scale=args.scale, start=args.start, end=args.end,
                 feeds=tuple(x for x in args.feeds.split(",") if x), workers=args.workers,
                 overwrite=args.overwrite)
    took = time.perf_counter() - t0
    for feed in s.files:
        print(f"{feed:<11} files {s.files[feed]:>6}  rows {s.rows[feed]:>10,}  dirty {s.dirty_rows[feed]:>7,} "
              f"({s.dirty_share[feed]:.1%})")
    print(f"{'total':<11} files {s.total_files:>6}  rows {s.total_rows:>10,}  in {took:.1f} s")
    return 0
