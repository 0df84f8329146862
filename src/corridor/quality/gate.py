"""The publication gate: the body of the publish DAG's ``quality_gate`` task (and of ``make run``'s checks)."""

from __future__ import annotations

import logging
from pathlib import Path

from corridor.quality.checks import QualityGateFailed, QualityReport, run_checks

log = logging.getLogger(__name__)


def quality_gate(url: str | None = None, echo=None, root: Path | None = None) -> dict:
    """Run every checkpoint; return the gate's JSON-able summary, or raise :class:`QualityGateFailed`.

    Error-level failures block (the exception's message names each failed
    expectation, its table and sample offending rows); warnings are reported
    and do not block. ``echo`` (e.g. ``print``) receives the summary table
    instead of the log; ``root`` is the GX context folder (default ``expectations/``).
    """
    report = check(url, root)
    for line in report.summary_text().splitlines():
        (echo or log.info)(line)
    if report.blocking:
        raise QualityGateFailed(report)
    return report.as_dict()


def check(url: str | None = None, root: Path | None = None) -> QualityReport:
    """:func:`run_checks` on ``url`` or, by default, the configured warehouse."""
    if url is None:
        from corridor import config, db

        url = db.warehouse_url(config.load())
    return run_checks(url, root)
