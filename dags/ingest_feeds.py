"""
### Ingest the four external feeds

One DAG per feed of `shared/feeds/README.md`, each on the rhythm its source
delivers (Asia/Shanghai):

| DAG                  | landing folder | schedule                          |
|----------------------|----------------|-----------------------------------|
| `ingest_district`    | `district/`    | daily 06:00 (returns trickle in, restatements any day) |
| `ingest_techmarket`  | `techmarket/`  | daily 02:00, after the nightly export |
| `ingest_bank`        | `bank/`        | daily 07:00 (monthly files, most in the first ten days) |
| `ingest_hr`          | `hr/`          | daily 07:30 (a monthly file, mostly in the first ten days) |

The bank and talent files are monthly, but every day is looked at: a file that
lands on the 10th after 07:00, or on the 11th, is loaded before the scorecards
of the 12th 09:00, and a late one the morning after it lands (its provisional
edition's final one follows); a run that finds nothing new costs a directory
listing and skips `announce`.

Each run loads every file not yet in `ops.load_ledger` (idempotent: bytes
already loaded are a no-op). Then, side by side:

- `announce` publishes the feed's Asset (and so a rebuild) only when the run
  loaded a new file (in any of its tries: a retry after a try that committed
  files and then failed still announces them); a run that loaded nothing skips
  it: no Asset event;
- `check_rejections` fails the run if any file was rejected, naming the files
  and the reasons (the failure alert mails them to the data team).

The logic lives in `corridor.ingest` and `corridor.orchestration.tasks`;
alerts in `corridor.orchestration.alerts`. This file is wiring only.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

from corridor.orchestration import alerts
from corridor.orchestration.assets import FEED_ASSETS

SCHEDULES = {
    "district": "0 6 * * *",
    "techmarket": "0 2 * * *",
    "bank": "0 7 * * *",
    "hr": "30 7 * * *",
}

DEFAULT_ARGS = alerts.default_args(retries=2, retry_delay=pendulum.duration(minutes=5))


def ingest_dag(feed: str, schedule: str, asset: Asset):
    @dag(
        dag_id=f"ingest_{feed}",
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
        catchup=False,
        max_active_runs=1,
        tags=["corridor", "ingest", feed],
        default_args=DEFAULT_ARGS,
        **alerts.DAG_CALLBACKS,
        doc_md=__doc__,
    )
    def ingest():
        @task
        def load(dag_run=None, data_interval_end=None) -> dict:
            """Load the feed's new files; return the run's summary (with the files an earlier try loaded)."""
            from corridor.orchestration.tasks import load_feed

            return load_feed(feed, dag_run.start_date, data_interval_end)

        @task(outlets=[asset])
        def announce(summary: dict) -> None:
            """Publish the feed's Asset when a new file was loaded; skip (no event) otherwise."""
            from corridor.orchestration.tasks import announce_new_data

            announce_new_data(summary)

        @task(retries=0)
        def check_rejections(summary: dict) -> None:
            """Fail the run, naming every rejected file and its reason."""
            from corridor.orchestration.tasks import fail_on_rejections

            fail_on_rejections(summary)

        summary = load()
        announce(summary)
        check_rejections(summary)

    return ingest()


for _feed, _schedule in SCHEDULES.items():
    globals()[f"ingest_{_feed}"] = ingest_dag(_feed, _schedule, FEED_ASSETS[_feed])
