"""Alerts to the data team: failed tasks and runs, late scorecards, stale feeds.

Every DAG takes its ``default_args`` from :func:`default_args` (owner, retries
and the task failure callback; a task body that meets a setting it cannot use
fails at once, without its retries: :func:`fails_at_once_on_a_setting`) and
its DAG-level callbacks from :data:`DAG_CALLBACKS`; ``publish_scorecards`` also carries
:func:`scorecards_deadline`. All alerts are e-mails sent through the SMTP
provider's notifier (``SmtpNotifier``):

| alert                  | when                                               | sent by          |
|------------------------|----------------------------------------------------|------------------|
| :func:`task_failed`    | a task fails for good (after its retries)          | the task's worker|
| :func:`dag_failed`     | a run fails without a failed task (timeout, deadlock)| the dag-processor|
| :func:`scorecards_late`| the month's scheduled publish run has not succeeded by the 12th 12:00 Asia/Shanghai | the triggerer (deadline alert) |
| :func:`freshness_failed` | ``dbt source freshness`` reports a stale source   | a caller that wants dbt's output mailed |

The build DAG's ``source_freshness`` task (daily, and after each load) reports an error-level result by
failing: its :func:`task_failed` alert names each feed that stopped.

A run that fails because a task failed is reported once, by the task (its
e-mail has the error); the run's own callback stays quiet then.

Configuration (read when an alert is sent, never at DAG parse):

- recipients: ``data_team`` of ``config/alerts.yml`` (or the file
  ``CORRIDOR_ALERTS_FILE`` names); ``CORRIDOR_ALERT_TO`` (comma-separated)
  replaces them;
- SMTP: the Airflow connection ``smtp_default`` or the id in
  ``CORRIDOR_SMTP_CONN_ID`` (the scorecards' connection); without it the
  alert is logged as not sent, and nothing fails;
- sender: the connection's ``from_email`` extra, else ``sender`` of the file.

The message is built here and handed to ``SmtpNotifier`` as its final
subject and body (not as a Jinja template): error text may contain ``{{``.
"""

from __future__ import annotations

import functools
import html
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

OWNER = "corridor-data"
DEFAULT_SMTP_CONN_ID = "smtp_default"
ERROR_LINES = 20          # first lines of the error in a failure alert
FRESHNESS_LINES = 60      # first lines of dbt's freshness output

# publish_scorecards is scheduled on the 12th at 09:00 (Asia/Shanghai): its
# logical date plus this interval is the scorecards' deadline, 12:00.
SCORECARDS_DEADLINE_AFTER_SCHEDULE = timedelta(hours=3)


# -- configuration -----------------------------------------------------------------------------

class AlertConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AlertConfig:
    to: list[str]
    sender: str | None
    smtp_conn_id: str
    source: str


def alerts_path() -> Path:
    from corridor.config import project_root

    return Path(os.environ.get("CORRIDOR_ALERTS_FILE") or project_root() / "config" / "alerts.yml")


def _addresses(values, where: str) -> list[str]:
    if isinstance(values, str):
        values = values.split(",")
    out = [str(v).strip() for v in values or [] if str(v).strip()]
    bad = [a for a in out if "@" not in a or any(c in a for c in " ,;<>\r\n")]
    if bad:
        raise AlertConfigError(f"{where}: not e-mail addresses: {', '.join(bad)}")
    return out


def load_config() -> AlertConfig:
    """Recipients, sender and SMTP connection id of the alerts."""
    import yaml

    path = alerts_path()
    doc = {}
    if path.is_file():
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(doc, dict):
            raise AlertConfigError(f"{path}: expected a mapping with 'sender' and 'data_team'")
    elif os.environ.get("CORRIDOR_ALERTS_FILE"):
        raise AlertConfigError(f"alerts file {path} not found (CORRIDOR_ALERTS_FILE)")
    override = os.environ.get("CORRIDOR_ALERT_TO")
    if override:
        to, source = _addresses(override, "CORRIDOR_ALERT_TO"), "CORRIDOR_ALERT_TO"
    else:
        to, source = _addresses(doc.get("data_team"), f"{path}: data_team"), str(path)
    sender = doc.get("sender")
    if sender:
        from email.utils import formataddr, parseaddr

        name, address = parseaddr(str(sender))
        if "@" not in address:
            raise AlertConfigError(f"{path}: sender {sender!r} is not an e-mail address")
        sender = formataddr((name, address), charset="utf-8") if name else address
    conn_id = os.environ.get("CORRIDOR_SMTP_CONN_ID") or DEFAULT_SMTP_CONN_ID
    return AlertConfig(to=to, sender=sender or None, smtp_conn_id=conn_id, source=source)


