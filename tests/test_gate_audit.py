"""The quality gate's verdict and its words, on a copy of the built city warehouse (audit of the gate).

- An expectation that cannot be evaluated blocks, whatever its severity (expectations/README.md: "An
  expectation that cannot be evaluated counts as a critical failure (fail closed)").
- Every KPI with a target in kpis.md (K01..K16) carries it on every row; K17 and K18 carry none.
- A failure's example row shows the offending value: the failing columns come first, before a wide raw row is
  cut at 400 characters.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT


@pytest.fixture
def gx_root(tmp_path) -> Path:
    """A copy of the committed GX file context (tests leave expectations/ as it is)."""
    return Path(shutil.copytree(ROOT / "expectations", tmp_path / "expectations",
                                ignore=shutil.ignore_patterns("uncommitted")))


def _execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_a_warning_level_expectation_that_cannot_be_evaluated_blocks_the_gate(warehouse_copy, gx_root):
    from corridor.quality import QualityGateFailed, quality_gate, run_checks

    # ip_numbers_for_ip_pledges (severity warning) reads cardinality(ip_numbers): as text, it cannot be evaluated.
    _execute(warehouse_copy, "drop view staging.stg_bank__loans cascade",
             "drop view if exists ops.quality_due_bank_loans",  # the gate makes it again
             "alter table raw.bank_loans alter column ip_numbers type text using array_to_string(ip_numbers, ';')")

    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking, report.summary_text()
    [failure] = report.failures
    assert (failure.table, failure.check, failure.severity) == ("raw.bank_loans", "ip_numbers_for_ip_pledges", "error")
    assert "could not be evaluated" in failure.message and "cardinality" in failure.message
    suite = next(s for s in report.suites if s.suite == "raw.bank_loans")
    assert (suite.failed, suite.warnings) == (1, 0)
    with psycopg.connect(warehouse_copy) as conn:  # a failed gate records no file as validated
        assert conn.execute("select count(*) from ops.quality_gate_files").fetchone()[0] == 0
    with pytest.raises(QualityGateFailed, match=r"\[ERROR\] UnexpectedRowsExpectation on raw.bank_loans"):
        quality_gate(warehouse_copy, root=gx_root)


# LW's rows of the KPIs named, as a lost target leaves them: consistent "no_target" rows
_TARGETS_LOST = ("update kpi.kpi_values set target_value = null, paced_target_value = null, completion_ratio = null,"
                 " status = 'no_target' where kpi_code in ({kpis}) and area_code = 'LW'")


def test_a_kpi_that_lost_its_target_blocks_the_gate(warehouse_copy, gx_root):
    from corridor.quality import run_checks

    # K01 (≥ 20 by 2022) without its target reads as consistent "no_target" rows: the statuses follow.
    _execute(warehouse_copy, _TARGETS_LOST.format(kpis="'K01'"))

    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking, report.summary_text()
    [failure] = report.errors
    assert (failure.table, failure.check) == ("kpi.kpi_values", "targets_present")
    assert failure.unexpected_count == 36 + 12 + 3  # LW's months, quarters and years of 2020..2022
    assert {(s["kpi_code"], s["area_code"], s["target_value"]) for s in failure.samples} == {("K01", "LW", None)}
    assert "K01" in report.gate_message() and "targets_present" not in failure.message


def test_an_area_of_allocation_weight_0_has_no_target_and_passes(warehouse_copy, gx_root):
    """An area of allocation weight 0 has no target of its own (kpi_values.sql: no_target); the same rows
    that block as a lost target pass once the seed gives LW weight 0 for K01, and only for K01."""
    from corridor.quality import run_checks

    _execute(warehouse_copy, _TARGETS_LOST.format(kpis="'K01', 'K02'"),
             "update seeds.kpi_area_allocation set allocation_weight = 0 where kpi_code = 'K01' and area_code = 'LW'")

    report = run_checks(warehouse_copy, gx_root)

    [failure] = [f for f in report.errors if f.check == "targets_present"]
    assert failure.unexpected_count == 36 + 12 + 3  # K02's rows only: LW has weight 0 for K01 alone
    assert {(s["kpi_code"], s["area_code"]) for s in failure.samples} == {("K02", "LW")}


def test_a_kpi_tracked_without_a_target_that_has_one_blocks_the_gate(warehouse_copy, gx_root):
    from corridor.quality import run_checks

    _execute(warehouse_copy, "update kpi.kpi_values set target_value = 5, paced_target_value = 5,"
                             " completion_ratio = null, status = null"
                             " where kpi_code = 'K18' and area_code = 'ALL' and grain = 'year'"
                             " and period_start = '2021-01-01'")

    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking
    targets = [f for f in report.errors if f.check == "targets_present"]
    assert len(targets) == 1 and targets[0].unexpected_count == 1
    assert targets[0].samples[0]["kpi_code"] == "K18" and targets[0].samples[0]["target_value"] == "5"


def test_the_example_of_a_failure_shows_the_offending_value_of_a_wide_raw_row(warehouse_copy, gx_root):
    from corridor.quality import QualityGateFailed, quality_gate

    _execute(warehouse_copy, "update raw.techmarket_contracts set registration_status = '作废'"
                             " where ctid = (select min(ctid) from raw.techmarket_contracts)")

    with pytest.raises(QualityGateFailed) as raised:
        quality_gate(warehouse_copy, root=gx_root)

    message = str(raised.value)
    assert "ExpectColumnValuesToBeInSet on raw.techmarket_contracts (registration_status)" in message
    example = next(line for line in message.splitlines() if line.startswith("    e.g. "))
    assert example.startswith("    e.g. file_name=tech_contracts_") and ", registration_status=作废, " in example


def test_a_count_kpi_without_a_value_blocks_the_gate(warehouse_copy, gx_root):
    """A count or sum is 0 when nothing happened (kpi_values.sql: only a rate without a base stays null): a
    corridor row of K06 without its value, ratio and status read as consistent and passed."""
    from corridor.quality import run_checks

    _execute(warehouse_copy, "update kpi.kpi_values set actual_value = null, completion_ratio = null, status = null"
                             " where kpi_code = 'K06' and area_code = 'ALL' and grain = 'month'"
                             " and period_start = '2022-10-01'")

    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking, report.summary_text()
    [failure] = report.errors
    assert (failure.table, failure.column, failure.unexpected_count) == ("kpi.kpi_values", "actual_value", 1)
    assert failure.samples[0]["kpi_code"] == "K06" and failure.samples[0]["period_start"] == "2022-10-01"


def test_a_warning_whose_detail_cannot_be_evaluated_stays_a_warning(warehouse_copy, gx_root, monkeypatch):
    """The checkpoint evaluated the warning (a rejected file outstanding); the second, detailed validation of
    it raising (the database busy, a timeout) keeps the checkpoint's verdict: a warning, not a block."""
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult
    from great_expectations.datasource.fluent.interfaces import Batch

    from corridor.quality import run_checks

    def validate_raises(self, expect, **kwargs):
        return ExpectationValidationResult(
            success=False, expectation_config=expect.configuration, result={},
            exception_info={"raised_exception": True, "exception_message": "canceling statement due to timeout",
                            "exception_traceback": ""})

    monkeypatch.setattr(Batch, "validate", validate_raises)
    _execute(warehouse_copy,
             "insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at, finished_at, message)"
             " values ('bank', 'CCB_202301.csv', 'x', 1, 'rejected', now(), now(), 'cannot be decoded as GB18030')")

    report = run_checks(warehouse_copy, gx_root)

    assert not report.blocking, report.gate_message()
    [warning] = report.failures
    assert (warning.check, warning.severity) == ("rejected_files_outstanding", "warning")
    assert warning.samples[0]["file_name"] == "CCB_202301.csv"
