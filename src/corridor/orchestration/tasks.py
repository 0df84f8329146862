"""Bodies of the Airflow tasks: thin calls into the package, reading settings once."""

from __future__ import annotations

import logging
from datetime import date

from corridor import config, db
from corridor.orchestration.alerts import fails_at_once_on_a_setting

log = logging.getLogger(__name__)

# The relation a built warehouse always has: the KPI layer's contract model.
BUILT_MARKER = "kpi.kpi_values"


class WarehouseNotBuilt(RuntimeError):
    pass


# -- ingest ------------------------------------------------------------------------------------

@fails_at_once_on_a_setting
def load_feed(feed: str, run_started=None, as_of=None) -> dict:
    """The load task: every new file of the feed; the summary, with ``files_loaded_in_run``.

    ``as_of`` is the run's data interval end: whether the feed has gone silent is judged as of then (a retry
    or a rerun judges as its run did; None, a run with no data interval: now).

    ``run_started`` is the DAG run's start: ``files_loaded_in_run`` counts the feed's files loaded since
    then, this try's and an earlier try's of the same run. Files are committed one by one, so a try that
    failed after committing (the connection lost as it finished, the worker killed, its result not stored)
    leaves them loaded, and its retry finds them unchanged: the run must announce them all the same.
    """
    from corridor.ingest import ingest_feed

    settings = config.load()
    url = db.warehouse_url(settings)
    db.ensure_schema(url)
    summary = ingest_feed(url, feed, settings.landing_dir, pii_key=settings.pii_key(), as_of=as_of)
    result = summary.as_dict()
    result["files_loaded_in_run"] = result["files_loaded"]
    if run_started is not None:
        with db.connect(url) as conn:
            in_run = conn.execute(
                "select count(*) from ops.load_ledger where feed = %s and status = 'loaded' and started_at >= %s",
                (feed, run_started)).fetchone()[0]
        result["files_loaded_in_run"] = max(result["files_loaded"], int(in_run))
    log.info("%s: %d file(s) loaded, %d rows received, %d loaded, %d quarantined, %d rejected file(s)",
             feed, result["files_loaded"], result["rows_received"], result["rows_loaded"],
             result["rows_quarantined"], result["files_rejected"])
    if result["files_loaded_in_run"] > result["files_loaded"]:
        log.info("%s: %d file(s) loaded by an earlier try of this run", feed,
                 result["files_loaded_in_run"] - result["files_loaded"])
    if result["warnings"]:
        feed_silent(feed, result["warnings"], settings.landing_dir)
    return result


def feed_silent(feed: str, warnings: list[str], landing_dir) -> bool:
    """Mail the data team that a feed has delivered nothing new for longer than its rhythm allows
    (``ingest.silence_warning``: 4 days for the daily technology market, 45 for the monthly feeds).

    A warning, not a failure: the run goes on, and every daily run mails it again until the feed delivers.
    The build DAG's daily freshness check fails only when nothing at all was loaded for a week; one feed
    that stops while the others deliver is this mail."""
    from corridor.orchestration import alerts

    lines = [*warnings, "",
             f"Landing folder: {landing_dir}/{feed}/ (spec: shared/feeds/README.md).",
             "The ingest run goes on: this is a warning, sent by every daily run until the feed delivers."]
    return alerts.send(f"[corridor] FEED SILENT: {feed}: nothing new received", lines)


def announce_new_data(summary: dict) -> None:
    """The outlet task's body: skip (no Asset event, no rebuild) when the run (any of its tries) loaded no file."""
    from airflow.sdk.exceptions import AirflowSkipException

    loaded = summary.get("files_loaded_in_run", summary["files_loaded"])
    if not loaded:
        raise AirflowSkipException(f"{summary['feed']}: no new file loaded: no Asset event, no rebuild")
    log.info("%s: %d new file(s) loaded: Asset event for the build", summary["feed"], loaded)


