"""
### Ingest the four external feeds

One DAG per feed of `shared/feeds/README.md`, each on the rhythm its source
delivers (Asia/Shanghai):

| DAG                  | landing folder | schedule                          |
|----------------------|----------------|-----------------------------------|
| `ingest_district`    | `district/`    | daily 06:00 (returns trickle in, restatements any day) |
| `ingest_techmarket`  | `techmarket/`  | daily 02:00, after the nightly export |
| `ingest_bank`        | `bank/`        | daily 07:00 in the first ten days of the month |
| `ingest_hr`          | `hr/`          | daily 07:30 in the first ten days of the month |

Each run loads every file not yet in `ops.load_ledger` (idempotent: bytes
already loaded are a no-op), publishes the feed's Asset, and then fails if
any file was rejected, naming the files and the reasons. The logic lives in
`corridor.ingest`; this file is wiring only.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

from corridor.orchestration.assets import FEED_ASSETS

SCHEDULES = {
    "district": "0 6 * * *",
    "techmarket": "0 2 * * *",
    "bank": "0 7 1-10 * *",
    "hr": "30 7 1-10 * *",
}

DEFAULT_ARGS = {"owner": "corridor-data", "retries": 2, "retry_delay": pendulum.duration(minutes=5)}


def ingest_dag(feed: str, schedule: str, asset: Asset):
    @dag(
        dag_id=f"ingest_{feed}",
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
        catchup=False,
        max_active_runs=1,
        tags=["corridor", "ingest", feed],
        default_args=DEFAULT_ARGS,
        doc_md=__doc__,
    )
    def ingest():
        @task(outlets=[asset])
        def load() -> dict:
            """Load new files of the feed; publish the feed's Asset."""
            from corridor.orchestration.tasks import load_feed

            return load_feed(feed)

        @task(retries=0)
        def check_rejections(summary: dict) -> None:
            """Fail the run, naming every rejected file and its reason."""
            from corridor.orchestration.tasks import fail_on_rejections

            fail_on_rejections(summary)

        check_rejections(load())

    return ingest()


for _feed, _schedule in SCHEDULES.items():
    globals()[f"ingest_{_feed}"] = ingest_dag(_feed, _schedule, FEED_ASSETS[_feed])
