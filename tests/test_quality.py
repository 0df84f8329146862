"""The Great Expectations quality gates on real PostgreSQL, real GX, real Airflow task runs.

The city demo set is built once (`built_warehouse`); a test that breaks data
takes a private copy (`warehouse_copy`). GX runs in a copy of the committed
file context (`expectations/`), so tests leave the repository as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROOT

CHECKPOINTS = ("corridor_raw", "corridor_marts", "corridor_kpi")


# -- fixtures and helpers -------------------------------------------------------------

def _copy_committed_context(target: Path) -> Path:
    source = ROOT / "expectations"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


@pytest.fixture(scope="session")
def gx_root(tmp_path_factory) -> Path:
    """A copy of the committed GX file context, shared by the tests of this session."""
    return _copy_committed_context(tmp_path_factory.mktemp("gx") / "expectations")


def _committed_files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "uncommitted" not in p.relative_to(root).parts}


def _execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _allow_duplicate_kpi_rows(url: str) -> None:
    """Drop kpi_values' primary key, as a build without the enforced contract would leave it."""
    with psycopg.connect(url, autocommit=True) as conn:
        for (name,) in conn.execute("select conname from pg_constraint"
                                    " where conrelid = 'kpi.kpi_values'::regclass and contype = 'p'").fetchall():
            conn.execute(sql.SQL("alter table kpi.kpi_values drop constraint {}").format(
                sql.Identifier(name)))


def _duplicate_kpi_row(url: str) -> None:
    _allow_duplicate_kpi_rows(url)
    _execute(url, "insert into kpi.kpi_values select * from kpi.kpi_values"
                  " where kpi_code = 'K01' and area_code = 'LW' and grain = 'month' and period_start = '2022-11-01'")


def _remove_delivery(url: str, feed: str, file_name_like: str) -> list[str]:
    """Undo the load of a feed's files, as if they had never been delivered; return their names."""
    tables = {"district": ["district_platforms", "district_certifications", "district_projects", "district_returns"],
              "bank": ["bank_loans"], "hr": ["hr_talents"], "techmarket": ["techmarket_contracts"]}[feed]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("select ledger_id, file_name from ops.load_ledger where feed = %s and file_name like %s",
                            (feed, file_name_like)).fetchall()
        ids = [r[0] for r in rows]
        for table in tables:
            conn.execute(sql.SQL("delete from {} where ledger_id = any(%s)").format(
                sql.Identifier("raw", table)), (ids,))
        conn.execute("delete from ops.quarantine where ledger_id = any(%s)", (ids,))
        conn.execute("delete from ops.load_ledger where ledger_id = any(%s)", (ids,))
    return [r[1] for r in rows]


def _failures(report, key: str):
    return [f for f in report.failures if f.check == key]


