"""A retry of an ingest run's `load` task after an earlier try committed files: the run still announces them.

Files are committed one by one; a try that fails after its last commit (the warehouse connection lost
while it finishes, the worker killed or the API server restarting before the task's result is stored)
leaves those files loaded, and the retry finds nothing new. The run's Asset event, and so the build, must
not depend on which try loaded them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from corridor.demo import generate
from tests.conftest import DATA_TEAM, TEST_PII_KEY, scalar
from tests.mailbox import body_text


def test_a_retry_after_the_first_try_committed_its_files_still_announces_them(warehouse_url, tmp_path,
                                                                                monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    import corridor.ingest
    from corridor.orchestration.tasks import announce_new_data, load_feed

    landing = tmp_path / "landing"
    generate(landing, seed=11, scale="city", start="2022-12", end="2022-12")
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CORRIDOR_LANDING_DIR", str(landing))
    monkeypatch.setenv("CORRIDOR_PII_KEY", TEST_PII_KEY.decode())
    run_started = datetime.now(UTC) - timedelta(seconds=1)  # the DAG run's start_date

    real = corridor.ingest.silence_warning

    def connection_lost(*args, **kwargs):
        raise ConnectionError("server closed the connection unexpectedly")

    # try 1: every file committed, then the task fails before it returns its summary
    monkeypatch.setattr(corridor.ingest, "silence_warning", connection_lost)
    with pytest.raises(ConnectionError):
        load_feed("techmarket", run_started)
    committed = scalar(warehouse_url, "select count(*) from ops.load_ledger where feed = 'techmarket'"
                                      " and status = 'loaded'")
    assert committed > 0

    # try 2 (the retry): nothing new in the landing folder
    monkeypatch.setattr(corridor.ingest, "silence_warning", real)
    summary = load_feed("techmarket", run_started)
    assert summary["files_loaded"] == 0 and summary["files_unchanged"] == committed
    assert summary["files_loaded_in_run"] == committed
    announce_new_data(summary)  # no AirflowSkipException: the run's files get their Asset event

    # a later run (started after those loads) that finds nothing new still announces nothing
    later = load_feed("techmarket", datetime.now(UTC))
    assert later["files_loaded"] == later["files_loaded_in_run"] == 0
    with pytest.raises(AirflowSkipException):
        announce_new_data(later)


def test_a_feed_silent_beyond_its_rhythm_is_mailed_to_the_data_team(warehouse_url, tmp_path, monkeypatch,
                                                                   alert_smtp):
    """One feed that stops while the others deliver: the daily ingest run mails it (a warning: the run goes on);
    a feed that delivers is not mailed."""
    from corridor.orchestration.tasks import load_feed

    landing = tmp_path / "landing"
    generate(landing, seed=11, scale="city", start="2022-12", end="2022-12")
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("CORRIDOR_LANDING_DIR", str(landing))
    monkeypatch.setenv("CORRIDOR_PII_KEY", TEST_PII_KEY.decode())

    load_feed("bank")
    assert alert_smtp.messages() == []  # it just delivered
    scalar(warehouse_url, "update ops.load_ledger set finished_at = finished_at - interval '50 days'"
                          " where feed = 'bank' returning 1")
    summary = load_feed("bank")

    [message] = alert_smtp.messages()
    assert summary["files_loaded"] == 0 and len(summary["warnings"]) == 1
    assert message["Subject"] == "[corridor] FEED SILENT: bank: nothing new received"
    assert sorted(a.strip() for a in message["To"].split(",")) == sorted(DATA_TEAM)
    text = body_text(message)
    assert "bank: nothing new received for 50 days" in text and "the feed delivers at least every 45 days" in text
    assert f"{landing}/bank/" in text

    # silence is judged as of the run's data interval end, not the clock: a retry (or a rerun) of the run of
    # the day after that delivery, made today, mails nothing
    delivered = scalar(warehouse_url, "select max(finished_at) from ops.load_ledger where feed = 'bank'")
    rerun = load_feed("bank", as_of=delivered + timedelta(days=1))
    assert rerun["warnings"] == [] and len(alert_smtp.messages()) == 1
