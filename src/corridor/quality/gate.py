"""The publication gate: the body of the publish DAG's ``quality_gate`` task (and of ``make run``'s checks)."""

from __future__ import annotations

import logging
from pathlib import Path

from corridor.config import env_flag
from corridor.quality.checks import QualityGateFailed, QualityReport, run_checks

log = logging.getLogger(__name__)

# On (1/true/yes/on, config.env_flag) to validate every raw row again, not only the files loaded since the last
# passing gate.
FULL_VAR = "CORRIDOR_GATE_FULL"


def quality_gate(url: str | None = None, echo=None, root: Path | None = None, *, full: bool | None = None) -> dict:
    """Run every checkpoint; return the gate's JSON-able summary, or raise :class:`QualityGateFailed`.

    Error-level failures block (the exception's message names each failed
    expectation, its table and sample offending rows); warnings are reported
    and do not block. ``echo`` (e.g. ``print``) receives the summary table
    instead of the log; ``root`` is the GX context folder (default ``expectations/``).
    ``full``: validate the raw rows of every loaded file, not only of those no
    passing gate has validated yet (default: ``CORRIDOR_GATE_FULL``, else no).
    """
    report = check(url, root, full=full_run() if full is None else full)
    for line in report.summary_text().splitlines():
        (echo or log.info)(line)
    if report.blocking:
        raise QualityGateFailed(report)
    return report.as_dict()


def full_run() -> bool:
    return env_flag(FULL_VAR, False)


def check(url: str | None = None, root: Path | None = None, *, full: bool = False) -> QualityReport:
    """:func:`run_checks` on ``url`` or, by default, the configured warehouse."""
    if url is None:
        from corridor import config, db

        url = db.warehouse_url(config.load())
    return run_checks(url, root, full=full)
