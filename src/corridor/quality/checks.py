"""Run the checkpoints and say exactly what is wrong: :func:`run_checks` → :class:`QualityReport`.

One GX context per process (built get-or-create on first use, then reused);
the checkpoints run in order (raw → marts → kpi) in PostgreSQL. For every
failed expectation the report names the expectation, its severity, the table,
the column(s), a short message and up to five offending rows, fetched with a
direct SQL query built from the catalogue. The checkpoints ask GX for counts
only (``context.RESULT_FORMAT``); the few expectations that fail are validated
again with SUMMARY (:func:`_detail_failures`) for their unexpected values.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from corridor.progress import Progress
from corridor.quality import catalog

log = logging.getLogger(__name__)

SAMPLE_ROWS = 5
# Tables about people (PIPL: the talent feed). What the gate shows of them (its report's sample rows, which the
# task log and the data team's alert mail carry, and the unexpected values in the data docs) has every resident
# ID shape masked: the check that person_key is a pseudonym fails precisely when an ID number is there.
PERSONAL_TABLES = frozenset({"raw.hr_talents", "marts.fct_talent_intake"})
KEEP_RUNS = 10  # validation results (and their data docs pages) kept per suite under uncommitted/
RUN_NAME = "corridor-quality"


class QualityGateFailed(Exception):
    """An error-level expectation failed: nothing may be published.

    The message names each failed expectation, its table and sample offending
    rows; ``report`` holds the whole :class:`QualityReport`.
    """

    def __init__(self, report: QualityReport) -> None:
        self.report = report
        super().__init__(report.gate_message())


@dataclass
class Failure:
    checkpoint: str
    suite: str
    table: str                  # schema.table
    expectation: str            # GX class name, e.g. ExpectCompoundColumnsToBeUnique
    severity: str               # "error" (blocks) or "warning"
    column: str | None
    message: str
    unexpected_count: int | None = None
    samples: list[Any] = field(default_factory=list)  # up to 5 rows (dicts) or values
    check: str = ""             # the catalogue key (expectation meta "check")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def as_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "suite": self.suite, "table": self.table,
                "expectation": self.expectation, "severity": self.severity, "column": self.column,
                "message": self.message, "unexpected_count": self.unexpected_count,
                "samples": self.samples, "check": self.check}

    def describe(self) -> str:
        where = f"{self.table}" + (f" ({self.column})" if self.column else "")
        lines = [f"[{self.severity.upper()}] {self.expectation} on {where}: {self.message}"]
        # the file, then the failing columns: a wide raw row is cut at 400 characters, never before them
        first = ("file_name", *(self.column.split(", ") if self.column else ()))
        for sample in self.samples:
            lines.append(f"    e.g. {_show_sample(sample, first)}")
        return "\n".join(lines)


@dataclass
class SuiteResult:
    checkpoint: str
    suite: str
    evaluated: int
    passed: int
    failed: int      # error-level failures
    warnings: int    # warning-level failures
    scope: str = "all rows"  # raw.* on an incremental run: "N new files" or "no new files"

    def as_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "suite": self.suite, "expectations": self.evaluated,
                "passed": self.passed, "warnings": self.warnings, "failed": self.failed, "scope": self.scope}


@dataclass
class QualityReport:
    suites: list[SuiteResult]
    failures: list[Failure]
    as_of: date | None
    data_docs_path: Path | None
    seconds: float
    checked_at: datetime
    provisional_months: dict[str, list[str]] = field(default_factory=dict)
    full: bool = True                 # False: raw rows of the files not validated yet only
    files: int = 0                    # loaded files whose raw rows this run validated
    build_id: int | None = None       # the dbt build whose marts and KPI layer it validated (ops.dbt_builds)

    @property
    def blocking(self) -> bool:
        return any(f.is_error for f in self.failures)

    @property
    def errors(self) -> list[Failure]:
        return [f for f in self.failures if f.is_error]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if not f.is_error]

    @property
    def checkpoints(self) -> list[dict]:
        """Per checkpoint: name, suites, expectations evaluated, passed, failed (error), warnings."""
        out: dict[str, dict] = {}
        for s in self.suites:
            c = out.setdefault(s.checkpoint, {"name": s.checkpoint, "suites": 0, "expectations": 0, "passed": 0,
                                              "failed": 0, "warnings": 0})
            c["suites"] += 1
            c["expectations"] += s.evaluated
            c["passed"] += s.passed
            c["failed"] += s.failed
            c["warnings"] += s.warnings
        return list(out.values())

    def totals(self) -> dict[str, int]:
        return {"suites": len(self.suites), "expectations": sum(s.evaluated for s in self.suites),
                "passed": sum(s.passed for s in self.suites), "warnings": sum(s.warnings for s in self.suites),
                "failed": sum(s.failed for s in self.suites)}

    def summary_text(self) -> str:
        head = (f"{'checkpoint':<16}{'suite':<34}{'expectations':>13}{'passed':>8}{'warnings':>10}{'failed':>8}"
                f"  {'rows':<16}")
        lines = [head, "-" * len(head)]
        for s in self.suites:
            lines.append(f"{s.checkpoint:<16}{s.suite:<34}{s.evaluated:>13}{s.passed:>8}{s.warnings:>10}"
                         f"{s.failed:>8}  {s.scope:<16}")
        t = self.totals()
        lines.append("-" * len(head))
        lines.append(f"{'total':<16}{str(t['suites']) + ' suites':<34}{t['expectations']:>13}{t['passed']:>8}"
                     f"{t['warnings']:>10}{t['failed']:>8}")
        lines.append("")
        verdict = ("BLOCKED: error-level expectations failed; nothing may be published"
                   if self.blocking else "PASSED: publication may proceed")
        if self.warnings and not self.blocking:
            verdict += f" ({len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}, not blocking)"
        lines.append(f"quality gate: {verdict}")
        lines.append(f"data as of {self.as_of.isoformat() if self.as_of else 'unknown'}; "
                     f"checks took {self.seconds:.1f} s; {self.mode_text()}")
        if self.data_docs_path:
            lines.append(f"data docs: {self.data_docs_path}")
        if self.provisional_months:
            lines.append(f"provisional months (a source has not delivered): {', '.join(self.provisional_months)}")
        for f in [*self.errors, *self.warnings]:
            lines.append(f.describe())
        return "\n".join(lines)

    def mode_text(self) -> str:
        files = f"{self.files:,} loaded file{'s' if self.files != 1 else ''}"
        if self.full:
            return f"full run: raw rows of all {files} (whole tables: a full run, or no file validated before)"
        return (f"incremental run: raw rows of the {files} not validated by an earlier passing gate "
                "(a full run: corridor.quality.quality_gate(full=True) or CORRIDOR_GATE_FULL=1)")

    def gate_message(self) -> str:
        errors = self.errors
        lines = [f"Quality gate failed: {len(errors)} error-level expectation{'s' if len(errors) != 1 else ''} "
                 f"failed (data as of {self.as_of.isoformat() if self.as_of else 'unknown'}); "
                 "no scorecard may be published."]
        lines += [f.describe() for f in errors]
        if self.warnings:
            lines.append(f"(and {len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''})")
        if self.data_docs_path:
            lines.append(f"data docs: {self.data_docs_path}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """A small JSON-able summary (the gate's XCom, the scorecards' attestation)."""
        return {
            "blocking": self.blocking,
            "passed": not self.blocking,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 1),
            "totals": self.totals(),
            "checkpoints": self.checkpoints,
            "suites": [s.as_dict() for s in self.suites],
            "failures": [f.as_dict() for f in self.failures],
            "data_docs_path": str(self.data_docs_path) if self.data_docs_path else None,
            "provisional_months": self.provisional_months,
            "mode": "full" if self.full else "incremental",
            "files_validated": self.files,
            "build_id": self.build_id,
        }


# -- the run ------------------------------------------------------------------------------

def run_checks(url: str, root: Path | None = None, *, full: bool = False) -> QualityReport:
    """Run every checkpoint on the warehouse at ``url``; never raises for failed expectations.

    The raw suites (``SuiteSpec.incremental``) validate the rows of the loaded
    files no passing gate has validated yet, on their ``@due`` batch; a table
    with no such rows is skipped (unless its feed's new files should have
    brought rows: then the reconciliation says which). ``full``, or the
    warehouse's first gate (no file validated yet): every file, whole tables
    (:mod:`corridor.quality.state`). The other suites read
    their tables whole. A run without error-level failures records its files
    as validated.
    """
    import psycopg
    from great_expectations.core.run_identifier import RunIdentifier

    from corridor import transform
    from corridor.quality import context as gxc
    from corridor.quality import state
    from corridor.quality.completeness import as_of_date, provisional_months

    started = time.perf_counter()
    checked_at = datetime.now(UTC)
    suites: list[SuiteResult] = []
    failures: list[Failure] = []
    specs = {spec.name: spec for spec in catalog.all_suites()}
    # No dbt command writes while the gate reads (transform.warehouse_read): it validates what one build wrote,
    # and says which (a publication refuses a gate of an earlier build).
    with (transform.warehouse_read(url, "quality gate", log.info), gxc.locked(root),
          psycopg.connect(gxc.gate_url(url), autocommit=True) as conn):
        build_id = transform.last_build_id(url)
        state.lock(conn)
        try:
            state.ensure_table(conn)
            if full:
                state.forget(conn)
            due = state.due_files(conn)
            due_ids = [row[0] for row in due]
            # Nothing validated yet (a full run, the warehouse's first gate): every file is due, and the raw
            # tables are validated whole, a superset of the due rows, through their own assets. The @due view
            # would filter each row by a search of an array of every file's ledger id (twice the gate's
            # time at province).
            whole = full or not state.any_validated(conn)
            # A fresh context each run (GX 1.x resolves stores through the process's
            # current context); ensure() only compares when nothing changed.
            context, wrote = gxc.prepare(url, root)
            # a line a suite in the log (the gate of a national increment takes ~40 s, of a full build ~90 s),
            # and a live one on a terminal
            progress = Progress("quality gate", total=len(specs), unit="suites")
            try:
                run_id = RunIdentifier(run_name=RUN_NAME, run_time=checked_at)
                result_ids = []
                for name in catalog.CHECKPOINTS:
                    try:
                        checkpoint = context.checkpoints.get(name)
                        definitions = list(checkpoint.validation_definitions)
                    except Exception as exc:  # fail closed: a checkpoint that cannot run blocks publication
                        log.exception("checkpoint %s could not run", name)
                        failures.append(_checkpoint_error(name, exc))
                        suites.append(SuiteResult(name, f"{name} (not run)", 0, 0, 1, 0))
                        progress.advance(len(catalog.suites_of(name)))
                        continue
                    for definition in definitions:
                        started_suite, before = time.perf_counter(), len(suites)
                        try:
                            spec = specs.get(definition.name)
                            scope = "all rows"
                            if spec is not None and spec.incremental and not whole:
                                scope = _due_scope(conn, spec, due)
                                if scope is None:
                                    suites.append(SuiteResult(name, definition.name, 0, 0, 0, 0, "no new files"))
                                    continue
                                definition = context.validation_definitions.get(gxc.due_name(spec))
                            try:
                                suite_result = definition.run(checkpoint_id=checkpoint.id, run_id=run_id,
                                                              result_format=gxc.RESULT_FORMAT)
                            except Exception as exc:  # fail closed
                                log.exception("validation %s could not run", definition.name)
                                failures.append(_checkpoint_error(name, exc, definition.name))
                                suites.append(
                                    SuiteResult(name, f"{definition.name} (not run)", 0, 0, 1, 0, scope))
                                continue
                            result_id = _result_id(definition, run_id, suite_result)
                            result_ids.append(result_id)
                            _detail_failures(context, definition, result_id, suite_result)
                            s, f = _read_suite_result(name, suite_result, conn, due=scope != "all rows")
                            s.scope = scope
                            suites.append(s)
                            failures.extend(f)
                        finally:
                            _suite_done(progress, suites[before:], time.perf_counter() - started_suite)
                as_of = as_of_date(conn)
                provisional = provisional_months(conn, catalog.window_start(), as_of) if as_of else {}
                if not any(f.is_error for f in failures):
                    state.record(conn, due_ids, checked_at)
                _prune(root or gxc.expectations_dir())
                gxc.build_data_docs(context, result_ids, suites=wrote or gxc.suite_pages_missing(root))
                docs = _docs_path(context)
            finally:
                progress.close()
                gxc.release(context)
        finally:
            state.unlock(conn)
    failures.sort(key=lambda f: (not f.is_error, catalog.CHECKPOINTS.index(f.checkpoint), f.suite))
    return QualityReport(suites, failures, as_of, docs, time.perf_counter() - started, checked_at, provisional,
                         full=whole, files=len(due_ids), build_id=build_id)


def _suite_done(progress, results: list[SuiteResult], seconds: float) -> None:
    """A suite validated (or skipped, or failed to run): a line in the log naming it, and the progress."""
    progress.advance(1)
    for r in results:
        outcome = (r.scope if r.scope == "no new files" else
                   f"{r.passed}/{r.evaluated} passed, {r.failed} failed, {r.warnings} warnings ({r.scope})")
        log.info("quality gate %d/%d suites: %s %s: %s, %.1f s", progress.done, progress.total, r.checkpoint,
                 r.suite, outcome, seconds)


def _due_scope(conn, spec: catalog.SuiteSpec, due: list[tuple]) -> str | None:
    """``"N new files"`` when ``spec``'s table has rows of files not validated yet, else None (nothing to do).

    A table that reconciles with the ledger is validated too when its feed's new
    files say they loaded rows it does not have (the reconciliation names them).
    """
    from corridor.quality import state

    feed = spec.table.split("_")[0]  # district_*, techmarket_contracts, bank_loans, hr_talents
    files = [row for row in due if row[1] == feed]
    if not files:
        return None
    expected = (any(c.key == "reconciles_with_load_ledger" for c in spec.checks)
                and any(row[3] > 0 for row in files))
    if not expected and not state.has_rows(conn, spec.schema, spec.table, [row[0] for row in files]):
        return None
    return f"{len(files):,} new file{'s' if len(files) != 1 else ''}"


def _result_id(definition, run_id, suite_result):
    """The key GX's ValidationDefinition.run stored the result under (what a checkpoint returns)."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    return ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
        run_id=run_id, batch_identifier=suite_result.batch_id)