def fail_on_rejections(summary: dict) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    if summary["rejected"]:
        lines = [f"{summary['feed']}: {len(summary['rejected'])} file(s) rejected (see ops.load_ledger):"]
        lines += [f"  - {r['file']}: {r['reason']}" for r in summary["rejected"]]
        raise AirflowFailException("\n".join(lines))


# -- publish -----------------------------------------------------------------------------------

def check_warehouse_built(url: str) -> None:
    """Raise WarehouseNotBuilt, in one line, unless dbt has built the KPI layer in this database and no dbt
    command has written models since the last successful whole build (``transform.unverified_writes``: a
    build that failed, was killed or is still running, a selection, `dbt run`): the marts and the KPI layer
    may then be half-rebuilt (a failed test's downstream models skipped), or hold rows no test has read."""
    from corridor.transform import unverified_commands

    name = db.libpq_params(url).get("dbname", "?")
    with db.connect(url) as conn:
        built = conn.execute("select to_regclass(%s) is not null", (BUILT_MARKER,)).fetchone()[0]
    if not built:
        raise WarehouseNotBuilt(
            f"warehouse {name!r} has never been built (no {BUILT_MARKER}): run build_warehouse "
            f"(or `make run`) before publishing")
    unverified = unverified_commands(url)
    if unverified:
        command, started = unverified[-1]
        raise WarehouseNotBuilt(
            f"warehouse {name!r}: `{command}` (started {started:%Y-%m-%d %H:%M:%S %Z}"
            + (f", the last of {len(unverified)} such commands" if len(unverified) > 1 else "")
            + ") wrote models and no whole dbt build has passed since (it failed, was killed, is still running,"
            " or was a partial one): the marts and the KPI layer may be half-rebuilt; publication waits for a"
            " successful build_warehouse run (or `corridor dbt build`), whose log names what failed")


def gate_validates_every_row(run_type: str | None, data_interval_end) -> bool:
    """Whether a publish run's gate validates the raw rows of every loaded file, not only the new files'.

    Yes when the run publishes a quarterly or year-end edition (the scheduled or backfill run of the 12th of
    January, April, July and October): once a quarter every row is checked again, whatever an earlier gate
    passed, before the editions that officials compare over time. ``CORRIDOR_GATE_FULL`` forces it for any run.
    A run after each build and the other monthly runs validate only what no passing gate has validated yet.
    """
    from corridor.quality.gate import full_run

    if full_run():
        return True
    if run_type not in ("scheduled", "backfill") or data_interval_end is None:
        return False
    return any(edition != "monthly" for edition, _ in editions_for_run(run_type, data_interval_end) or [])


@fails_at_once_on_a_setting
def run_quality_gate(run_type: str | None = None, data_interval_end=None) -> dict:
    """The quality_gate task: one line on a never-built warehouse, else the GX checkpoints (every row when
    `gate_validates_every_row`)."""
    from airflow.sdk.exceptions import AirflowFailException

    url = db.warehouse_url(config.load())
    try:
        check_warehouse_built(url)
    except WarehouseNotBuilt as exc:
        raise AirflowFailException(str(exc)) from None

    from corridor.quality import QualityGateFailed, quality_gate

    full = gate_validates_every_row(run_type, data_interval_end)
    if full:
        log.info("this run publishes a quarterly or year-end edition (or %s is set): every loaded file's rows "
                 "are validated again", "CORRIDOR_GATE_FULL")
    try:
        return quality_gate(url, full=full)
    except QualityGateFailed as exc:
        raise AirflowFailException(str(exc)) from exc


