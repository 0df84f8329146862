"""Bodies of the Airflow tasks: thin calls into the package, reading settings once."""

from __future__ import annotations

import logging

from corridor import config, db
from corridor.ingest import ingest_feed

log = logging.getLogger(__name__)


def load_feed(feed: str) -> dict:
    settings = config.load()
    url = db.warehouse_url(settings)
    db.ensure_schema(url)
    summary = ingest_feed(url, feed, settings.landing_dir, pii_key=settings.pii_key())
    result = summary.as_dict()
    log.info("%s: %d file(s) loaded, %d rows received, %d loaded, %d quarantined, %d rejected file(s)",
             feed, result["files_loaded"], result["rows_received"], result["rows_loaded"],
             result["rows_quarantined"], result["files_rejected"])
    return result


def fail_on_rejections(summary: dict) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    if summary["rejected"]:
        lines = [f"{summary['feed']}: {len(summary['rejected'])} file(s) rejected (see ops.load_ledger):"]
        lines += [f"  - {r['file']}: {r['reason']}" for r in summary["rejected"]]
        raise AirflowFailException("\n".join(lines))