def _detail_failures(context, definition, result_id, suite_result) -> None:
    """Validate each failed expectation of a suite once more with the detailed result format.

    The checkpoints ask counts and observed values only (``context.RESULT_FORMAT``:
    no scan for unexpected values of the ~200 expectations that pass); the
    unexpected values of those that failed come from this second validation of
    just them. Their results replace the checkpoint's in ``suite_result`` and in
    the validation results store (what the data docs show).
    """
    from corridor.quality.context import DETAIL_RESULT_FORMAT

    failed = [i for i, r in enumerate(suite_result.results) if not r.success]
    if not failed:
        return
    try:
        batch = definition.data.get_batch()
    except Exception as exc:  # the detail is a courtesy: the failure stands without it
        log.warning("no detail for the failures of %s: %s", suite_result.suite_name, exc)
        return
    for i in failed:
        r = suite_result.results[i]
        try:
            detailed = batch.validate(r.expectation_config.to_domain_obj(), result_format=DETAIL_RESULT_FORMAT)
        except Exception as exc:
            log.warning("no detail for %s/%s: %s", suite_result.suite_name, r.expectation_config.type, exc)
            continue
        # data that changed in between keeps the checkpoint's verdict, and so does a detail that could not be
        # evaluated (the checkpoint's result was: it stands, a warning as a warning)
        if not detailed.success and not _raised(detailed):
            suite_result.results[i] = detailed
    if suite_result.suite_name in PERSONAL_TABLES:  # the stored results are what the data docs show
        for r in suite_result.results:
            if isinstance(r.result, dict):
                r.result = _masked(r.result)
    try:
        context.validation_results_store.set(result_id, suite_result)
    except Exception as exc:
        log.warning("could not store the detailed results of %s: %s", suite_result.suite_name, exc)


