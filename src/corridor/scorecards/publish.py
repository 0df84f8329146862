"""Render and publish scorecards: files under CORRIDOR_OUTPUT_DIR, editions recorded, e-mail sent.

`render` writes one scorecard in the three formats. `publish` is the
publication step of the plan's rhythm:

1. refuses (raises `GateBlocked`) when the quality gate blocks: no file is
   written, nothing is recorded or sent;
2. per edition × period, loads the data of every area once (``ALL`` and the
   six: one query per kind of data, `load_scorecards`), then per area compares
   the scorecard's canonical sha256 with the latest recorded edition of the
   same edition × period × area:
   - none recorded: renders edition 1, records it (`published`);
   - same data: records nothing, reuses the published files (`unchanged`;
     a published file that has gone missing is restored when a re-render
     gives the recorded bytes);
   - other data (a restatement): leaves the published edition alone
     (`restated`, logged) unless ``republish=True``, which renders and
     records edition_no + 1 with new files (`republished`);
   (progress: a terminal line and a log line per scorecard, `corridor.progress`);
3. e-mails each area's current edition (PDF and XLSX attached) to its
   recipients, once per edition and address, when an SMTP connection is
   configured: also an edition whose data changed since (`restated`), since
   the published edition is what is owed until it is re-published.

`follow_up_provisional` (the publish DAG's run after each rebuild) re-publishes, as edition_no + 1, each
area × edition × period whose latest edition is provisional and whose period is complete now (the late
report loaded and built), and nothing else.

Files: ``<out_dir>/scorecards/<year>/<edition>/<area>/
corridor-scorecard_<period>_<edition>_<area>_v<n>.<pdf|xlsx|html>`` (ASCII
names: safe as e-mail attachments and on any file system; the titles inside
are Chinese). A recorded file is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import logging.handlers
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg

import corridor.pdf
from corridor import config, transform
from corridor.progress import Progress
from corridor.scorecards import delivery, registry
from corridor.scorecards.completeness import Completeness, completeness_by_area
from corridor.scorecards.data import (
    ALL,
    AREA_ORDER,
    Scorecard,
    latest_period,
    load_scorecard,
    load_scorecards,
)
from corridor.scorecards.editions import EDITIONS
from corridor.scorecards.editions import edition as edition_of
from corridor.scorecards.gate import check_gate, check_gate_is_current
from corridor.scorecards.render_html import render_html
from corridor.scorecards.render_pdf import pdf_html, render_pdf
from corridor.scorecards.render_xlsx import render_xlsx
from corridor.workers import process_pool

log = logging.getLogger(__name__)

FORMATS = ("pdf", "xlsx", "html")


# -- rendering ---------------------------------------------------------------------------------

def file_stem(edition: str, period_start: date, area: str, edition_no: int | None) -> str:
    ed = edition_of(edition)
    stem = f"corridor-scorecard_{ed.period_slug(period_start)}_{ed.code}_{area}"
    return stem + (f"_v{edition_no}" if edition_no else "")


def edition_dir(out_dir: Path, edition: str, period_start: date, area: str) -> Path:
    return Path(out_dir) / "scorecards" / str(period_start.year) / edition_of(edition).code / area


def render_bytes(sc: Scorecard) -> dict[str, bytes]:
    return {"pdf": render_pdf(sc), "xlsx": render_xlsx(sc), "html": render_html(sc).encode("utf-8")}


def _write_atomic(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write_scorecard(sc: Scorecard, target_dir: Path) -> dict[str, tuple[Path, str, int]]:
    """Render the three formats into target_dir; {format: (path, sha256, bytes)}."""
    return _write_contents(sc, target_dir, render_bytes(sc))


def _write_contents(sc: Scorecard, target_dir: Path, contents: dict[str, bytes]) -> dict[str, tuple[Path, str, int]]:
    stem = file_stem(sc.edition.code, sc.period_start, sc.area_code, sc.edition_no)
    out = {}
    try:
        for fmt in FORMATS:
            path = Path(target_dir) / f"{stem}.{fmt}"
            _write_atomic(path, contents[fmt])
            out[fmt] = (path, _sha256(contents[fmt]), len(contents[fmt]))
    except BaseException:
        _remove_unrecorded(out)  # a full disk, a folder not writable: no part of an edition left behind
        raise
    return out


def _remove_unrecorded(files: dict[str, tuple[Path, str, int]]) -> None:
    """Delete the files of an edition that is not recorded (its writing or recording failed): a file left under
    an edition's name would read as published, and was never recorded or mailed."""
    for path, *_ in files.values():
        with contextlib.suppress(OSError):
            path.unlink()