def editions_for_run(run_type: str, data_interval_end) -> list[tuple[str | None, date | None]] | None:
    """What a publish run publishes, by its run type; None: nothing (checks only).

    - ``asset_triggered`` (the warehouse was rebuilt): no edition due, the checks are the point
      (`publish_for_run` then issues the final edition of each provisional one whose period the build
      completed: ``scorecards.follow_up_provisional``);
    - ``scheduled`` and ``backfill``: the editions due on the run's date
      (``editions_due(data_interval_end)``: the 12th of month M+1 publishes month
      M, and in Jan/Apr/Jul/Oct the quarter, in January the year). A backfill
      re-runs past 12ths exactly as their scheduled runs would have;
    - ``manual``: every edition at its latest complete period.
    """
    from corridor.scorecards.editions import editions_due

    if run_type == "asset_triggered":
        return None
    if run_type in ("scheduled", "backfill"):
        if data_interval_end is None:
            raise ValueError(f"a {run_type} run without a data interval cannot name its month")
        return list(editions_due(data_interval_end))
    return [(None, None)]


@fails_at_once_on_a_setting
def publish_for_run(gate: dict, run_type: str, data_interval_end) -> list:
    """The publish task: write (and mail) the scorecards the run is due; a frozen edition is not re-recorded.

    The scorecards show what ``gate`` validated; when a build ran after it (or it does not say which build
    it validated), the quality gate runs again first, in this task (``run_quality_gate``).

    A run after a rebuild (``asset_triggered``) has no edition due: it issues the final edition (n + 1) of each
    provisional edition whose period is complete now (``scorecards.follow_up_provisional``), and nothing else.

    Returns the PublishResults; logs what each edition did (``published``, or
    ``unchanged``/``restated``: nothing new recorded, see ``ops.scorecard_editions``).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from corridor.scorecards import (
        PeriodNotAvailable,
        deliver_all,
        follow_up_provisional,
        format_publish_result,
    )
    from corridor.scorecards import publish as publish_scorecards

    due = editions_for_run(run_type, data_interval_end)
    from corridor import transform

    settings = config.load()
    url = db.warehouse_url(settings)
    results = []
    # No build writes from here to the last scorecard read (transform.warehouse_read). One may have run since
    # this run's quality_gate task: the scorecards must show what a gate validated, so the gate runs again.
    with transform.warehouse_read(url, "publication", log.info):
        validated, current = (gate or {}).get("build_id", "unknown"), transform.last_build_id(url)
        if validated != current:
            log.info("the warehouse changed since this run's quality_gate task validated it (dbt build %s, now %s):"
                     " the gate runs again before publishing", validated, current)
            gate = run_quality_gate(run_type, data_interval_end)
        if due is None:
            # the warehouse was rebuilt: a late report it read may complete a period published as provisional
            results = follow_up_provisional(url, settings.output_dir, gate=gate, send=False)
            if results:
                log.info("warehouse rebuilt: checks passed; final edition of %d provisional scorecard(s) whose "
                         "period is complete now: %s", sum(len(r.recorded) for r in results),
                         ", ".join(f"{s.edition} {s.period_start} {s.area_code} v{s.edition_no}"
                                   for r in results for s in r.recorded))
            else:
                log.info("warehouse rebuilt: checks passed; no provisional edition became complete; scorecards go "
                         "out on the plan's rhythm")
        for edition, period_start in due or []:
            try:
                result = publish_scorecards(url, settings.output_dir, gate=gate, edition=edition,
                                            period_start=period_start, send=False)
            except PeriodNotAvailable as exc:
                # A retry minutes later finds the same data: fail now, in one line, and say how to catch up.
                raise AirflowFailException(
                    f"{run_type} run: {exc}; when the data is in, re-run this run (clear it, or "
                    f"`airflow backfill create ... --reprocess-behavior failed`)") from None
            results.append(result)
    # The e-mail once the read lock is released: a slow or unreachable mail server must not keep a build
    # waiting. Every edition's is tried; the task fails after, naming what was not sent (a retry sends it).
    try:
        deliver_all(url, results)
    finally:
        for result in results:
            log.info("%s run: %s", run_type, format_publish_result(result, settings.root))
    return results
