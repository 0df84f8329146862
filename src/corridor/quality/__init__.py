"""Great Expectations quality gates of the corridor warehouse (GX 1.x, validated in PostgreSQL).

- :func:`setup` — get-or-create the GX file context in ``expectations/``
  (data source, table assets, suites, validation definitions, checkpoints);
  idempotent, and the committed files never contain the warehouse URL.
- :func:`run_checks` — run the checkpoints ``corridor_raw`` → ``corridor_marts``
  → ``corridor_kpi``; a :class:`QualityReport` names every failed expectation,
  its severity, table, column and sample offending rows. Error-level failures
  make it ``blocking``; warnings do not. The raw tables are validated for the
  files loaded since the last passing gate (``ops.quality_gate_files``,
  :mod:`corridor.quality.state`); ``full=True`` validates every file again.
- :func:`completeness` — is a month/quarter/year publishable, or provisional
  and who has not delivered.
- :func:`quality_gate` — the publish DAG's gate task: the summary dict, or
  :class:`QualityGateFailed`.

The rules themselves are data in :mod:`corridor.quality.catalog`.
Great Expectations is imported only when a check runs.
"""

from corridor.quality.checks import Failure, QualityGateFailed, QualityReport, SuiteResult, run_checks
from corridor.quality.completeness import Completeness, completeness
from corridor.quality.context import setup
from corridor.quality.gate import quality_gate

__all__ = ["Completeness", "Failure", "QualityGateFailed", "QualityReport", "SuiteResult", "completeness",
           "quality_gate", "run_checks", "setup"]