# -- rendering in worker processes ------------------------------------------------------------
#
# WeasyPrint and xlsxwriter are pure-Python CPU work. `publish` lays out the PDFs in ``workers``
# spawned processes (default: CORRIDOR_PUBLISH_WORKERS, else 2 when the machine has two CPUs or
# more; 0: everything in the publishing process), one scorecard per task, while the publishing
# process writes the same scorecard's XLSX and HTML and keeps the registry work (lock, check,
# record), in one thread per worker and one more. A worker is sent what the page shows, the PDF's
# HTML (`render_pdf.pdf_html`, made here), not the scorecard, and runs `corridor.pdf` only (the page's
# font subset and WeasyPrint, not the scorecards package). Its log records are forwarded to the
# parent's loggers.

def publish_workers() -> int:
    """PDF rendering processes for `publish`: CORRIDOR_PUBLISH_WORKERS, else 2 with two CPUs or more, else 0
    (0: every format in the publishing process). Two: the PDFs are ~70 % of the CPU, so one worker was the
    critical path while the publishing process waited; a worker that is sent only the page's HTML is ~95 MiB at
    province scale, so two keep the process tree near 320 MiB (one: ~230; benchmarks/README.md)."""
    return config.env_int("CORRIDOR_PUBLISH_WORKERS", 2 if (os.cpu_count() or 1) >= 2 else 0, minimum=0)


class _Renderers:
    """A pool of PDF rendering processes with their log forwarding; ``write(sc, dir)`` blocks until written
    (the XLSX and HTML are rendered in the calling thread while a worker lays out the PDF)."""

    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.listener = threading.Thread(target=self._forward, name="publish-log-forwarder", daemon=True)
        self.listener.start()
        self.pool = process_pool(workers, initializer=corridor.pdf.worker_init, initargs=(self.queue,))

    def _forward(self) -> None:
        while True:
            record = self.queue.get()
            if record is None:
                return
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)

    def write(self, sc: Scorecard, target_dir: Path) -> dict[str, tuple[Path, str, int]]:
        # the worker gets the page's HTML (a string), never the scorecard, which this thread goes on reading for
        # the XLSX and HTML
        pdf = self.pool.submit(corridor.pdf.worker_html_to_pdf, pdf_html(sc))
        try:
            xlsx, html = render_xlsx(sc), render_html(sc).encode("utf-8")
        except BaseException:
            with contextlib.suppress(Exception):  # the worker is done with it before the error goes up
                pdf.result()
            raise
        return _write_contents(sc, target_dir, {"pdf": pdf.result(), "xlsx": xlsx, "html": html})

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.queue.put(None)
        self.listener.join(timeout=10)
        self.queue.close()


def render(url: str, *, edition: str, period_start: date, area: str, gate: dict | None, out_dir: Path,
           edition_no: int | None = None) -> dict[str, Path]:
    """Render one scorecard (area or ALL) as PDF, XLSX and HTML into ``out_dir``; {format: path}.

    Records nothing and sends nothing (that is `publish`). Without ``edition_no``
    the files carry no version (a preview). Reads as `publish` does, never while a dbt command writes.
    """
    with transform.warehouse_read(url, "preview", log.info):
        sc = load_scorecard(url, edition, period_start, area, gate, edition_no=edition_no)
    return {fmt: path for fmt, (path, _, _) in write_scorecard(sc, Path(out_dir)).items()}


# -- publishing --------------------------------------------------------------------------------

@dataclass
class PublishedScorecard:
    edition: str
    period_start: date
    period_end: date
    area_code: str
    area_name: str
    status: str              # published / republished / unchanged / restated
    edition_no: int          # the edition the files are (for `restated`: the one still published)
    files: dict[str, Path]
    data_sha256: str
    data_as_of: date
    checkpoint_outcome: str
    provisional: bool
    missing: list[str]
    emailed_to: list[str] = field(default_factory=list)
    scorecard: Scorecard | None = field(default=None, repr=False)

    @property
    def recorded(self) -> bool:
        return self.status in ("published", "republished")


@dataclass
class PublishResult:
    scorecards: list[PublishedScorecard] = field(default_factory=list)
    smtp_configured: bool | None = None   # None: sending not asked for
    emails_sent: int = 0
    send_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def recorded(self) -> list[PublishedScorecard]:
        return [s for s in self.scorecards if s.recorded]

    @property
    def restated(self) -> list[PublishedScorecard]:
        return [s for s in self.scorecards if s.status == "restated"]