# -- what every DAG uses -----------------------------------------------------------------------

def default_args(retries: int = 1, retry_delay: timedelta = timedelta(minutes=2), **extra) -> dict:
    """``default_args`` of every corridor DAG: owner, retries and the failure alert."""
    return {"owner": OWNER, "retries": retries, "retry_delay": retry_delay,
            "on_failure_callback": task_failed, **extra}


def fails_at_once_on_a_setting(task_body):
    """A task body that meets a setting it cannot use (config.ConfigError: a bad environment variable, a
    landing folder that is not there) fails at once, naming it: the DAG's retries, minutes apart, would meet
    the same setting, and a person running `corridor ingest` or `make run` waited for them (10 minutes for an
    ingest). AirflowFailException is Airflow's no-retry failure."""
    @functools.wraps(task_body)
    def run(*args, **kwargs):
        from airflow.sdk.exceptions import AirflowFailException

        from corridor.config import ConfigError

        try:
            return task_body(*args, **kwargs)
        except ConfigError as exc:
            raise AirflowFailException(str(exc)) from None

    return run


def dag_failed(context) -> None:
    """DAG-level ``on_failure_callback``: alert when a run fails for another reason than a failed task."""
    reason = str(context.get("reason") or "")
    if reason == "task_failure":
        log.info("run %s failed because a task failed: that task's alert reported it", context.get("run_id"))
        return
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or "?"
    run_id = context.get("run_id") or "?"
    lines = [f"DAG run failed: {dag_id}", "",
             f"DAG:     {dag_id}",
             f"Run:     {run_id}",
             f"Reason:  {reason or 'unknown'}",
             f"Log:     {_run_url(dag_id, run_id)}"]
    send(f"[corridor] FAILED run of {dag_id} ({reason or 'unknown'})", lines)


DAG_CALLBACKS = {"on_failure_callback": dag_failed}


def scorecards_deadline():
    """The deadline alert of ``publish_scorecards``: scorecards published by the 12th 12:00 Asia/Shanghai.

    A scheduled run's logical date is the 12th 09:00; the deadline is three
    hours later. A run that has not *succeeded* by then (still running,
    failed, or never started) calls :func:`scorecards_late` on the
    triggerer. Runs without a logical date (Asset-triggered checks) get no
    deadline; backfill and manual runs get one from Airflow but
    :func:`scorecards_late` stays quiet for them (they re-run a month on
    purpose, long after its deadline).
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=SCORECARDS_DEADLINE_AFTER_SCHEDULE,
        callback=AsyncCallback(scorecards_late),
        name="scorecards_published_by_12th_noon",
    )


# -- the alerts --------------------------------------------------------------------------------

def task_failed(context) -> None:
    """Task ``on_failure_callback``: DAG, task, run, log URL and the first lines of the error."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", "?")
    run_id = getattr(ti, "run_id", None) or context.get("run_id") or "?"
    dag_run = context.get("dag_run")
    run_type = _value(getattr(dag_run, "run_type", None))
    try_number = getattr(ti, "try_number", None)
    exc = context.get("exception")
    lines = [
        f"Task failed: {dag_id}.{task_id}",
        "",
        f"DAG:      {dag_id}",
        # the callback runs after the last try (retries used up, or AirflowFailException)
        f"Task:     {task_id}" + (f" (try {try_number}, no more retries)" if try_number else ""),
        f"Run:      {run_id}" + (f" ({run_type})" if run_type else ""),
        f"Log:      {_log_url(ti, dag_id, run_id, task_id)}",
    ]
    hostname = getattr(ti, "hostname", None)
    if hostname:
        lines.append(f"Host:     {hostname}")
    lines += ["", f"Error (first {ERROR_LINES} lines):"]
    lines += ["    " + line for line in error_lines(exc)]
    send(f"[corridor] FAILED {dag_id}.{task_id}: {_first_line(exc)}", lines)


