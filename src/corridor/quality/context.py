"""The GX 1.x file context in ``expectations/``, built get-or-create from the catalogue.

Layout (``context_root_dir`` = ``expectations/``)::

    great_expectations.yml          the context, with the data source ``corridor_warehouse``:
                                    PostgreSQL at ``${CORRIDOR_GX_URL}`` (set at run time, never
                                    written), one table asset per suite, batch definition
                                    ``whole_table``
    expectations/<schema>/<table>.json          the suites (suite ``<schema>.<table>``)
    validation_definitions/<schema.table>.json  suite × batch definition
    validation_definitions/raw.<table>@due.json the raw suites × the rows of the files not
                                    validated yet (table asset ``raw.<table>@due`` on the
                                    view ``ops.quality_due_<table>``)
    checkpoints/corridor_{raw,marts,kpi}.json   the checkpoints (raw → marts → kpi)
    uncommitted/                    git-ignored: validation results, data docs, the lock

Everything is compared before it is written: a second ``setup`` writes
nothing. Validation runs in PostgreSQL (SQLAlchemy execution engine), never in
pandas.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from corridor.config import project_root
from corridor.quality import catalog

log = logging.getLogger(__name__)

DATASOURCE = "corridor_warehouse"
URL_VAR = "CORRIDOR_GX_URL"
BATCH_DEFINITION = "whole_table"
# An incremental suite (raw.*) is also bound to a table asset on the view of
# the rows of the files not validated yet: ``<schema.table>@due`` (asset and
# validation definition), batch definition ``due_files``. The view
# (``ops.quality_due_<table>``, corridor.quality.state) reads the gate's record
# of validated files in the warehouse (catalog.due_rows_sql).
DUE = "@due"
DUE_BATCH_DEFINITION = "due_files"
DOCS_SITE = "local_site"
# The checkpoints ask for BASIC results without unexpected values: counts and
# observed values, each table's column expectations computed as one bundled
# aggregate query. SUMMARY (or a partial_unexpected_count above 0) adds, per
# expectation, a scan for a few unexpected values and one for their index
# list: half of the gate's database time at province scale, all of it spent
# on expectations that pass. An expectation that fails is validated once more
# with DETAIL_RESULT_FORMAT and its stored result replaced
# (corridor.quality.checks), so the data docs still show its unexpected
# values; the report's sample rows come from the catalogue's own SQL.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
DETAIL_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}

# The gate's sessions (GX's and its own) start with these settings, as dbt's do (transform.set_dbt_env):
# the server's default work_mem (4MB) made the gate's joins and aggregates over whole marts and a month's
# raw rows spill to disk at national scale: an increment's gate wrote 1.7 GB of temp files and took
# 40.0–42.6 s (4 runs on PostgreSQL 15 defaults), none and 37.6–38.6 s at 64MB, 35.4–38.0 s with jit off
# too (3 runs each; issue 11, benchmarks/README.md).
# CORRIDOR_GATE_WORK_MEM / CORRIDOR_GATE_JIT set another value, "" keeps the server's.
GATE_SESSION_SETTINGS = {"work_mem": ("CORRIDOR_GATE_WORK_MEM", "64MB"), "jit": ("CORRIDOR_GATE_JIT", "off")}


def gate_url(url: str) -> str:
    """``url`` with the gate's session settings (GATE_SESSION_SETTINGS) in its libpq ``options``."""
    from corridor import db

    return db.with_session_settings(url, {name: os.environ.get(var, default).strip()
                                          for name, (var, default) in GATE_SESSION_SETTINGS.items()})


def committed_dir() -> Path:
    """The committed GX file context in the code tree (``expectations/``): read, never written at run time."""
    return project_root() / "expectations"


def expectations_dir() -> Path:
    """The working GX context: ``CORRIDOR_STATE_DIR/gx``, a copy of the committed one kept in step.

    Validation results, data docs and the lock (``uncommitted/``) are written
    there, never into the code tree, so a read-only checkout runs the checks.
    Committed files that changed are copied over (atomically, file by file);
    files no longer committed are removed. ``setup(url, committed_dir())``
    rewrites the committed context itself (a developer's step).
    """
    from corridor import config

    work = config.load().state_dir / "gx"
    sync_context(committed_dir(), work)
    return work