def _attestation(sc: Scorecard) -> dict:
    gate = sc.gate or {}
    return {
        "gate": {k: gate.get(k) for k in ("blocking", "outcome", "suites", "expectations", "failed", "warnings",
                                          "data_docs", "build_id")},
        "completeness": {"publishable": sc.completeness.publishable, "missing": sc.completeness.missing,
                         "source": sc.completeness.source},
    }


def _restore_missing_files(sc: Scorecard, rec: registry.RecordedEdition) -> None:
    """Published files are frozen; one that has gone missing is rewritten only when the bytes match the record."""
    absent = {fmt: (path, sha) for fmt, (path, sha) in rec.files.items() if not path.is_file()}
    if not absent:
        return
    sc.as_of = rec.data_as_of
    sc.gate = (rec.attestation or {}).get("gate") or sc.gate
    sc.edition_no = rec.edition_no
    contents = render_bytes(sc)
    for fmt, (path, sha) in absent.items():
        if _sha256(contents[fmt]) == sha:
            _write_atomic(path, contents[fmt])
            log.warning("restored published file %s (bytes match the recorded sha256)", path)
        else:
            log.error("published file %s is missing and cannot be re-created byte for byte "
                      "(recorded sha256 %s); re-publish the period to issue a new edition", path, sha)


def _publish_one(url: str, out_dir: Path, sc: Scorecard, republish: bool,
                 write: Callable[[Scorecard, Path], dict] = write_scorecard,
                 follow_up: bool = False) -> PublishedScorecard:
    edition, period_start, area = sc.edition.code, sc.period_start, sc.area_code
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"scorecard:{edition}:{period_start}:{area}",))
        rec = registry.latest_edition(conn, edition, period_start, area)
        if follow_up:
            # a provisional edition's follow-up: re-publish only while the latest edition is still provisional
            # and the scorecard now is not (another publication may have issued the final edition meanwhile)
            republish = rec is not None and rec.provisional and not sc.provisional
        if rec is not None and (rec.data_sha256 == sc.data_sha256 or not republish):
            status = "unchanged" if rec.data_sha256 == sc.data_sha256 else "restated"
            if status == "unchanged":
                _restore_missing_files(sc, rec)
            else:
                log.warning("%s: the data (values, lists or completeness) changed since edition %d was published "
                            "(restatement); the published edition stays as it is: publish with republish=True "
                            "to issue edition %d",
                            sc.full_title, rec.edition_no, rec.edition_no + 1)
            return PublishedScorecard(
                edition, period_start, rec.period_end, area, sc.area_name, status, rec.edition_no,
                {fmt: path for fmt, (path, _) in rec.files.items()}, rec.data_sha256, rec.data_as_of,
                rec.checkpoint_outcome, rec.provisional, rec.missing, scorecard=_as_published(sc, rec))
        sc.edition_no = 1 if rec is None else rec.edition_no + 1
        files = write(sc, edition_dir(out_dir, edition, period_start, area))
        try:
            registry.record_edition(
                conn, edition=edition, period_start=period_start, period_end=sc.period_end, area=area,
                edition_no=sc.edition_no, files=files, data_sha256=sc.data_sha256, data_as_of=sc.as_of,
                checkpoint_outcome=sc.gate_outcome, provisional=sc.provisional, missing=sc.completeness.missing,
                attestation=_attestation(sc))
        except BaseException:
            _remove_unrecorded(files)
            raise
    return PublishedScorecard(
        edition, period_start, sc.period_end, area, sc.area_name, "published" if sc.edition_no == 1 else "republished",
        sc.edition_no, {fmt: path for fmt, (path, _, _) in files.items()}, sc.data_sha256, sc.as_of,
        sc.gate_outcome, sc.provisional, sc.completeness.missing, scorecard=sc)


def _as_published(sc: Scorecard, rec: registry.RecordedEdition) -> Scorecard:
    """The scorecard as its recorded edition shows it (for the e-mail of an edition not yet delivered to every
    recipient). After a restatement (other data than the edition's) its completeness is the edition's too; the
    e-mail then leaves out what only the data shows (status counts, ranking: `delivery.body_html`)."""
    sc.as_of = rec.data_as_of
    sc.gate = (rec.attestation or {}).get("gate") or sc.gate
    sc.edition_no = rec.edition_no
    if rec.data_sha256 != sc.data_sha256:
        recorded = (rec.attestation or {}).get("completeness") or {}
        sc.completeness = Completeness(publishable=not rec.provisional, missing=list(rec.missing),
                                       source=recorded.get("source") or sc.completeness.source)
    return sc