async def scorecards_late(context=None, **kwargs) -> None:
    """Deadline callback of ``publish_scorecards`` (runs on the triggerer): the month's scorecards are late.

    ``context`` is what the scheduler gives a deadline callback: the run
    (``dag_run``, as the REST API shows it) and the ``deadline``.
    """
    context = context or {}
    run = context.get("dag_run") or {}
    deadline = (context.get("deadline") or {}).get("deadline_time")
    run_type = str(run.get("run_type") or "")
    dag_id = run.get("dag_id") or "publish_scorecards"
    run_id = run.get("dag_run_id") or run.get("run_id") or "?"
    if run_type and run_type != "scheduled":
        log.info("deadline of %s run %s passed: not alerted (only the scheduled run of the 12th is)",
                 run_type, run_id)
        return
    month = _scorecards_month(run.get("logical_date"))
    lines = [
        f"Scorecards late: the {month} monthly scorecards (月度例会) were not published by "
        f"{_shanghai(deadline)} Asia/Shanghai.",
        "",
        f"DAG:       {dag_id}",
        f"Run:       {run_id} ({run_type or 'unknown'}), state {run.get('state') or 'unknown'}",
        f"Deadline:  {_shanghai(deadline)} Asia/Shanghai",
        f"Started:   {_shanghai(run.get('start_date')) + ' Asia/Shanghai' if run.get('start_date') else 'not started'}",
        f"Log:       {_run_url(dag_id, run_id)}",
        "",
        "The run has not succeeded: see its failed task's alert, or whether it is still queued.",
    ]
    await asend(f"[corridor] LATE: {month} scorecards not published by the 12th 12:00", lines)


def freshness_failed(result_text: str, context=None) -> bool:
    """Alert the data team that ``dbt source freshness`` found a stale (or failing) source.

    No DAG calls it: the build DAG's ``source_freshness`` task fails instead, and
    its :func:`task_failed` alert names each feed. For a caller that wants dbt's
    output mailed: call it with that output when ``dbt source freshness`` exits
    non-zero (or reports ``WARN``/``ERROR``)::

        from corridor.orchestration.alerts import freshness_failed
        freshness_failed(result_text)   # e.g. the console output, or lines per source

    ``result_text`` is mailed as it is (its first lines: ``FRESHNESS_LINES``);
    ``context`` defaults to the running task's context (DAG, run, log URL).
    It sends and returns (True when an e-mail went out); it does not raise,
    so the task decides whether stale data stops the build. A task that
    raises afterwards sends its own failure alert too.
    """
    if context is None:
        try:
            from airflow.sdk import get_current_context

            context = get_current_context()
        except Exception:  # called outside a task: mail without the run's details
            context = {}
    ti = context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or "build_warehouse"
    run_id = getattr(ti, "run_id", None) or context.get("run_id")
    text_lines = str(result_text or "").rstrip().splitlines()
    lines = ["dbt source freshness failed: a feed may have stopped delivering.", ""]
    if ti is not None:
        lines += [f"DAG:      {dag_id}", f"Task:     {ti.task_id}", f"Run:      {run_id}",
                  f"Log:      {_log_url(ti, dag_id, run_id, ti.task_id)}", ""]
    lines.append(f"dbt source freshness (first {FRESHNESS_LINES} lines):")
    lines += ["    " + line for line in text_lines[:FRESHNESS_LINES]]
    if len(text_lines) > FRESHNESS_LINES:
        lines.append(f"    ... {len(text_lines) - FRESHNESS_LINES} more lines in the task log")
    return send("[corridor] STALE SOURCES: dbt source freshness failed", lines)


# -- sending -----------------------------------------------------------------------------------

def render_html(lines: list[str]) -> str:
    """The e-mail body: the text lines, escaped, in a <pre>."""
    return ('<pre style="font-family: monospace; white-space: pre-wrap">'
            + html.escape("\n".join(lines)) + "</pre>")