def sync_context(source: Path, target: Path) -> None:
    wanted = {p.relative_to(source): p for p in source.rglob("*")
              if p.is_file() and "uncommitted" not in p.relative_to(source).parts}
    for rel, path in wanted.items():
        dest = target / rel
        data = path.read_bytes()
        if dest.is_file() and dest.read_bytes() == data:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    if target.is_dir():
        for path in target.rglob("*"):
            rel = path.relative_to(target)
            if (path.is_file() and "uncommitted" not in rel.parts and rel not in wanted
                    and not path.name.endswith(".tmp")):  # another process's copy in flight
                path.unlink()


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` as SQLAlchemy wants it (psycopg2 driver); query (e.g. ``host=<socket dir>``) kept."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg2"
    return urlunsplit(parts._replace(scheme=scheme))


_HELD: set[str] = set()
_WRITES = [0]  # files written by ensure() in this process (a second setup writes none)


@contextlib.contextmanager
def locked(root: Path | None = None) -> Iterator[None]:
    """One GX writer at a time per context folder (DAG runs and tests may share the repository).

    An exclusive ``flock`` on ``uncommitted/.corridor.lock``; re-entrant within a process.
    """
    folder = (root or expectations_dir()) / "uncommitted"
    key = str(folder.resolve())
    if key in _HELD:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".corridor.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_env(url: str) -> None:
    """Point ``${CORRIDOR_GX_URL}`` (the data source's connection string) at ``url`` in this process, with
    the gate's session settings (:func:`gate_url`)."""
    os.environ[URL_VAR] = sqlalchemy_url(gate_url(url))


def open_context(url: str, root: Path | None = None):
    """The file context, pointed at ``url`` through ``${CORRIDOR_GX_URL}``."""
    import great_expectations as gx

    open_env(url)
    root = root or expectations_dir()
    root.mkdir(parents=True, exist_ok=True)
    return gx.get_context(mode="file", context_root_dir=str(root))


# -- get-or-create -----------------------------------------------------------------------

def _settings(context) -> None:
    """No progress bars (they would flood the Airflow task log); saved once."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    current = context.variables.progress_bars
    if isinstance(current, dict):  # as read back from great_expectations.yml
        current = ProgressBarsConfig(**current)
    if current is None or current.globally or current.metric_calculations:
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
        _WRITES[0] += 1


def _datasource(context):
    template = "${" + URL_VAR + "}"
    existing = context.data_sources.all().get(DATASOURCE)
    if existing is not None and existing.type == "postgres" and str(existing.connection_string) == template:
        return existing
    log.info("GX: creating data source %s", DATASOURCE)
    _WRITES[0] += 1
    return context.data_sources.add_or_update_postgres(name=DATASOURCE, connection_string=template)


def _batch_definition(datasource, spec: catalog.SuiteSpec):
    try:
        asset = datasource.get_asset(spec.name)
    except LookupError:
        asset = None
    if asset is not None and (asset.table_name != spec.table or asset.schema_name != spec.schema):
        datasource.delete_asset(spec.name)
        asset = None
    if asset is None:
        log.info("GX: adding table asset %s", spec.name)
        _WRITES[0] += 1
        asset = datasource.add_table_asset(name=spec.name, table_name=spec.table, schema_name=spec.schema)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        _WRITES[0] += 1
        return asset.add_batch_definition_whole_table(BATCH_DEFINITION)


def due_name(spec: catalog.SuiteSpec) -> str:
    return spec.name + DUE


def _due_batch_definition(datasource, spec: catalog.SuiteSpec):
    """The ``@due`` batch: a table asset on the view ``ops.quality_due_<table>`` (corridor.quality.state)."""
    name, view = due_name(spec), catalog.due_view(spec)
    try:
        asset = datasource.get_asset(name)
    except LookupError:
        asset = None
    if asset is not None and (getattr(asset, "table_name", None) != view
                              or getattr(asset, "schema_name", None) != catalog.DUE_VIEW_SCHEMA):
        datasource.delete_asset(name)
        asset = None
    if asset is None:
        log.info("GX: adding table asset %s (view %s.%s)", name, catalog.DUE_VIEW_SCHEMA, view)
        _WRITES[0] += 1
        asset = datasource.add_table_asset(name=name, table_name=view, schema_name=catalog.DUE_VIEW_SCHEMA)
    try:
        return asset.get_batch_definition(DUE_BATCH_DEFINITION)
    except KeyError:
        _WRITES[0] += 1
        return asset.add_batch_definition_whole_table(DUE_BATCH_DEFINITION)


def _row_condition(condition: catalog.Condition):
    from great_expectations.expectations.row_conditions import Column

    column = Column(condition.column)
    if condition.op == "==":
        own = column == condition.value
    elif condition.op == "!=":
        own = column != condition.value
    elif condition.op == "in":
        own = column.is_in(condition.value)
    elif condition.op == "not in":
        own = column.is_not_in(condition.value)
    else:
        raise ValueError(f"unsupported row condition operator {condition.op!r}")
    for more in condition.also:
        own = own & _row_condition(more)
    return own


def build_expectation(check: catalog.Check):
    import great_expectations as gx

    cls = getattr(gx.expectations, check.expectation)
    kwargs = {k: v for k, v in check.kwargs.items() if v is not None}
    if check.when is not None:
        kwargs["row_condition"] = _row_condition(check.when)
    return cls(**kwargs, description=check.description, severity=check.severity,
               meta={"check": check.key})


def build_suite(spec: catalog.SuiteSpec):
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=spec.name,
        expectations=[build_expectation(c) for c in spec.checks],
        meta={"table": spec.name, "checkpoint": spec.checkpoint, "description": spec.description,
              "defined_in": "src/corridor/quality/catalog.py"},
    )


def _suite(context, spec: catalog.SuiteSpec):
    from great_expectations.exceptions import DataContextError

    wanted = build_suite(spec)
    try:
        existing = context.suites.get(spec.name)
    except DataContextError:
        existing = None
    if existing is not None and _same_suite(existing, wanted):
        return existing
    log.info("GX: writing suite %s", spec.name)
    _WRITES[0] += 1
    return context.suites.add_or_update(wanted)


def _same_suite(existing, wanted) -> bool:
    def normal(suite) -> list:
        return sorted(
            (e.expectation_type, repr(sorted(e.configuration.kwargs.items())), e.description, str(e.severity),
             repr(e.meta))
            for e in suite.expectations)

    meta = {k: v for k, v in (existing.meta or {}).items() if k != "great_expectations_version"}
    wanted_meta = {k: v for k, v in (wanted.meta or {}).items() if k != "great_expectations_version"}
    return meta == wanted_meta and normal(existing) == normal(wanted)


def _validation_definition(context, spec: catalog.SuiteSpec, batch_definition, suite, name: str | None = None):
    import great_expectations as gx
    from great_expectations.exceptions import DataContextError

    name = name or spec.name
    try:
        existing = context.validation_definitions.get(name)
    except DataContextError:
        existing = None
    if (existing is not None and existing.suite.name == suite.name and existing.suite.id == suite.id
            and existing.data.id == batch_definition.id):
        return existing
    log.info("GX: writing validation definition %s", name)
    _WRITES[0] += 1
    return context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))


def _checkpoint(context, name: str, validation_definitions: list):
    import great_expectations as gx
    from great_expectations.exceptions import DataContextError

    # No UpdateDataDocsAction: it rebuilds the site index once per validation
    # result (20 times a run, ~70 % of the run time); run_checks builds the
    # data docs once for all results of the run instead.
    actions: list = []
    try:
        existing = context.checkpoints.get(name)
    except DataContextError:
        existing = None
    if (existing is not None
            and [v.name for v in existing.validation_definitions] == [v.name for v in validation_definitions]
            and [v.id for v in existing.validation_definitions] == [v.id for v in validation_definitions]
            and existing.result_format == RESULT_FORMAT
            and [a.dict() for a in existing.actions] == [a.dict() for a in actions]):
        return existing
    log.info("GX: writing checkpoint %s", name)
    _WRITES[0] += 1
    return context.checkpoints.add_or_update(gx.Checkpoint(
        name=name, validation_definitions=validation_definitions, actions=actions, result_format=RESULT_FORMAT))


def ensure(context) -> dict:
    """Get or create the data source, assets, suites, validation definitions and checkpoints.

    Returns ``{checkpoint name: Checkpoint}``.
    """
    _settings(context)
    datasource = _datasource(context)
    by_checkpoint: dict[str, list] = {name: [] for name in catalog.CHECKPOINTS}
    for spec in catalog.all_suites():
        batch_definition = _batch_definition(datasource, spec)
        suite = _suite(context, spec)
        by_checkpoint[spec.checkpoint].append(_validation_definition(context, spec, batch_definition, suite))
        if spec.incremental:
            _validation_definition(context, spec, _due_batch_definition(datasource, spec), suite, due_name(spec))
    return {name: _checkpoint(context, name, vds) for name, vds in by_checkpoint.items()}


def build_data_docs(context, validation_result_ids: list | None = None, *, suites: bool = True) -> None:
    """Render the local data docs: the given validation results, the suites' pages and the index."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    ids = list(validation_result_ids or [])
    if suites:
        ids += [ExpectationSuiteIdentifier(name=spec.name) for spec in catalog.all_suites()]
    context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=ids)


def suite_pages_missing(root: Path | None = None) -> bool:
    site = (root or expectations_dir()) / "uncommitted" / "data_docs" / DOCS_SITE / "expectations"
    return any(not (site / f"{spec.schema}" / f"{spec.table}.html").is_file() for spec in catalog.all_suites())


def release(context) -> None:
    """Close the data source's database connections (GX keeps a pool open otherwise).

    An open session would, among others, stop ``CREATE DATABASE … TEMPLATE``
    of the warehouse and keep a dropped test database busy.
    """
    for datasource in context.data_sources.all().values():
        execution_engine = getattr(datasource, "_execution_engine", None)
        if execution_engine is not None:
            execution_engine.close()
        engine = getattr(datasource, "_engine", None)
        if engine is not None:
            engine.dispose()


def prepare(url: str, root: Path | None = None):
    """Open the context on ``url`` and get-or-create everything; return ``(context, wrote_anything)``.

    The caller holds :func:`locked`.
    """
    context = open_context(url, root)
    before = _WRITES[0]
    ensure(context)
    return context, _WRITES[0] != before


def setup(url: str, root: Path | None = None):
    """Get-or-create the whole GX file context on the warehouse at ``url``; return the context.

    Idempotent: a second call writes nothing. The URL reaches GX only through
    the ``CORRIDOR_GX_URL`` environment variable of this process.
    """
    from corridor.quality.state import ensure_table

    ensure_table(url)
    with locked(root):
        context, _ = prepare(url, root)
        try:
            build_data_docs(context)
        finally:
            release(context)
    return context