def _deliver(url: str, result: PublishResult, recipients_file: Path | None) -> None:
    conn_id = delivery.smtp_conn_id()
    result.smtp_configured = delivery.smtp_configured(conn_id)
    if not result.smtp_configured:
        log.warning("SMTP not configured: nothing sent (no Airflow connection %r)", conn_id)
        return
    recipients = delivery.load_recipients(recipients_file)
    messages: list[delivery.Message] = []
    with psycopg.connect(url) as conn:
        # The published edition is what is owed, also after a restatement (`restated`: the data changed since,
        # the edition stays until re-published): each address of the area it was not delivered to yet.
        for item in result.scorecards:
            if item.scorecard is None:
                continue
            everyone = recipients.for_area(item.area_code)
            if not everyone:
                log.warning("no recipients for area %s in %s: %s not sent", item.area_code, recipients.path,
                            item.files.get("pdf"))
                continue
            done = registry.delivered_to(conn, item.edition, item.period_start, item.area_code, item.edition_no)
            to = [address for address in everyone if address not in done]
            if not to:
                continue
            files = [item.files["pdf"], item.files["xlsx"]]
            missing = [p for p in files if not p.is_file()]
            if missing:
                result.send_failures.append(f"{item.area_code}: missing {', '.join(map(str, missing))}")
                continue
            sc = item.scorecard
            body = delivery.body_html(sc, [p.name for p in files], data_sha256=item.data_sha256,
                                      data_summary=item.status != "restated")
            messages.append(delivery.Message(sc, to, delivery.subject(sc), body, files))

    def on_sent(message: delivery.Message, accepted: list[str]) -> None:
        sc = message.scorecard
        with psycopg.connect(url) as conn:
            registry.record_delivery(conn, edition=sc.edition.code, period_start=sc.period_start, area=sc.area_code,
                                     edition_no=sc.edition_no, recipients=accepted, subject=message.subject,
                                     smtp_conn_id=conn_id)
        for item in result.scorecards:
            if item.scorecard is sc:
                item.emailed_to += accepted
        result.emails_sent += 1

    # Two publications of one edition (the publish DAG's run and `corridor scorecards publish`, say) must not
    # both mail it: each message is claimed first, by an advisory lock held until this delivery ends, and
    # checked again under it (the other may have sent it since the list above was made): it goes to the
    # addresses still owed.
    with psycopg.connect(url, autocommit=True) as claims:
        def claim(message: delivery.Message) -> bool:
            sc = message.scorecard
            key = f"scorecard-delivery:{sc.edition.code}:{sc.period_start}:{sc.area_code}:{sc.edition_no}"
            if not claims.execute("select pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:
                log.info("%s v%d: another publication is sending it", sc.full_title, sc.edition_no)
                return False
            done = registry.delivered_to(claims, sc.edition.code, sc.period_start, sc.area_code, sc.edition_no)
            message.to = [address for address in message.to if address not in done]
            return bool(message.to)

        failures = delivery.send(messages, conn_id, recipients.sender, on_sent, claim)
    result.send_failures += [f"{m.scorecard.area_code}: {delivery.describe_failure(exc)}" for m, exc in failures]


def publish(url: str, out_dir: Path, *, gate, edition: str | None = None, period_start: date | None = None,
            areas: list[str] | None = None, republish: bool = False, send: bool = True,
            recipients_file: Path | None = None, workers: int | None = None) -> PublishResult:
    """Publish the scorecards of ``edition`` for ``period_start`` (default: the latest complete period).

    ``edition=None`` publishes every edition (monthly, quarterly, year_end) at
    its latest complete period. ``areas`` defaults to ALL and the six areas.
    Raises GateBlocked (nothing written, recorded or sent) when the gate
    blocks or did not validate the warehouse as it is (``check_gate_is_current``:
    a later build, a dbt command that wrote since, a gate that does not say which
    build it validated), PeriodNotAvailable when the period is not complete in the
    warehouse. No dbt command writes the warehouse while it reads and renders
    (``transform.warehouse_read``: it waits for a running one). Sending failures are collected in ``send_failures`` and raised
    as RuntimeError after everything else is done (a rerun sends what is left). ``workers``: PDF rendering
    processes (default `publish_workers`; 0 renders every format in this process).
    """
    gate = check_gate(gate)
    if period_start is not None and edition is None:
        raise ValueError("period_start needs an edition")
    started = time.perf_counter()
    # No dbt command writes while the scorecards are read and rendered (a table a build replaces would read
    # as empty in this publication's snapshot), and they show what the gate validated.
    with transform.warehouse_read(url, "publication", log.info):
        check_gate_is_current(url, gate)
        result = _publish_read(url, out_dir, gate, edition, period_start, areas, republish, workers)
    try:
        if send:
            deliver(url, result, recipients_file)
    finally:
        result.seconds = time.perf_counter() - started
    return result


def deliver(url: str, result: PublishResult, recipients_file: Path | None = None) -> None:
    """E-mail the scorecards of ``result`` (from ``publish(..., send=False)``) not delivered yet, and record
    each delivery; raises RuntimeError naming the areas not sent (a rerun sends what is left).

    For a caller that holds ``transform.warehouse_read`` around its publications (the publish DAG's task, the
    CLI's gate and publication): it publishes with ``send=False`` and calls this once the lock is released, so
    that a slow or unreachable mail server does not keep a build waiting (``publish`` itself sends after its
    own lock). A recipients file that cannot be read, or no sender, raises RuntimeError too (nothing sent)."""
    try:
        _deliver(url, result, recipients_file)
    except delivery.RecipientsError as exc:
        raise RuntimeError(f"scorecards published but not sent: {exc}") from None
    if result.send_failures:
        raise RuntimeError("scorecards published but not all sent: " + "; ".join(result.send_failures))


def deliver_all(url: str, results: list[PublishResult], recipients_file: Path | None = None) -> None:
    """`deliver` each of ``results``, every one tried; then raise RuntimeError naming all that was not sent."""
    failures = []
    for result in results:
        try:
            deliver(url, result, recipients_file)
        except RuntimeError as exc:
            failures.append(str(exc))
    if failures:
        raise RuntimeError("; ".join(failures))


def provisional_editions(url: str) -> list[registry.RecordedEdition]:
    """The (edition, period_start, area) whose latest recorded edition is provisional (no files read)."""
    registry.ensure_registry(url)
    with psycopg.connect(url) as conn:
        return registry.latest_provisional(conn)


def follow_up_provisional(url: str, out_dir: Path, *, gate, send: bool = True, recipients_file: Path | None = None,
                          workers: int | None = None) -> list[PublishResult]:
    """Issue the final edition of each provisional edition whose period is now complete; one PublishResult per
    edition × period that had one (empty: none became complete).

    For each (edition, period_start, area) whose latest recorded edition is provisional, the period's
    completeness is read again for that area (`completeness.completeness_by_area`, the rule the scorecards
    show): when nothing is missing now (the late report was loaded and the last build read it), the area's
    scorecard is published again as edition n + 1, as ``publish(..., republish=True)`` would (`republished`),
    and only for those areas and periods. An area whose period is still incomplete keeps its edition (no new
    one). The gate rules, the read lock and the e-mail are `publish`'s (``send=False``: `deliver` after the
    caller's lock, as the publish DAG's task does).
    """
    gate = check_gate(gate)
    results: list[PublishResult] = []
    with transform.warehouse_read(url, "publication", log.info):
        check_gate_is_current(url, gate)
        pending: dict[tuple[str, date], list[str]] = {}
        for rec in provisional_editions(url):
            pending.setdefault((rec.edition, rec.period_start), []).append(rec.area_code)
        for (ed, period), areas in sorted(pending.items(), key=lambda kv: (list(EDITIONS).index(kv[0][0]), kv[0][1])):
            now = completeness_by_area(url, EDITIONS[ed].grain, period, areas)
            complete = [a for a in areas if now[a].publishable]
            still = [a for a in areas if not now[a].publishable]
            if still:
                log.info("%s: still provisional for %s (missing: %s): no new edition", EDITIONS[ed].title(period),
                         ", ".join(still), "; ".join(dict.fromkeys(m for a in still for m in now[a].missing)))
            if not complete:
                continue
            log.info("%s: complete now for %s, published provisional: the final edition follows",
                     EDITIONS[ed].title(period), ", ".join(complete))
            started = time.perf_counter()
            result = _publish_read(url, out_dir, gate, ed, period, complete, True, workers, follow_up=True)
            result.seconds = time.perf_counter() - started
            results.append(result)
    if send:
        deliver_all(url, results, recipients_file)
    return results


def _publish_read(url: str, out_dir: Path, gate: dict, edition: str | None, period_start: date | None,
                  areas: list[str] | None, republish: bool, workers: int | None,
                  follow_up: bool = False) -> PublishResult:
    """`publish`'s reading, rendering and recording (under its read lock); ``follow_up``: see `_publish_one`."""
    registry.ensure_registry(url)
    result = PublishResult()
    wanted = [ALL, *AREA_ORDER] if areas is None else [a.upper() for a in areas]
    editions = [edition_of(edition).code] if edition else list(EDITIONS)
    total = len(editions) * len(wanted)
    n_workers = min(publish_workers() if workers is None else workers, total)
    renderers = _Renderers(n_workers) if n_workers > 0 else None
    try:
        with Progress("publish scorecards", total=total, unit="scorecards", log=log, every=1) as progress:
            if renderers is None:
                for ed in editions:
                    # one edition × period at a time: its data fetched once for every area, each rendered once
                    period = period_start or latest_period(url, ed)
                    cards = load_scorecards(url, ed, period, wanted, gate)
                    for area in wanted:
                        result.scorecards.append(_publish_one(url, Path(out_dir), cards.pop(area), republish,
                                                           follow_up=follow_up))
                        progress.advance(1)
                    del cards
            else:
                # the same, with the PDFs laid out in the worker processes: one registry thread per worker and
                # one more (each holds its scorecard's advisory lock while it renders the XLSX and HTML and a
                # worker the PDF; the extra one keeps the next PDF queued for a worker); results in the same
                # order. The next edition's data is fetched and queued while the workers still render the
                # previous one's (no pause between editions); at most two editions' data in memory.
                def one(sc: Scorecard) -> PublishedScorecard:
                    item = _publish_one(url, Path(out_dir), sc, republish, renderers.write, follow_up)
                    progress.advance(1)
                    return item

                with ThreadPoolExecutor(max_workers=n_workers + 1, thread_name_prefix="publish") as threads:
                    previous: list[Future] = []
                    for ed in editions:
                        period = period_start or latest_period(url, ed)
                        cards = load_scorecards(url, ed, period, wanted, gate)
                        queued = [threads.submit(one, cards.pop(area)) for area in wanted]
                        del cards
                        result.scorecards += [f.result() for f in previous]
                        previous = queued
                    result.scorecards += [f.result() for f in previous]
                    del previous
    finally:
        if renderers is not None:
            renderers.close()
    return result


# -- reporting ---------------------------------------------------------------------------------

def _size(path: Path) -> str:
    try:
        n = path.stat().st_size
    except OSError:
        return "missing"
    return f"{n / 1024:,.0f} KB" if n >= 1024 else f"{n} B"


def format_publish_result(result: PublishResult, root: Path | None = None) -> str:
    """What make run prints: per scorecard its status, edition and the files with their sizes."""
    lines = []
    current = None
    for item in result.scorecards:
        ed = EDITIONS[item.edition]
        key = (item.edition, item.period_start)
        if key != current:
            current = key
            lines.append(f"{ed.title(item.period_start)} ({item.edition} {item.period_start}..{item.period_end}), "
                         f"data as of {item.data_as_of}, quality gate: {item.checkpoint_outcome}"
                         + (", PROVISIONAL" if item.provisional else ""))
        note = {"published": "published", "republished": "re-published", "unchanged": "unchanged, already published",
                "restated": "DATA RESTATED since publication: re-publish explicitly to issue a new edition"}
        lines.append(f"  {item.area_code:<4} v{item.edition_no}  {note[item.status]}"
                     + (f"; e-mailed to {', '.join(item.emailed_to)}" if item.emailed_to else ""))
        for fmt in FORMATS:
            path = item.files.get(fmt)
            if path is None:
                continue
            shown = path
            if root is not None:
                try:
                    shown = path.relative_to(root)
                except ValueError:
                    pass
            lines.append(f"         {fmt:<4} {_size(path):>9}  {shown}")
    if result.smtp_configured is False:
        lines.append("SMTP not configured: nothing sent")
    elif result.smtp_configured:
        lines.append(f"e-mails sent: {result.emails_sent}")
    lines.append(f"({len(result.scorecards)} scorecards in {result.seconds:.1f} s)")
    return "\n".join(lines)
