"""Alerts to the data team, sent through the SMTP provider's notifier to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from tests.conftest import DATA_TEAM, ROOT
from tests.mailbox import body_text


def _recipients(message) -> list[str]:
    return sorted(a.strip() for a in message["To"].split(","))


def test_a_failed_task_mails_the_data_team_its_dag_task_log_url_and_error(airflow_db, warehouse_url, tmp_path,
                                                                          monkeypatch, alert_smtp, capfd):
    """A forced failure: publish on a warehouse dbt never built, run for real under dag.test()."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CORRIDOR_OUTPUT_DIR", str(tmp_path / "out"))
    # the UI's address, as the compose file (AIRFLOW_BASE_URL) and the native stack set it: the log link's
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.corridor.example")
    bag = DagBag(str(ROOT / "dags" / "publish_scorecards.py"))
    assert not bag.import_errors
    run = bag.get_dag("publish_scorecards").test()

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states == {"quality_gate": "failed", "publish": "upstream_failed"}
    # one e-mail: the task's; the run's own callback stays quiet for a task failure
    [message] = alert_smtp.messages()
    text = body_text(message)
    print(f"--- alert e-mail ---\nFrom: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n\n{text}")
    assert _recipients(message) == sorted(DATA_TEAM)
    assert message["From"] == "alerts@corridor.example"  # the connection's from_email wins
    assert message["Subject"].startswith("[corridor] FAILED publish_scorecards.quality_gate: AirflowFailException:")
    assert "DAG:      publish_scorecards\n" in text
    assert "Task:     quality_gate (try 1, no more retries)\n" in text  # AirflowFailException: no retry
    assert f"Run:      {run.run_id} (manual)\n" in text
    assert (f"Log:      https://airflow.corridor.example/dags/publish_scorecards/runs/"
            f"{run.run_id.replace(':', '%3A').replace('+', '%2B')}/tasks/quality_gate") in text
    dbname = warehouse_url.split("?")[0].rsplit("/", 1)[1]
    error = (f"AirflowFailException: warehouse '{dbname}' has never been built (no kpi.kpi_values): "
             f"run build_warehouse (or `make run`) before publishing")
    assert f"Error (first 20 lines):\n    {error}" in text
    # the never-built warehouse is one line, not a GX traceback or a data-docs KeyError
    log = "".join(capfd.readouterr())
    assert error.split(": ", 1)[1] in log
    assert "great_expectations" not in log and "KeyError" not in log


def test_an_error_longer_than_twenty_lines_is_cut_in_the_mail(alert_smtp):
    from corridor.orchestration.alerts import error_lines

    lines = error_lines(RuntimeError("\n".join(f"line {i}" for i in range(1, 31))))
    assert lines[0] == "RuntimeError: line 1"
    assert lines[19] == "line 20"
    assert lines[20] == "... 10 more lines in the log"
    assert len(lines) == 21


def test_a_run_that_fails_without_a_failed_task_alerts_and_a_task_failure_does_not_alert_twice(alert_smtp):
    from airflow.sdk import DAG

    from corridor.orchestration.alerts import dag_failed

    dag = DAG("ingest_bank", schedule=None)
    dag_failed({"dag": dag, "run_id": "scheduled__2026-12-01T23:00:00+00:00", "reason": "task_failure"})
    assert alert_smtp.messages() == []

    dag_failed({"dag": dag, "run_id": "scheduled__2026-12-01T23:00:00+00:00", "reason": "timed_out"})
    [message] = alert_smtp.messages()
    text = body_text(message)
    assert message["Subject"] == "[corridor] FAILED run of ingest_bank (timed_out)"
    assert "Reason:  timed_out" in text
    assert "/dags/ingest_bank/runs/scheduled__2026-12-01T23%3A00%3A00%2B00%3A00" in text


def test_freshness_failure_mails_dbts_output_to_the_data_team(alert_smtp):
    from corridor.orchestration.alerts import freshness_failed

    output = ("1 of 4 WARN freshness of corridor_raw.bank_loans .......... [WARN in 0.05s]\n"
              "2 of 4 ERROR STALE freshness of corridor_raw.hr_talent ..... [ERROR STALE in 0.04s]\n")
    assert freshness_failed(output) is True
    [message] = alert_smtp.messages()
    text = body_text(message)
    assert message["Subject"] == "[corridor] STALE SOURCES: dbt source freshness failed"
    assert _recipients(message) == sorted(DATA_TEAM)
    assert "    2 of 4 ERROR STALE freshness of corridor_raw.hr_talent" in text


def test_alert_recipients_can_be_replaced_from_the_environment(alert_smtp, monkeypatch):
    from corridor.orchestration.alerts import freshness_failed

    monkeypatch.setenv("CORRIDOR_ALERT_TO", "night-shift@corridor.example, lead@corridor.example")
    freshness_failed("ERROR STALE")
    [message] = alert_smtp.messages()
    assert _recipients(message) == ["lead@corridor.example", "night-shift@corridor.example"]


def test_without_an_smtp_connection_an_alert_is_logged_and_nothing_fails(monkeypatch, caplog):
    from corridor.orchestration.alerts import freshness_failed

    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    monkeypatch.setenv("CORRIDOR_SMTP_CONN_ID", "no_such_smtp_connection")
    assert freshness_failed("ERROR STALE") is False
    assert "SMTP not configured: alert not sent (no Airflow connection 'no_such_smtp_connection')" in caplog.text


def test_the_deadline_alert_of_publish_scorecards_is_the_12th_at_noon_in_shanghai():
    """The scheduled run's logical date plus the alert's interval is 12:00 on the 12th, Asia/Shanghai."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DeadlineReference
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    from corridor.orchestration.alerts import scorecards_late

    dag = DagBag(str(ROOT / "dags" / "publish_scorecards.py")).dags["publish_scorecards"]
    [alert] = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.callback.path == f"{scorecards_late.__module__}.{scorecards_late.__qualname__}"
    shanghai = ZoneInfo("Asia/Shanghai")
    cron = dag.timetable.timetable  # AssetOrTimeSchedule: the time half
    core = CronTriggerTimetable(cron.expression, timezone=cron.timezone)
    info = core.next_dagrun_info(last_automated_data_interval=None, restriction=TimeRestriction(
        earliest=datetime(2026, 11, 1, tzinfo=shanghai), latest=None, catchup=True))
    assert info.logical_date.astimezone(shanghai) == datetime(2026, 11, 12, 9, 0, tzinfo=shanghai)
    assert (info.logical_date + alert.interval).astimezone(shanghai) == datetime(2026, 11, 12, 12, 0, tzinfo=shanghai)