def _notifier(config: AlertConfig, subject: str, lines: list[str], from_email: str | None):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(to=config.to, from_email=from_email, subject=subject, html_content=render_html(lines),
                        smtp_conn_id=config.smtp_conn_id)


def _prepare(subject: str, lines: list[str]) -> AlertConfig | None:
    log.error("%s\n%s", subject, "\n".join(lines))
    try:
        config = load_config()
    except AlertConfigError as exc:
        log.error("alert not sent: %s", exc)
        return None
    if not config.to:
        log.warning("alert not sent: no recipients (data_team in %s or CORRIDOR_ALERT_TO)", config.source)
        return None
    return config


def send(subject: str, lines: list[str]) -> bool:
    """Mail an alert to the data team through ``SmtpNotifier``; False (logged) when it cannot be sent."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    config = _prepare(subject, lines)
    if config is None:
        return False
    try:
        conn = SmtpHook.get_connection(config.smtp_conn_id)
    except AirflowNotFoundException:
        log.warning("SMTP not configured: alert not sent (no Airflow connection %r)", config.smtp_conn_id)
        return False
    from_email = conn.extra_dejson.get("from_email") or config.sender
    try:
        _notifier(config, subject, lines, from_email).notify({})
    except Exception:  # an alert that cannot be sent must not hide the failure it reports
        log.exception("alert %r could not be sent to %s", subject, ", ".join(config.to))
        return False
    log.info("alert sent to %s: %s", ", ".join(config.to), subject)
    return True


async def asend(subject: str, lines: list[str]) -> bool:
    """:func:`send` for the triggerer (deadline callbacks run in its event loop)."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    config = _prepare(subject, lines)
    if config is None:
        return False
    try:
        conn = await SmtpHook.aget_connection(config.smtp_conn_id)
    except AirflowNotFoundException:
        log.warning("SMTP not configured: alert not sent (no Airflow connection %r)", config.smtp_conn_id)
        return False
    from_email = conn.extra_dejson.get("from_email") or config.sender
    await _notifier(config, subject, lines, from_email).async_notify({})
    log.info("alert sent to %s: %s", ", ".join(config.to), subject)
    return True


# -- helpers -----------------------------------------------------------------------------------

def error_lines(exc, limit: int = ERROR_LINES) -> list[str]:
    """The exception's type and message, first ``limit`` lines (no traceback: that is in the log)."""
    if exc is None:
        return ["(no exception recorded: see the log)"]
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = str(exc)
    lines = text.rstrip().splitlines() or [type(exc).__name__]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more lines in the log"]
    return lines


def _first_line(exc) -> str:
    line = error_lines(exc, 1)[0]
    return line if len(line) <= 120 else line[:117] + "..."


def _value(x) -> str:
    return str(getattr(x, "value", x)) if x is not None else ""


def _base_url() -> str:
    try:
        from airflow.providers.common.compat.sdk import conf

        return conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    except Exception:
        return "http://localhost:8080"


def _log_url(ti, dag_id: str, run_id: str, task_id: str) -> str:
    url = getattr(ti, "log_url", None)
    if url:
        return url
    from urllib.parse import quote

    return f"{_base_url()}/dags/{dag_id}/runs/{quote(str(run_id))}/tasks/{task_id}"


def _run_url(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    return f"{_base_url()}/dags/{dag_id}/runs/{quote(str(run_id))}"


def _as_datetime(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _shanghai(value) -> str:
    from zoneinfo import ZoneInfo

    dt = _as_datetime(value)
    if dt is None:
        return str(value) if value else "?"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo("UTC"))
    return dt.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")


def _scorecards_month(logical_date) -> str:
    """The month whose monthly edition a scheduled run publishes: the one before the run's (YYYY-MM).

    The same rule as ``corridor.scorecards.editions_due``, computed here so the
    triggerer does not import the scorecard renderers.
    """
    from zoneinfo import ZoneInfo

    dt = _as_datetime(logical_date)
    if dt is None:
        return "month's"
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo("UTC"))
    local = dt.astimezone(ZoneInfo("Asia/Shanghai"))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"