def _loaded_files(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from ops.load_ledger where status = 'loaded'").fetchone()[0]


def _validated_files(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("select ledger_id from ops.quality_gate_files").fetchall()}


def _deliver_bank_file(url: str, bad_area_code: str | None = None) -> tuple[int, str]:
    """A new month's loans file of a bank, as the loader would land it (a copy of the bank's latest file).

    ``bad_area_code``: one row carries it, as if the loader had let it through.
    Returns the new file's ledger_id and name.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        ledger_id, name, month = conn.execute(
            "select ledger.ledger_id, ledger.file_name, max(loans.report_month)"
            " from ops.load_ledger as ledger join raw.bank_loans as loans using (ledger_id)"
            " where ledger.feed = 'bank' group by 1, 2 order by 3 desc, 1 desc limit 1").fetchone()
        new_month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        new_name = name.replace(f"{month:%Y%m}", f"{new_month:%Y%m}")
        assert new_name != name
        new_id = conn.execute(
            "insert into ops.load_ledger (feed, file_name, sha256, bytes, rows_received, rows_loaded,"
            " rows_quarantined, status, started_at, finished_at)"
            " select feed, %s, md5(%s), bytes, rows_loaded, rows_loaded, 0, 'loaded', now(), now()"
            " from ops.load_ledger where ledger_id = %s returning ledger_id", (new_name, new_name, ledger_id)
        ).fetchone()[0]
        conn.execute("create temporary table delivered as select * from raw.bank_loans where ledger_id = %s",
                     (ledger_id,))
        conn.execute("update delivered set ledger_id = %s, report_month = %s,"
                     " disbursed_date = least(disbursed_date, %s)", (new_id, new_month, new_month))
        if bad_area_code:
            conn.execute("update delivered set area_code = %s"
                         " where source_row = (select min(source_row) from delivered)", (bad_area_code,))
        conn.execute("insert into raw.bank_loans select * from delivered")
    return new_id, new_name


def _no_files(folder: Path) -> bool:
    return not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


# -- the clean demo set ----------------------------------------------------------------

def test_clean_demo_set_passes_every_checkpoint(warehouse_copy, gx_root, caplog):
    from corridor.quality import run_checks

    caplog.set_level(logging.INFO, logger="corridor.quality.checks")
    report = run_checks(warehouse_copy, gx_root)  # a copy: a passing gate records the files it validated

    assert not report.blocking, report.summary_text()
    assert report.failures == [], report.summary_text()
    assert [c["name"] for c in report.checkpoints] == list(CHECKPOINTS)
    assert all(c["expectations"] > 0 and c["passed"] == c["expectations"] for c in report.checkpoints)
    suites = {s.suite for s in report.suites}
    assert {"raw.district_returns", "raw.techmarket_contracts", "raw.bank_loans", "raw.hr_talents",
            "ops.load_ledger", "marts.fct_tech_contracts", "kpi.kpi_values"} <= suites
    assert report.as_of == date(2022, 12, 31)
    assert report.provisional_months == {}
    assert report.data_docs_path is not None and report.data_docs_path.is_file()
    assert report.data_docs_path.is_relative_to(gx_root / "uncommitted")
    assert report.seconds > 0  # timed, not judged here: benchmarks/ prints speed
    text = report.summary_text()
    assert "kpi.kpi_values" in text and "PASSED" in text and str(report.data_docs_path) in text
    summary = report.as_dict()
    assert summary["blocking"] is False and summary["totals"]["failed"] == 0
    assert summary["totals"]["expectations"] == summary["totals"]["passed"] > 150
    # The first gate on a warehouse: every loaded file is new to it, so the raw tables are validated whole
    # (not through the @due views), and every file is recorded: the next gate has nothing new to validate.
    assert summary["mode"] == "full" and summary["files_validated"] == _loaded_files(warehouse_copy) > 1000
    raw = [s for s in report.suites if s.suite.startswith("raw.")]
    assert raw and all(s.scope == "all rows" and s.evaluated > 0 for s in raw)
    # the task log has a line a suite as it is validated: its place, name, outcome and seconds
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("quality gate ")]
    n = len(report.suites)
    assert [line.split(": ")[1].split(" ", 1)[1] for line in lines] == [s.suite for s in report.suites], lines
    assert lines[0].startswith(f"quality gate 1/{n} suites: corridor_raw ") and f"{n}/{n} suites" in lines[-1]
    fct = next(line for line in lines if " marts.fct_tech_contracts: " in line)
    suite = next(s for s in report.suites if s.suite == "marts.fct_tech_contracts")
    assert re.search(rf": {suite.evaluated}/{suite.evaluated} passed, 0 failed, 0 warnings \(all rows\), "
                     r"[0-9]+\.[0-9] s$", fct), fct
    caplog.clear()
    again = run_checks(warehouse_copy, gx_root)
    assert not again.blocking and again.as_dict()["mode"] == "incremental" and again.files == 0
    assert all(s.scope == "no new files" for s in again.suites if s.suite.startswith("raw."))
    assert any(re.fullmatch(r"quality gate [0-9]+/[0-9]+ suites: corridor_raw raw\.district_returns: no new files, "
                            r"[0-9.]+ s", r.getMessage()) for r in caplog.records), caplog.text


def test_every_month_of_the_clean_demo_set_is_publishable(built_warehouse):
    from corridor.quality import completeness

    for grain, start in (("month", date(2022, 12, 1)), ("quarter", date(2022, 10, 1)), ("year", date(2021, 1, 1))):
        result = completeness(built_warehouse.url, grain, start)
        assert result.publishable and result.missing == [], (grain, start, result.missing)
        assert result.as_of == date(2022, 12, 31)


# -- error-level failures block -------------------------------------------------------

def test_duplicated_kpi_row_blocks_the_gate_and_names_expectation_table_and_rows(warehouse_copy, gx_root):
    from corridor.quality import QualityGateFailed, run_checks
    from corridor.quality.gate import quality_gate

    _duplicate_kpi_row(warehouse_copy)
    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking
    [failure] = _failures(report, "unique:kpi_code,area_code,grain,period_start")
    assert failure.severity == "error"
    assert failure.expectation == "ExpectCompoundColumnsToBeUnique"
    assert failure.table == "kpi.kpi_values"
    assert failure.column == "kpi_code, area_code, grain, period_start"
    assert failure.unexpected_count == 2
    assert 1 <= len(failure.samples) <= 5
    assert failure.samples[0]["kpi_code"] == "K01" and failure.samples[0]["period_start"] == "2022-11-01"

    with pytest.raises(QualityGateFailed) as raised:
        quality_gate(warehouse_copy, root=gx_root)
    message = str(raised.value)
    assert "ExpectCompoundColumnsToBeUnique" in message
    assert "kpi.kpi_values" in message
    assert "kpi_code=K01, area_code=LW, grain=month, period_start=2022-11-01" in message


def test_negative_kpi_value_blocks_the_gate_and_no_scorecard_is_written(warehouse_copy, gx_root, tmp_path):
    from corridor.quality import run_checks
    from corridor.scorecards import GateBlocked, publish

    _execute(warehouse_copy, "update kpi.kpi_values set actual_value = -3"
                             " where kpi_code = 'K06' and area_code = 'OH' and grain = 'month'"
                             " and period_start = '2022-10-01'")
    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking
    [failure] = _failures(report, "non_negative:actual_value")
    assert failure.expectation == "ExpectColumnValuesToBeBetween"
    assert (failure.table, failure.column, failure.unexpected_count) == ("kpi.kpi_values", "actual_value", 1)
    assert failure.samples[0]["kpi_code"] == "K06" and failure.samples[0]["actual_value"] == "-3"
    assert "kpi.kpi_values" in report.gate_message() and "K06" in report.gate_message()
    # The checkpoint asks counts only; the failed expectation was validated again in
    # detail, and its stored result (what the data docs show) has the unexpected value.
    stored = _latest_stored_result(gx_root, "kpi", "kpi_values")
    by_check = {r["expectation_config"]["meta"]["check"]: r for r in stored["results"]}
    failed = by_check["non_negative:actual_value"]
    assert not failed["success"] and failed["result"]["unexpected_count"] == 1
    assert [float(v) for v in failed["result"]["partial_unexpected_list"]] == [-3.0]
    counted = [r["result"] for r in stored["results"] if r["success"] and "unexpected_count" in r["result"]]
    assert len(counted) >= 5  # map expectations that passed: counted, with no scan for their values
    assert all(r["unexpected_count"] == 0 and not r.get("partial_unexpected_list") for r in counted)

    out = tmp_path / "out"
    with pytest.raises(GateBlocked):
        publish(warehouse_copy, out, gate=report.as_dict(), send=False)
    assert _no_files(out)


def test_growth_rate_may_fall_but_not_below_minus_100_percent(warehouse_copy, gx_root):
    from corridor.quality import run_checks

    def set_k03(area: str, value: float) -> str:  # keep completion ratio and status consistent with the value
        return (f"update kpi.kpi_values set actual_value = {value},"
                f" completion_ratio = trim_scale(round({value} / paced_target_value, 10)), status = 'behind'"
                f" where kpi_code = 'K03' and area_code = '{area}' and grain = 'month'"
                " and period_start = '2022-11-01'")

    _execute(warehouse_copy, set_k03("LW", -0.5), set_k03("OH", -1.5))
    report = run_checks(warehouse_copy, gx_root)

    assert [(f.check, f.samples[0]["area_code"]) for f in report.errors] == [("growth_floor:actual_value", "OH")]


def test_lost_raw_rows_fail_the_reconciliation_with_the_load_ledger(warehouse_copy, gx_root):
    from corridor.quality import run_checks

    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        ledger_id, file_name = conn.execute(
            "select ledger_id, file_name from ops.load_ledger where feed = 'bank' and file_name = 'BOC_202211.csv'"
        ).fetchone()
        conn.execute("delete from raw.bank_loans where ctid in"
                     " (select ctid from raw.bank_loans where ledger_id = %s limit 1)", (ledger_id,))
    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking
    [failure] = _failures(report, "reconciles_with_load_ledger")
    assert failure.table == "raw.bank_loans"
    assert failure.samples == [{"ledger_id": ledger_id, "file_name": file_name,
                                "rows_loaded": failure.samples[0]["rows_loaded"],
                                "rows_in_table": failure.samples[0]["rows_loaded"] - 1}]


def test_missing_kpi_row_fails_the_completeness_of_the_kpi_grid(warehouse_copy, gx_root):
    from corridor.quality import run_checks

    _execute(warehouse_copy, "delete from kpi.kpi_values where kpi_code = 'K12' and area_code = 'ZN'"
                             " and grain = 'quarter' and period_start = '2021-07-01'")
    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking
    [failure] = _failures(report, "complete_grid")
    assert failure.samples == [{"kpi_code": "K12", "area_code": "ZN", "grain": "quarter",
                                "period_start": "2021-07-01"}]


def test_publish_dag_fails_at_the_gate_and_writes_no_scorecard(airflow_db, warehouse_copy, tmp_path, monkeypatch,
                                                               capfd):
    from airflow.dag_processing.dagbag import DagBag

    _duplicate_kpi_row(warehouse_copy)
    out = tmp_path / "out"
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    monkeypatch.setenv("CORRIDOR_OUTPUT_DIR", str(out))
    bag = DagBag(str(ROOT / "dags" / "publish_scorecards.py"))
    assert not bag.import_errors
    run = bag.get_dag("publish_scorecards").test()

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states == {"quality_gate": "failed", "publish": "upstream_failed"}
    assert _no_files(out)
    log = "".join(capfd.readouterr())
    assert "AirflowFailException: Quality gate failed" in log
    assert "ExpectCompoundColumnsToBeUnique on kpi.kpi_values" in log
    assert "kpi_code=K01, area_code=LW, grain=month, period_start=2022-11-01" in log


# -- completeness: provisional periods -------------------------------------------------

def test_missing_area_return_makes_its_month_provisional_and_names_the_area(warehouse_copy, gx_root):
    from corridor.quality import completeness, run_checks

    assert _remove_delivery(warehouse_copy, "district", "YQ_202211_v%")

    month = completeness(warehouse_copy, "month", date(2022, 11, 1))
    assert not month.publishable and month.provisional
    assert month.missing == ["乐清市 (YQ): 2022-11 district return"]
    assert not completeness(warehouse_copy, "quarter", date(2022, 10, 1)).publishable
    assert not completeness(warehouse_copy, "year", date(2022, 1, 1)).publishable
    assert completeness(warehouse_copy, "month", date(2022, 10, 1)).publishable
    assert completeness(warehouse_copy, "month", date(2022, 12, 1)).publishable

    report = run_checks(warehouse_copy, gx_root)
    assert not report.blocking, report.gate_message()
    assert report.provisional_months == {"2022-11": ["乐清市 (YQ): 2022-11 district return"]}
    [warning] = _failures(report, "months_complete")
    assert warning.severity == "warning"
    assert warning.samples[0]["source_code"] == "YQ" and warning.samples[0]["month_start"] == "2022-11-01"


def test_missing_bank_file_makes_its_month_provisional_for_pledge_kpis(warehouse_copy):
    from corridor.quality import completeness

    assert _remove_delivery(warehouse_copy, "bank", "BOC_202211.csv") == ["BOC_202211.csv"]

    result = completeness(warehouse_copy, "month", date(2022, 11, 1))
    assert not result.publishable
    assert result.missing == ["BOC: 2022-11 loans file"]


# -- warnings do not block ----------------------------------------------------------------

def test_warning_level_failure_is_reported_and_does_not_block(warehouse_copy, gx_root):
    from corridor.quality.gate import quality_gate

    _execute(warehouse_copy,
             "insert into ops.load_ledger (feed, file_name, sha256, bytes, status, started_at, finished_at, message)"
             " values ('bank', 'CCB_202301.csv', 'x', 1, 'rejected', now(), now(), 'cannot be decoded as GB18030')")
    lines: list[str] = []
    summary = quality_gate(warehouse_copy, echo=lines.append, root=gx_root)

    assert summary["blocking"] is False
    assert summary["totals"]["failed"] == 0 and summary["totals"]["warnings"] == 1
    [warning] = summary["failures"]
    assert (warning["severity"], warning["check"], warning["table"]) == (
        "warning", "rejected_files_outstanding", "ops.load_ledger")
    assert warning["samples"][0]["file_name"] == "CCB_202301.csv"
    assert any("PASSED" in line for line in lines)
    assert any("CCB_202301.csv" in line for line in lines)


# -- the GX file context ---------------------------------------------------------------

def test_setup_twice_changes_nothing_and_keeps_the_url_out_of_the_files(built_warehouse, tmp_path):
    from corridor.quality import catalog, setup

    root = tmp_path / "expectations"
    context = setup(built_warehouse.url, root)
    first = _committed_files(root)
    context = setup(built_warehouse.url, root)

    assert _committed_files(root) == first
    specs = catalog.all_suites()
    assert sorted(s.name for s in context.suites.all()) == sorted(s.name for s in specs)
    incremental = [s for s in specs if s.incremental]  # raw.*: also bound to the rows of files not validated yet
    assert len(incremental) == 7
    assert sorted(v.name for v in context.validation_definitions.all()) == sorted(
        [s.name for s in specs] + [f"{s.name}@due" for s in incremental])
    assert sorted(c.name for c in context.checkpoints.all()) == sorted(CHECKPOINTS)
    [datasource] = context.data_sources.all().values()
    assert len(datasource.assets) == len(specs) + len(incremental)
    text = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*")
                     if p.is_file() and p.suffix in (".yml", ".json") and "uncommitted" not in p.parts)
    assert "${CORRIDOR_GX_URL}" in text
    assert "postgresql" not in text and "host=" not in text


def test_committed_context_is_exactly_what_setup_writes(built_warehouse, tmp_path):
    from corridor.quality import setup

    root = _copy_committed_context(tmp_path / "expectations")
    committed = _committed_files(root)
    assert "great_expectations.yml" in committed and "checkpoints/corridor_kpi.json" in committed

    setup(built_warehouse.url, root)

    assert _committed_files(root) == committed


def _latest_stored_result(gx_root: Path, schema: str, table: str) -> dict:
    runs = sorted((gx_root / "uncommitted" / "validations" / schema / table).glob("corridor-quality/*/*.json"))
    assert runs, f"no stored validation result of {schema}.{table}"
    return json.loads(runs[-1].read_text())


# -- an incremental gate: the raw rows of the files loaded since the last passing gate ----------

def test_a_bad_row_in_a_newly_loaded_file_blocks_the_gate_and_names_the_file(warehouse_copy, gx_root):
    from corridor.quality import QualityGateFailed, quality_gate, run_checks

    first = run_checks(warehouse_copy, gx_root)
    assert not first.blocking, first.gate_message()
    validated = _validated_files(warehouse_copy)
    assert len(validated) == first.files == _loaded_files(warehouse_copy)
    ledger_id, file_name = _deliver_bank_file(warehouse_copy, bad_area_code="XX")

    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking and not report.full and report.files == 1
    [failure] = report.errors
    assert (failure.table, failure.check, failure.unexpected_count) == ("raw.bank_loans", "in_set:area_code", 1)
    assert failure.samples[0]["file_name"] == file_name and failure.samples[0]["area_code"] == "XX"
    scopes = {s.suite: s.scope for s in report.suites if s.suite.startswith("raw.")}
    assert scopes.pop("raw.bank_loans") == "1 new file"
    assert set(scopes.values()) == {"no new files"}  # the other raw tables' files were validated already
    assert _validated_files(warehouse_copy) == validated  # a failed gate records nothing
    # The file stays due: the next gate blocks again, and says which file.
    with pytest.raises(QualityGateFailed) as raised:
        quality_gate(warehouse_copy, root=gx_root)
    assert "raw.bank_loans (area_code)" in str(raised.value) and file_name in str(raised.value)

    _execute(warehouse_copy, f"update raw.bank_loans set area_code = 'LW' where ledger_id = {ledger_id}"
                             " and area_code = 'XX'")
    fixed = run_checks(warehouse_copy, gx_root)
    assert not fixed.blocking, fixed.gate_message()
    assert fixed.files == 1 and _validated_files(warehouse_copy) == validated | {ledger_id}


def test_an_already_validated_file_is_not_validated_again_unless_a_full_run_is_asked_for(warehouse_copy,
                                                                                         gx_root):
    from corridor.quality import QualityGateFailed, quality_gate, run_checks

    assert not run_checks(warehouse_copy, gx_root).blocking
    # A row of a validated file changes behind the loader's back (raw tables are append-only).
    _execute(warehouse_copy, "update raw.hr_talents set area_code = 'XX'"
                             " where ctid = (select min(ctid) from raw.hr_talents)")

    again = run_checks(warehouse_copy, gx_root)

    assert not again.blocking and again.files == 0
    raw = [s for s in again.suites if s.suite.startswith("raw.")]
    assert raw and all(s.scope == "no new files" and s.evaluated == 0 for s in raw)

    full = run_checks(warehouse_copy, gx_root, full=True)

    assert full.blocking and full.full and full.files == _loaded_files(warehouse_copy)
    [failure] = full.errors
    assert (failure.table, failure.check) == ("raw.hr_talents", "in_set:area_code")
    assert failure.samples[0]["area_code"] == "XX" and failure.samples[0]["file_name"].startswith("talent_")
    assert all(s.scope == "all rows" for s in full.suites)
    # The failed full run forgot what was validated: every file is due until a gate passes.
    assert _validated_files(warehouse_copy) == set()
    with pytest.raises(QualityGateFailed, match="raw.hr_talents"):
        quality_gate(warehouse_copy, root=gx_root)


def test_a_duplicate_mart_key_without_its_unique_index_blocks_the_gate(warehouse_copy, gx_root):
    from corridor.quality import run_checks

    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        for (name,) in conn.execute("select conname from pg_constraint where contype in ('p', 'u')"
                                    " and conrelid = 'marts.fct_tech_contracts'::regclass").fetchall():
            conn.execute(sql.SQL("alter table marts.fct_tech_contracts drop constraint {}").format(
                sql.Identifier(name)))
        registration_no = conn.execute("insert into marts.fct_tech_contracts select * from marts.fct_tech_contracts"
                                       " order by registration_no limit 1 returning registration_no").fetchone()[0]

    report = run_checks(warehouse_copy, gx_root)

    assert report.blocking
    [failure] = report.errors
    assert (failure.table, failure.check) == ("marts.fct_tech_contracts", "unique:registration_no")
    assert failure.samples == [{"registration_no": registration_no, "rows_with_key": 2}]


def test_the_gates_sessions_start_with_its_own_work_mem_and_jit(built_warehouse, gx_root, monkeypatch):
    """GX's connections and the gate's own start with the gate's session settings (GATE_SESSION_SETTINGS:
    work_mem 64MB and jit off unless CORRIDOR_GATE_WORK_MEM / CORRIDOR_GATE_JIT say otherwise, "" for the
    server's), whatever the process's PGOPTIONS (this test process has dbt's)."""
    import sqlalchemy

    from corridor.quality import context as gxc

    probe = "select current_setting('work_mem'), current_setting('jit')"
    monkeypatch.delenv("PGOPTIONS", raising=False)
    with psycopg.connect(built_warehouse.url) as conn:
        server = conn.execute(probe).fetchone()
    assert server != ("19MB", "off")

    def sessions() -> tuple[tuple, tuple]:
        with gxc.locked(gx_root):
            context = gxc.open_context(built_warehouse.url, gx_root)
            try:
                engine = context.data_sources.get(gxc.DATASOURCE).get_engine()
                with engine.connect() as gx_conn:
                    gx = tuple(gx_conn.execute(sqlalchemy.text(probe)).fetchone())
                engine.dispose()
            finally:
                gxc.release(context)
        with psycopg.connect(gxc.gate_url(built_warehouse.url)) as conn:
            own = conn.execute(probe).fetchone()
        return gx, own

    monkeypatch.setenv("CORRIDOR_GATE_WORK_MEM", "19MB")
    monkeypatch.delenv("CORRIDOR_GATE_JIT", raising=False)
    assert sessions() == (("19MB", "off"), ("19MB", "off"))
    monkeypatch.delenv("CORRIDOR_GATE_WORK_MEM")
    assert sessions() == (("64MB", "off"), ("64MB", "off"))
    monkeypatch.setenv("CORRIDOR_GATE_WORK_MEM", "")
    monkeypatch.setenv("CORRIDOR_GATE_JIT", "")
    assert sessions() == (server, server)
    # PGOPTIONS still reaches the gate's sessions, and a setting it names is the one they start with
    monkeypatch.delenv("CORRIDOR_GATE_WORK_MEM")
    monkeypatch.delenv("CORRIDOR_GATE_JIT")
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=23MB -c application_name=corridor_gate_test")
    probe = "select current_setting('work_mem'), current_setting('jit'), current_setting('application_name')"
    assert sessions() == (("23MB", "off", "corridor_gate_test"), ("23MB", "off", "corridor_gate_test"))


def test_a_revocation_naming_the_platform_by_its_id_passes_the_gate_a_recognition_without_a_category_blocks_it(
        warehouse_copy, gx_root, tmp_path):
    """Spec §1: a 撤销 or 更新 names the platform by its 平台编号, so its other cells may be blank (an incubator's
    撤销 without 孵化面积 included); a 新增 needs its 平台类别. The gate held every row to both before."""
    from corridor.ingest import ingest_feed
    from corridor.quality import run_checks
    from tests.conftest import TEST_PII_KEY
    from tests.test_parsers import PLATFORM_HEADERS, platform, write_district

    landing = tmp_path / "landing"
    (landing / "district").mkdir(parents=True)
    write_district(landing / "district", "LW_202103_v7.xlsx", platforms=[
        {**dict.fromkeys(PLATFORM_HEADERS), "平台编号": "LW-P-9001", "变动类型": "撤销"},
        platform(平台编号="LW-P-9002", 变动类型="撤销", 认定日期=None, **{"孵化面积（平方米）": None})])
    [outcome] = ingest_feed(warehouse_copy, "district", landing, pii_key=TEST_PII_KEY).files
    assert (outcome.status, outcome.rows_loaded, outcome.rows_quarantined) == ("loaded", 4, 0), outcome
    recognition = (f"update raw.district_platforms set change_type = '{{}}', recognised_date = date '2021-03-01'"
                   f" where ledger_id = {outcome.ledger_id} and platform_id = 'LW-P-9001'")

    _execute(warehouse_copy, recognition.format("新增"))  # a recognition without its category
    report = run_checks(warehouse_copy, gx_root)
    assert report.blocking
    assert [(f.table, f.check, f.unexpected_count) for f in report.errors] == [
        ("raw.district_platforms", "not_null:platform_category|change_type", 1)]

    _execute(warehouse_copy, recognition.format("撤销"))
    report = run_checks(warehouse_copy, gx_root)
    assert not report.blocking, report.gate_message()