def _checkpoint_error(name: str, exc: Exception, definition: str | None = None) -> Failure:
    tables = definition or ", ".join(s.name for s in catalog.suites_of(name))
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    what = f"validation {definition}" if definition else f"checkpoint {name}"
    return Failure(name, definition or name, tables, "Checkpoint", "error", None,
                   f"{what} could not run ({type(exc).__name__}: {first_line})", check="checkpoint")


def _read_suite_result(checkpoint: str, suite_result, conn, *, due: bool = False) -> tuple[SuiteResult,
                                                                                           list[Failure]]:
    passed = failed = warned = 0
    failures = []
    for r in suite_result.results:
        if r.success:
            passed += 1
            continue
        failure = _failure(checkpoint, suite_result.suite_name, r, conn, due=due)
        failures.append(failure)
        if failure.is_error:
            failed += 1
        else:
            warned += 1
    return SuiteResult(checkpoint, suite_result.suite_name, len(suite_result.results), passed, failed,
                       warned), failures


def _severity(config) -> str:
    value = getattr(config, "severity", None)
    value = getattr(value, "value", value) or "critical"
    return "error" if value == "critical" else "warning"


def _failure(checkpoint: str, suite_name: str, r, conn, *, due: bool = False) -> Failure:
    config = r.expectation_config
    key = (config.meta or {}).get("check", "")
    found = catalog.find_check(suite_name, key)
    spec, check = found if found else (None, None)
    expectation = check.expectation if check else config.type
    kwargs = config.kwargs
    columns = (check.columns if check and check.columns else
               tuple(c for c in (kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")) if c)
               or tuple(kwargs.get("column_list") or ()))
    result = r.result or {}
    description = config.description or (check.description if check else config.type)
    raised = _raised(r)
    count = result.get("unexpected_count")
    if count is None and isinstance(result.get("observed_value"), int) and expectation == "UnexpectedRowsExpectation":
        count = result["observed_value"]

    if raised:
        message = f"{description}: could not be evaluated ({_exception_message(r.exception_info)})"
    elif count is not None:
        total = result.get("element_count")
        rows = "row" if count == 1 else "rows"
        message = (f"{description}: {count:,} failing {rows} of {total:,}" if total is not None
                   else f"{description}: {count:,} offending {rows}")
    else:
        message = f"{description}: observed {_observed(result)}"

    samples: list[Any] = []
    if spec and check and not raised:
        query = catalog.sample_query(spec, check, SAMPLE_ROWS, due=due)
        if query:
            try:
                cur = conn.execute(query)
                names = [d.name for d in cur.description]
                samples = [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]
            except Exception as exc:  # the sample is a courtesy: never hide the failure behind it
                log.warning("sample query of %s/%s failed: %s", suite_name, key, exc)
    if not samples and result.get("partial_unexpected_list"):
        samples = [_jsonable(v) for v in result["partial_unexpected_list"][:SAMPLE_ROWS]]
    if suite_name in PERSONAL_TABLES:
        samples, message = _masked(samples), _masked(message)
    table = spec.name if spec else suite_name
    # fail closed: an expectation that could not be evaluated blocks, whatever its severity (a warning
    # that cannot run says nothing of the data)
    severity = "error" if raised else _severity(config)
    return Failure(checkpoint, suite_name, table, expectation, severity,
                   ", ".join(columns) or None, message, count, samples, key)


def _raised(r) -> bool:
    """Could the expectation not be evaluated (an exception, not a verdict on the data)?"""
    raised = (r.exception_info or {}).get("raised_exception")
    if not raised and isinstance(r.exception_info, dict):  # keyed by metric when a metric failed
        raised = any(isinstance(v, dict) and v.get("exception_message") for v in r.exception_info.values())
    return bool(raised)


def _exception_message(info) -> str:
    if not isinstance(info, dict):
        return str(info)
    if info.get("exception_message"):
        return str(info["exception_message"]).splitlines()[0][:300]
    for v in info.values():
        if isinstance(v, dict) and v.get("exception_message"):
            return str(v["exception_message"]).splitlines()[0][:300]
    return "unknown error"


def _observed(result: dict) -> str:
    observed = result.get("observed_value")
    details = result.get("details") or {}
    mismatched = details.get("mismatched")
    if mismatched:
        return f"{observed} (mismatched: {mismatched})"
    return str(_jsonable(observed))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value.normalize())
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _masked(value: Any) -> Any:
    """``value`` (a sample row, a message, a GX result) as the gate may show it of a table about people."""
    from corridor.pii import mask_value

    return mask_value(value)


def _show_sample(sample: Any, first: tuple[str, ...] = ()) -> str:
    """A sample row as ``column=value, …``, the ``first`` columns (those present) leading."""
    if isinstance(sample, dict):
        leading = [k for k in dict.fromkeys(first) if k in sample]
        keys = [*leading, *(k for k in sample if k not in leading)]
        text = ", ".join(f"{k}={sample[k]}" for k in keys)
    else:
        text = str(sample)
    return text if len(text) <= 400 else text[:397] + "..."


def _docs_path(context) -> Path | None:
    from corridor.quality.context import DOCS_SITE

    try:
        urls = context.get_docs_sites_urls(site_name=DOCS_SITE)
    except Exception as exc:
        log.warning("no data docs: %s", exc)
        return None
    url = urls[0]["site_url"] if urls else None
    if not url:
        return None
    return Path(unquote(urlsplit(url).path)) if url.startswith("file:") else Path(url)


def _prune(root: Path, keep: int = KEEP_RUNS) -> None:
    """Keep the latest ``keep`` runs of validation results and their data docs pages."""
    for base in (root / "uncommitted" / "validations", root / "uncommitted" / "data_docs" / "local_site" / "validations"):
        if not base.is_dir():
            continue
        for run_name_dir in base.glob(f"**/{RUN_NAME}"):
            runs = sorted((p for p in run_name_dir.iterdir() if p.is_dir()), key=lambda p: p.name)
            for old in runs[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
