"""The quality rules, as data: one suite per table, grouped into three checkpoints.

Nothing here imports Great Expectations: a :class:`Check` names a GX 1.x
expectation class and its arguments, and carries what the report needs to
explain a failure (a description in words and the SQL predicate that selects
the offending rows, for the sample). ``corridor.quality.context`` turns these
into GX suites, validation definitions and checkpoints.

Where the rules come from (one place each, read, never copied):

- column contracts of ``raw.*``: ``src/corridor/sql/raw.sql``;
- accepted values: the parsers' constants (``corridor.feeds.*``);
- the KPI contract: ``dbt_project/models/kpi/_kpi__models.yml``;
- rate KPIs and ranked KPIs: ``dbt_project/seeds/kpi_targets.csv``;
- the KPI window and the ranking cap: ``dbt_project/dbt_project.yml`` vars;
- the data's as-of date: ``intermediate.int_feed_periods_delivered``
  (latest complete month over all feeds, as dbt's ``kpi_periods`` uses it).

Severity: GX 1.x's expectation ``severity`` — ``critical`` blocks
publication, ``warning`` is reported and does not block.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from corridor.config import project_root
from corridor.quality.completeness import missing_deliveries_sql

CRITICAL = "critical"
WARNING = "warning"

# The checkpoints, in the order they run.
CHECKPOINT_RAW = "corridor_raw"
CHECKPOINT_MARTS = "corridor_marts"
CHECKPOINT_KPI = "corridor_kpi"
CHECKPOINTS = (CHECKPOINT_RAW, CHECKPOINT_MARTS, CHECKPOINT_KPI)

USCC_PATTERN = "^[0-9A-HJ-NPQRTUWXY]{18}$"  # GB 32100-2015 alphabet (no I, O, S, V, Z)
USCC_RULE = "a unified social credit code (18 characters of GB 32100-2015)"
PERSON_KEY_PATTERN = "^[0-9a-f]{64}$"      # HMAC-SHA256 hex (corridor.pii)
REGISTRATION_NO_PATTERN = "^[0-9]{16}$"

# Column names that would carry personal data (PIPL): never in any schema.
PERSONAL_DATA_COLUMNS = ("id_number", "name", "person_name", "talent_name", "reporter", "reporter_name",
                         "contact_phone", "phone", "填报人", "联系电话")

# KPIs measured over the year to d (kpis.md: "(年)"): they restart every
# January, so their jumps are compared with the same month a year earlier.
YEAR_TO_DATE_KPIS = ("K12", "K15", "K17", "K18")
# An implausible jump: more than this factor up or down against the period
# compared with, once the values are at least JUMP_FLOOR (small counts jump).
JUMP_FACTOR = 3
JUMP_FLOOR = 10


# -- the model -------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """A row condition: ``column op value`` with op in ==, !=, in, not in; and each of ``also`` besides."""

    column: str
    op: str
    value: Any
    also: tuple[Condition, ...] = ()

    def sql(self) -> str:
        column = ident(self.column)
        if self.op in ("in", "not in"):
            own = f"{column} {self.op} ({', '.join(literal(v) for v in self.value)})"
        else:
            own = f"{column} {'=' if self.op == '==' else '<>'} {literal(self.value)}"
        return " and ".join([own, *(c.sql() for c in self.also)])

    def describe(self) -> str:
        return " and ".join([f"{self.column} {self.op} {_show(self.value)}", *(c.describe() for c in self.also)])


@dataclass(frozen=True)
class Check:
    """One expectation of a suite.

    ``key`` is stable within the suite (it is stored in the expectation's
    ``meta`` and maps a GX result back to this check). ``violation`` is a SQL
    predicate on the suite's table that selects offending rows; for a
    ``UnexpectedRowsExpectation`` the query itself gives them.
    """

    key: str
    expectation: str
    kwargs: dict[str, Any]
    description: str
    severity: str = CRITICAL
    violation: str | None = None
    when: Condition | None = None
    columns: tuple[str, ...] = ()

    @property
    def query(self) -> str | None:
        return self.kwargs.get("unexpected_rows_query")


@dataclass
class SuiteSpec:
    """A suite on one table (``schema.table``), run by one checkpoint."""

    schema: str
    table: str
    checkpoint: str
    description: str
    checks: list[Check] = field(default_factory=list)
    # Append-only, one ops.load_ledger file per row (raw.*): the gate validates the
    # rows of the files no passing gate has validated yet (``due_ledger_ids_sql``),
    # unless a full run is asked for (corridor.quality.checks).
    incremental: bool = False

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def qualified_table(self) -> str:
        return f"{ident(self.schema)}.{ident(self.table)}"

    # -- builders: one per kind of rule -------------------------------------------------
    def _add(self, check: Check) -> None:
        if any(c.key == check.key for c in self.checks):
            raise ValueError(f"{self.name}: duplicate check key {check.key}")
        self.checks.append(check)

    def columns_match(self, columns: list[str], *, ordered: bool = False, source: str = "contract") -> None:
        if ordered:
            self._add(Check("columns", "ExpectTableColumnsToMatchOrderedList", {"column_list": list(columns)},
                            f"the columns are exactly those of the {source}, in order"))
        else:
            self._add(Check("columns", "ExpectTableColumnsToMatchSet",
                            {"column_set": list(columns), "exact_match": True},
                            f"the columns are exactly those of the {source}"))

    def row_count(self, min_value: int | None = 1, max_value: int | None = None, *,
                  severity: str = CRITICAL) -> None:
        if min_value == max_value:
            text = f"exactly {min_value} rows"
        elif max_value is None:
            text = f"at least {min_value} row{'s' if min_value != 1 else ''}"
        else:
            text = f"between {min_value} and {max_value} rows"
        self._add(Check("row_count", "ExpectTableRowCountToBeBetween",
                        {"min_value": min_value, "max_value": max_value}, f"the table has {text}",
                        severity=severity))

    def required_present(self, columns: list[str]) -> None:
        """Every required column has a value (one query for all of them)."""
        missing = " or ".join(f"{ident(c)} is null" for c in columns)
        self.rows("required_values_present", f"""
            select *
            from batch_rows
            where {missing}
            """, what=f"the required values are present ({', '.join(columns)})", columns=tuple(columns))

    def not_null(self, column: str, *, when: Condition | None = None, why: str = "required") -> None:
        suffix = f" when {when.describe()}" if when else ""
        self._add(Check(f"not_null:{column}" + (f"|{when.column}" if when else ""),
                        "ExpectColumnValuesToNotBeNull", {"column": column},
                        f"{column} is present ({why}){suffix}",
                        violation=f"{ident(column)} is null", when=when, columns=(column,)))

    def in_set(self, column: str, values: tuple | list, *, what: str = "accepted values",
               when: Condition | None = None) -> None:
        self._add(Check(f"in_set:{column}", "ExpectColumnValuesToBeInSet",
                        {"column": column, "value_set": list(values)},
                        f"{column} is one of the {what} ({', '.join(map(str, values))})",
                        violation=f"{ident(column)} is not null and {ident(column)} not in "
                                  f"({', '.join(literal(v) for v in values)})",
                        when=when, columns=(column,)))

    def between(self, column: str, min_value: float | None = None, max_value: float | None = None, *,
                strict_min: bool = False, when: Condition | None = None, severity: str = CRITICAL,
                key: str | None = None, what: str | None = None) -> None:
        parts, bad = [], []
        if min_value is not None:
            parts.append(f"{'>' if strict_min else '≥'} {min_value}")
            bad.append(f"{ident(column)} {'<=' if strict_min else '<'} {min_value}")
        if max_value is not None:
            parts.append(f"≤ {max_value}")
            bad.append(f"{ident(column)} > {max_value}")
        suffix = f" when {when.describe()}" if when else ""
        self._add(Check(key or f"between:{column}", "ExpectColumnValuesToBeBetween",
                        {"column": column, "min_value": min_value, "max_value": max_value,
                         "strict_min": strict_min},
                        what or f"{column} is {' and '.join(parts)}{suffix}", severity=severity,
                        violation=" or ".join(bad), when=when, columns=(column,)))

    def matches(self, column: str, pattern: str, *, what: str) -> None:
        self._add(Check(f"regex:{column}", "ExpectColumnValuesToMatchRegex", {"column": column, "regex": pattern},
                        f"{column} is {what}",
                        violation=f"{ident(column)} !~ {literal(pattern)}", columns=(column,)))

    def unique(self, *columns: str, what: str = "business key") -> None:
        """The key is unique: GX's uniqueness expectation over the batch.

        On an incremental suite the batch is the files not validated yet, so a
        second check looks for their keys among the rows of files validated before
        (:meth:`unique_across_files`).
        """
        cols = ", ".join(ident(c) for c in columns)
        violation = (f"({cols}) in (select {cols} from {self.qualified_table} group by {cols} "
                     f"having count(*) > 1)")
        if len(columns) == 1:
            self._add(Check(f"unique:{columns[0]}", "ExpectColumnValuesToBeUnique", {"column": columns[0]},
                            f"{columns[0]} is unique ({what})", violation=violation, columns=columns))
        else:
            self._add(Check(f"unique:{','.join(columns)}", "ExpectCompoundColumnsToBeUnique",
                            {"column_list": list(columns)},
                            f"({', '.join(columns)}) is unique ({what})", violation=violation, columns=columns))
        if self.incremental:
            self.unique_across_files(*columns, what=what)

    def unique_across_files(self, *columns: str, what: str) -> None:
        """No row of the batch (files not validated yet) repeats the key of a row of a file validated before.

        An inner join, so that PostgreSQL hashes the batch (a month's rows), not
        the table (a semi join hashed the earlier rows: 39 MB of temp files for
        techmarket at province); a row is listed once per earlier row with its key.
        """
        match = "\n                and ".join(f"earlier.{ident(c)} = batch_rows.{ident(c)}" for c in columns)
        self.rows(f"unique_across_files:{','.join(columns)}", f"""
            select batch_rows.*, earlier.ledger_id as earlier_ledger_id
            from batch_rows
            inner join {self.qualified_table} as earlier
                on {match}
            where earlier.ledger_id not in ({due_ledger_ids_sql()})
            """, what=f"({', '.join(columns)}) is unique ({what}) across files: no new row repeats the key of "
                      "a row of a file validated before", columns=columns)

    def unique_enforced(self, *columns: str, what: str = "business key") -> None:
        """The key is unique, counted only where no unique index already guarantees it.

        GX's uniqueness expectations sort or hash the whole table (at province
        fct_projects spilled 150 MB of temp files and took 3–6 s; dim_enterprise's
        window over 0.76 M rows 3 s). PostgreSQL guarantees the uniqueness of the
        rows whose key columns are all present when a valid, non-partial unique
        index covers a subset of the key: those rows are skipped (the check reads
        ``pg_index`` once); the rest (every row, without such an index; otherwise
        only rows with a missing key column, which such an index does not guard)
        are grouped as before. Rows whose key columns are all missing are ignored,
        as GX ignores them.
        """
        cols = ", ".join(ident(c) for c in columns)
        names = ", ".join(literal(c) for c in columns)
        any_missing = " or ".join(f"{ident(c)} is null" for c in columns)
        all_missing = " and ".join(f"{ident(c)} is null" for c in columns)
        self.rows(f"unique:{','.join(columns)}", f"""
            with enforced as (
                select 1
                from pg_catalog.pg_index as pg_index
                where pg_index.indrelid = {literal(self.qualified_table)}::regclass
                    and pg_index.indisunique
                    and pg_index.indisvalid
                    and pg_index.indpred is null
                    and pg_index.indexprs is null
                    and (
                        select array_agg(pg_attribute.attname::text)
                        from pg_catalog.pg_attribute as pg_attribute
                        where pg_attribute.attrelid = pg_index.indrelid
                            and pg_attribute.attnum = any(pg_index.indkey)
                    ) <@ array[{names}]
            )
            select {cols}, count(*) as rows_with_key
            from batch_rows
            where (not exists (select 1 from enforced) or {any_missing})
                and not ({all_missing})
            group by {cols}
            having count(*) > 1
            """, what=f"({', '.join(columns)}) is unique ({what}; counted where no unique index guarantees it)",
            columns=columns)

    def a_ge_b(self, column_a: str, column_b: str, *, what: str, severity: str = CRITICAL) -> None:
        a, b = ident(column_a), ident(column_b)
        self._add(Check(f"a_ge_b:{column_a},{column_b}", "ExpectColumnPairValuesAToBeGreaterThanB",
                        {"column_A": column_a, "column_B": column_b, "or_equal": True,
                         "ignore_row_if": "either_value_is_missing"},
                        what, severity=severity,
                        violation=f"{a} is not null and {b} is not null and {a} < {b}",
                        columns=(column_a, column_b)))

    def rows(self, key: str, query: str, *, what: str, severity: str = CRITICAL,
             columns: tuple[str, ...] = ()) -> None:
        """A rule in SQL: ``query`` returns the offending rows; it reads this table as ``batch_rows``."""
        self._add(Check(key, "UnexpectedRowsExpectation", {"unexpected_rows_query": with_batch(query)}, what,
                        severity=severity, columns=columns))


# -- SQL helpers -----------------------------------------------------------------------

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def ident(name: str) -> str:
    """A PostgreSQL identifier; plain lower-case names stay bare (they are in the suites' JSON)."""
    return name if _IDENT.match(name) else '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A SQL literal of a constant of this catalogue (str, int, float, bool, date)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return f"date '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _show(value: Any) -> str:
    return "(" + ", ".join(map(str, value)) + ")" if isinstance(value, list | tuple) else str(value)


def _dedent(query: str) -> str:
    lines = [line.rstrip() for line in query.strip("\n").splitlines()]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def with_batch(query: str) -> str:
    """Prefix ``query`` with the CTE ``batch_rows`` over GX's ``{batch}``.

    GX 1.x substitutes ``{batch}`` with ``(<select>) AS subselect`` when the
    query has no JOIN and with a bare ``(<select>)`` when it has one (the
    author aliases it). Reading the batch once, in a CTE, keeps every query
    valid either way.
    """
    body = _dedent(query).strip()
    has_join = re.search(r"\bjoin\b", _STRING_LITERAL.sub("''", body), re.IGNORECASE) is not None
    cte = "batch_rows as (\n    select * from {batch}" + (" as batch_table" if has_join else "") + "\n)"
    if body.lower().startswith("with "):
        return f"with {cte},\n{body[5:]}"
    return f"with {cte}\n{body}"


def _values(name: str, column: str, values: tuple | list) -> str:
    """``(values ('a'), ('b')) as name (column)``."""
    return f"(values {', '.join(f'({literal(v)})' for v in values)}) as {name} ({column})"


# -- sources of the rules ------------------------------------------------------------------

@cache
def raw_ddl() -> dict[str, list[tuple[str, bool]]]:
    """``(column, not null?)`` of every ``raw.*`` table as ``sql/raw.sql`` declares them, in order."""
    from importlib import resources

    ddl = resources.files("corridor").joinpath("sql/raw.sql").read_text(encoding="utf-8")
    tables: dict[str, list[tuple[str, bool]]] = {}
    for m in re.finditer(r"create table if not exists raw\.(\w+) \((.*?)\n\);", ddl, re.S):
        columns = []
        for line in m.group(2).splitlines():
            line = line.split("--")[0].strip()
            if line and not line.startswith(("constraint", "primary key", "unique", "check")):
                columns.append((line.split()[0], " not null" in f" {line.lower()}"))
        tables[m.group(1)] = columns
    return tables


def raw_contract() -> dict[str, list[str]]:
    """Columns of every ``raw.*`` table, in order (the landing contract)."""
    return {table: [c for c, _ in columns] for table, columns in raw_ddl().items()}


def raw_required() -> dict[str, list[str]]:
    """The columns ``sql/raw.sql`` declares ``not null``: the values a landed row must carry."""
    return {table: [c for c, required in columns if required] for table, columns in raw_ddl().items()}


@cache
def dbt_vars() -> dict[str, Any]:
    import yaml

    with open(project_root() / "dbt_project" / "dbt_project.yml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)["vars"]


@cache
def kpi_contract() -> list[str]:
    """The enforced contract's columns of ``kpi.kpi_values``, in order."""
    import yaml

    path = project_root() / "dbt_project" / "models" / "kpi" / "_kpi__models.yml"
    with open(path, encoding="utf-8") as fh:
        models = yaml.safe_load(fh)["models"]
    model = next(m for m in models if m["name"] == "kpi_values")
    return [c["name"] for c in model["columns"]]


@cache
def kpi_targets() -> list[dict[str, str]]:
    path = project_root() / "dbt_project" / "seeds" / "kpi_targets.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def kpi_codes() -> list[str]:
    return [f"K{n:02d}" for n in range(1, 19)]  # kpis.md: K01 .. K18


def rate_kpis() -> tuple[str, ...]:
    """Growth rates (K03): the only KPIs that may be negative, but not below −100 %."""
    return tuple(t["kpi_code"] for t in kpi_targets() if t["measure_type"] == "rate")


def ranked_kpis() -> tuple[str, ...]:
    return tuple(t["kpi_code"] for t in kpi_targets() if t["target_kind"] != "none")


def window_start() -> date:
    return date.fromisoformat(str(dbt_vars()["kpi_window_start"]))


# The files a passing gate has validated (corridor.quality.checks writes it).
VALIDATED_FILES_TABLE = "ops.quality_gate_files"


def due_ledger_ids_sql() -> str:
    """The ``ledger_id`` of every loaded file no passing gate has validated yet (a full run: every file)."""
    return ("select due.ledger_id from ops.load_ledger as due where due.status = 'loaded' and not exists "
            f"(select 1 from {VALIDATED_FILES_TABLE} as validated where validated.ledger_id = due.ledger_id)")


def due_ids_array_sql() -> str:
    """:func:`due_ledger_ids_sql` as one array: ``ledger_id = any(…)`` reads a ``ledger_id`` index
    (``src/corridor/sql/raw.sql``) where ``in (…)`` plans a hash join over the whole table."""
    return f"array({due_ledger_ids_sql()})"


def due_rows_sql(spec: SuiteSpec) -> str:
    """The rows of ``spec``'s table that came with files not validated yet: the incremental batch."""
    return f"select * from {spec.qualified_table} where ledger_id = any({due_ids_array_sql()})"


DUE_VIEW_SCHEMA = "ops"


def due_view(spec: SuiteSpec) -> str:
    """The view over :func:`due_rows_sql` (``ops.quality_due_<table>``): the table asset of the ``@due`` batch.

    A view, not a GX query asset: GX reflects a query asset's columns by running
    the whole query and fetching every row (at province, the first gate's
    techmarket batch alone took 350 MB of the gate's memory).
    """
    return f"quality_due_{spec.table}"


def as_of_cte() -> str:
    """``as_of``: the data's as-of date, the latest complete month over all feeds."""
    return ("as_of as (select max(latest_complete_month_end_date) as as_of_date "
            "from intermediate.int_feed_periods_delivered)")


# -- the suites --------------------------------------------------------------------------

def _month_end(column: str) -> str:
    return f"({ident(column)} + interval '1 month' - interval '1 day')::date"


def _date_window(s: SuiteSpec, column: str, upper: str, upper_text: str, *, required: bool) -> None:
    """A business date within 2015-01-01 .. the file's period end (the parsers' rule)."""
    from corridor.normalize import EARLIEST

    c = ident(column)
    null_rule = "" if required else f"{c} is not null and "
    s.rows(f"date_window:{column}", f"""
        select *
        from batch_rows
        where {null_rule}({c} < {literal(EARLIEST)} or {c} > {upper})
        """, what=f"{column} lies within {EARLIEST.isoformat()} .. {upper_text}", columns=(column,))


def _ledger_reconciles(s: SuiteSpec, feed: str) -> None:
    """Every loaded file's rows_loaded equals its rows in this table; no row without its file.

    The files: those not validated yet (the incremental batch's); a full run validates every file.
    """
    s.rows("reconciles_with_load_ledger", f"""
        with ledger as (
            select ledger_id, file_name, rows_loaded
            from ops.load_ledger
            where feed = {literal(feed)} and status = 'loaded'
                and ledger_id = any({due_ids_array_sql()})
        ),
        table_rows as (
            select ledger_id, count(*) as rows_in_table
            from batch_rows
            group by ledger_id
        )
        select
            coalesce(ledger.ledger_id, table_rows.ledger_id) as ledger_id,
            ledger.file_name,
            ledger.rows_loaded,
            coalesce(table_rows.rows_in_table, 0) as rows_in_table
        from ledger
        full outer join table_rows on table_rows.ledger_id = ledger.ledger_id
        where ledger.rows_loaded is distinct from coalesce(table_rows.rows_in_table, 0)
        order by 1
        """, what=f"row counts reconcile with ops.load_ledger (rows_loaded of every loaded {feed} file not "
                  "validated yet; no row without a loaded file)")


def _first_of_month(s: SuiteSpec, column: str) -> None:
    c = ident(column)
    s.rows(f"first_of_month:{column}", f"""
        select *
        from batch_rows
        where {c} <> date_trunc('month', {c})::date
        """, what=f"{column} is the first day of a month", columns=(column,))


def _district_lineage(s: SuiteSpec) -> None:
    s.rows("lineage_to_district_return", """
        select *
        from batch_rows as data_rows
        where not exists (
            select 1
            from raw.district_returns as returns
            where returns.ledger_id = data_rows.ledger_id
                and returns.area_code = data_rows.area_code
                and returns.report_month = data_rows.report_month
                and returns.file_version = data_rows.file_version
        )
        """, what="every row belongs to a loaded district workbook (same ledger_id, area, month and version "
                  "as its raw.district_returns row)")


def raw_suites() -> list[SuiteSpec]:
    from corridor.feeds import AREAS, BANKS
    from corridor.feeds.bank import COLLATERAL_TYPES, LOAN_STATUSES
    from corridor.feeds.district import (
        CERTIFICATION_CHANGES,
        CERTIFICATION_TYPES,
        INCUBATORS,
        PLATFORM_CATEGORIES,
        PLATFORM_CHANGES,
        PLATFORM_LEVELS,
        PROJECT_CATEGORIES,
        PROJECT_STATUSES,
    )
    from corridor.feeds.hr import ACTIONS, CATEGORIES, INTAKE_TYPES
    from corridor.feeds.techmarket import CONTRACT_TYPES, REGISTRATION_STATUSES

    contract = raw_contract()
    required = raw_required()
    suites = []

    def suite(table: str, description: str) -> SuiteSpec:
        s = SuiteSpec("raw", table, CHECKPOINT_RAW, description, incremental=True)
        s.columns_match(contract[table], source="landing contract (src/corridor/sql/raw.sql)")
        s.row_count(1)
        s.required_present(required[table])
        suites.append(s)
        return s

    # 1. district returns (片区月报): the cover row of each workbook, and the three sheets.
    s = suite("district_returns", "District monthly returns (片区月报): one row per loaded workbook.")
    s.in_set("area_code", AREAS, what="six areas")
    _first_of_month(s, "report_month")
    s.between("file_version", 1)
    s.unique("area_code", "report_month", "file_version", what="one workbook per area, month and version")
    due = due_ids_array_sql()
    s.rows("reconciles_with_load_ledger", f"""
        with ledger as (
            select ledger_id, file_name, rows_loaded,
                coalesce(message, '') like 'identical bytes%' as is_resend
            from ops.load_ledger
            where feed = 'district' and status = 'loaded'
                and ledger_id = any({due})
        ),
        sheet_rows as (
            select ledger_id, count(*) as n from raw.district_platforms where ledger_id = any({due}) group by ledger_id
            union all
            select ledger_id, count(*) from raw.district_certifications where ledger_id = any({due}) group by ledger_id
            union all
            select ledger_id, count(*) from raw.district_projects where ledger_id = any({due}) group by ledger_id
        ),
        per_file as (
            select ledger_id, sum(n) as rows_in_sheets from sheet_rows group by ledger_id
        ),
        covers as (
            select ledger_id, count(*) as cover_rows from batch_rows group by ledger_id
        )
        select
            coalesce(ledger.ledger_id, per_file.ledger_id, covers.ledger_id) as ledger_id,
            ledger.file_name,
            ledger.rows_loaded,
            coalesce(per_file.rows_in_sheets, 0) as rows_in_sheets,
            coalesce(covers.cover_rows, 0) as cover_rows
        from ledger
        full outer join per_file on per_file.ledger_id = ledger.ledger_id
        full outer join covers on covers.ledger_id = coalesce(ledger.ledger_id, per_file.ledger_id)
        where ledger.rows_loaded is distinct from coalesce(per_file.rows_in_sheets, 0)
            or coalesce(covers.cover_rows, 0) <> case when ledger.is_resend then 0 else 1 end
        order by 1
        """, what="row counts reconcile with ops.load_ledger (rows_loaded of every loaded workbook not validated "
                  "yet = its rows in the three sheets; one cover row per workbook; no row without a loaded file)")

    s = suite("district_platforms", "District returns, sheet 创新平台: one row per platform event.")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("platform_category", PLATFORM_CATEGORIES, what="platform categories")
    s.in_set("platform_level", PLATFORM_LEVELS, what="levels")
    s.in_set("change_type", PLATFORM_CHANGES, what="change types")
    new = Condition("change_type", "==", "新增")
    s.not_null("platform_category", when=new, why="平台类别 of a recognition; a 撤销 or 更新 names the platform by"
               " its 平台编号")
    s.not_null("recognised_date", when=new, why="认定日期 of a recognition")
    s.not_null("incubation_area_m2", when=Condition("platform_category", "in", sorted(INCUBATORS), also=(new,)),
               why="孵化面积 of a recognised incubator or accelerator")
    s.between("incubation_area_m2", 0)
    s.matches("host_uscc", USCC_PATTERN, what=USCC_RULE)
    _date_window(s, "recognised_date", _month_end("report_month"), "the report month's end", required=False)
    s.unique("area_code", "report_month", "file_version", "platform_id", "change_type",
             what="one event of a kind per platform in a workbook")
    _district_lineage(s)

    s = suite("district_certifications", "District returns, sheet 企业认定: one row per certification event.")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("certification_type", CERTIFICATION_TYPES, what="certification types")
    s.in_set("change_type", CERTIFICATION_CHANGES, what="change types")
    s.matches("uscc", USCC_PATTERN, what=USCC_RULE)
    s.not_null("granted_date", when=Condition("change_type", "==", "新增"), why="认定日期 of a grant")
    _date_window(s, "granted_date", _month_end("report_month"), "the report month's end", required=False)
    s.a_ge_b("valid_until", "granted_date", what="有效期至 (valid_until) is not before 认定日期 (granted_date)")
    s.unique("area_code", "report_month", "file_version", "certificate_no", "change_type",
             what="one event of a kind per certificate in a workbook")
    _district_lineage(s)

    s = suite("district_projects", "District returns, sheet 重点项目: one row per project and report month.")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("project_category", PROJECT_CATEGORIES, what="project categories")
    s.in_set("project_status", PROJECT_STATUSES, what="project states")
    s.between("progress_pct", 0, 100)
    s.between("cumulative_investment_10k_yuan", 0)
    s.a_ge_b("planned_completion_date", "start_date",
             what="计划完成日期 (planned_completion_date) is not before 开始日期 (start_date)")
    s.unique("area_code", "report_month", "file_version", "project_id",
             what="one row per project in a workbook")
    _district_lineage(s)

    # 2. technology contracts (技术合同登记)
    s = suite("techmarket_contracts", "Technology contract registrations (技术合同登记): daily exports.")
    s.matches("registration_no", REGISTRATION_NO_PATTERN, what="a 16-digit registration number")
    s.in_set("contract_type", CONTRACT_TYPES, what="contract types")
    s.in_set("registration_status", REGISTRATION_STATUSES, what="registration states")
    s.in_set("seller_area_code", AREAS, what="six areas")
    s.matches("seller_uscc", USCC_PATTERN, what=USCC_RULE)
    s.between("contract_value_10k_yuan", 0)
    s.between("tech_value_10k_yuan", 0)
    s.a_ge_b("contract_value_10k_yuan", "tech_value_10k_yuan",
             what="技术交易额 (tech_value_10k_yuan) ≤ 合同成交额 (contract_value_10k_yuan)")
    _date_window(s, "registration_date", "export_date", "the export date", required=True)
    s.unique("export_date", "registration_no", what="one row per contract in an export")
    _ledger_reconciles(s, "techmarket")

    # 3. bank pledge loans (知识产权质押融资)
    s = suite("bank_loans", "Bank pledge-financing loans (知识产权质押融资): monthly, one file per bank.")
    s.in_set("bank_code", BANKS, what="six banks")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("collateral_type", COLLATERAL_TYPES, what="collateral types")
    s.in_set("loan_status", LOAN_STATUSES, what="loan states")
    s.matches("borrower_uscc", USCC_PATTERN, what=USCC_RULE)
    s.between("loan_amount_yuan", 0, strict_min=True)
    s.between("annual_rate_pct", 0, 100)
    _first_of_month(s, "report_month")
    _date_window(s, "disbursed_date", _month_end("report_month"), "the report month's end", required=True)
    s.a_ge_b("due_date", "disbursed_date", what="到期日期 (due_date) is not before 放款日期 (disbursed_date)")
    s.rows("ip_numbers_for_ip_pledges", """
        select *
        from batch_rows
        where collateral_type in ('专利权', '商标权', '著作权') and cardinality(ip_numbers) = 0
        """, what="a patent, trademark or copyright pledge names its IP numbers", severity=WARNING,
           columns=("ip_numbers",))
    s.unique("bank_code", "report_month", "loan_id", what="one row per loan in a bank's monthly file")
    _ledger_reconciles(s, "bank")

    # 4. talent intake (高层次人才引育)
    s = suite("hr_talents", "Talent intake (高层次人才引育): monthly JSON Lines; person_key only, no ID or name.")
    s.in_set("category", CATEGORIES, what="talent categories")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("intake_type", INTAKE_TYPES, what="intake types")
    s.in_set("action", ACTIONS, what="actions")
    s.matches("person_key", PERSON_KEY_PATTERN, what="a keyed pseudonym (64 hex digits), never an ID number")
    s.matches("employer_uscc", USCC_PATTERN, what=USCC_RULE)
    _first_of_month(s, "file_month")
    _date_window(s, "intake_date", _month_end("file_month"), "the file month's end", required=True)
    s.unique("file_month", "record_id", what="one row per record in a monthly file")
    _ledger_reconciles(s, "hr")

    # The ledger itself.
    from corridor.feeds import FEEDS

    s = SuiteSpec("ops", "load_ledger", CHECKPOINT_RAW, "The load ledger: one row per landing file seen.")
    suites.append(s)
    s.row_count(1)
    s.in_set("feed", tuple(FEEDS), what="four feeds")
    s.in_set("status", ("loaded", "rejected"), what="load states")
    s.rows("rows_reconcile", """
        select *
        from batch_rows
        where status = 'loaded' and rows_received <> rows_loaded + rows_quarantined
        """, what="a loaded file's rows_received = rows_loaded + rows_quarantined",
           columns=("rows_received", "rows_loaded", "rows_quarantined"))
    s.rows("quarantine_reconciles", """
        with quarantined as (
            select ledger_id, count(*) as rows_in_quarantine
            from ops.quarantine
            group by ledger_id
        )
        select ledger.ledger_id, ledger.feed, ledger.file_name, ledger.rows_quarantined,
            coalesce(quarantined.rows_in_quarantine, 0) as rows_in_quarantine
        from batch_rows as ledger
        full outer join quarantined on quarantined.ledger_id = ledger.ledger_id
        where ledger.rows_quarantined is distinct from coalesce(quarantined.rows_in_quarantine, 0)
        """, what="rows_quarantined of every file equals its rows in ops.quarantine")
    patterns = " or ".join(
        f"(feed = {literal(name)} and file_name ~ {literal(_pg_regex(spec.pattern.pattern))})"
        for name, spec in FEEDS.items())
    s.rows("file_names", f"""
        select *
        from batch_rows
        where status = 'loaded' and not ({patterns})
        """, what="every loaded file is named as its feed's spec says", columns=("file_name",))
    s.rows("rejected_files_outstanding", """
        select *
        from batch_rows as rejected
        where rejected.status = 'rejected'
            and not exists (
                select 1 from ops.load_ledger as later
                where later.feed = rejected.feed and later.file_name = rejected.file_name
                    and later.status = 'loaded'
            )
        """, what="no rejected file is still waiting for a corrected delivery", severity=WARNING,
           columns=("file_name", "message"))
    return suites


def _pg_regex(python_pattern: str) -> str:
    """A feed's file-name pattern for PostgreSQL (no named groups; braces doubled for GX's format)."""
    return re.sub(r"\(\?P<\w+>", "(", python_pattern).replace("\\d", "[0-9]").replace("{", "{{").replace(
        "}", "}}")


def mart_suites() -> list[SuiteSpec]:
    from corridor.feeds import AREAS, BANKS
    from corridor.feeds.bank import COLLATERAL_TYPES, LOAN_STATUSES
    from corridor.feeds.district import (
        CERTIFICATION_TYPES,
        PLATFORM_CATEGORIES,
        PROJECT_CATEGORIES,
        PROJECT_STATUSES,
    )
    from corridor.feeds.hr import CATEGORIES, INTAKE_TYPES
    from corridor.feeds.techmarket import CONTRACT_TYPES

    suites = []

    def suite(table: str, description: str) -> SuiteSpec:
        s = SuiteSpec("marts", table, CHECKPOINT_MARTS, description)
        suites.append(s)
        return s

    s = suite("dim_area", "The six areas (片区).")
    s.row_count(len(AREAS), len(AREAS))
    s.in_set("area_code", AREAS, what="six areas")
    s.unique_enforced("area_code", what="primary key")
    s.not_null("area_name")
    s.unique_enforced("area_name", what="one name per area")

    s = suite("dim_enterprise", "Enterprises by 统一社会信用代码.")
    s.row_count(1)
    s.not_null("uscc", why="primary key")
    s.unique_enforced("uscc", what="primary key")
    s.matches("uscc", USCC_PATTERN, what=USCC_RULE)
    s.in_set("area_code", AREAS, what="six areas")

    s = suite("dim_platform", "Innovation platforms with their current standing.")
    s.row_count(1)
    s.not_null("platform_key", why="primary key")
    s.unique_enforced("platform_key", what="primary key")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("platform_category", PLATFORM_CATEGORIES, what="platform categories")
    s.between("incubation_area_m2", 0)
    s.not_null("is_active")

    s = suite("fct_tech_contracts", "Technology contracts in their current state, cancelled ones with is_cancelled.")
    s.row_count(1)
    s.not_null("registration_no", why="primary key")
    s.unique_enforced("registration_no", what="primary key")
    s.in_set("registration_status", ("有效", "变更", "撤销"), what="登记状态 of the latest record")
    s.not_null("is_cancelled")
    s.rows("is_cancelled_means_revoked", """
        select *
        from batch_rows
        where is_cancelled is distinct from (registration_status = '撤销')
        """, what="is_cancelled is true exactly when the latest 登记状态 is 撤销",
           columns=("registration_no", "registration_status", "is_cancelled"))
    s.in_set("contract_type", CONTRACT_TYPES, what="contract types")
    s.in_set("seller_area_code", AREAS, what="six areas")
    s.between("tech_value_10k_yuan", 0)
    s.a_ge_b("contract_value_10k_yuan", "tech_value_10k_yuan",
             what="技术交易额 (tech_value_10k_yuan) ≤ 合同成交额 (contract_value_10k_yuan)")

    s = suite("fct_pledge_loans", "Pledge loans in their latest reported state.")
    s.row_count(1)
    s.not_null("pledge_loan_id", why="primary key")
    s.unique_enforced("pledge_loan_id", what="primary key")
    s.in_set("bank_code", BANKS, what="six banks")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("collateral_type", COLLATERAL_TYPES, what="collateral types")
    s.in_set("loan_status", LOAN_STATUSES, what="loan states")
    s.between("loan_amount_yuan", 0, strict_min=True)

    s = suite("fct_certifications", "Enterprise certificates (scheme + number + enterprise) with their validity windows.")
    s.row_count(1)
    s.not_null("certificate_key", why="primary key")
    s.unique_enforced("certificate_key", what="primary key")
    s.not_null("certificate_no")
    s.unique_enforced("certification_type", "certificate_no", "uscc",
             what="a certificate is its number within its scheme and its enterprise")
    s.in_set("certification_type", CERTIFICATION_TYPES, what="certification types")
    s.in_set("area_code", AREAS, what="six areas")
    s.a_ge_b("valid_until", "granted_date", what="有效期至 (valid_until) is not before 认定日期 (granted_date)")

    s = suite("fct_platform_states", "Platform validity windows (one row per state of a platform).")
    s.row_count(1)
    s.not_null("platform_state_id", why="primary key")
    s.unique_enforced("platform_state_id", what="primary key")
    s.unique_enforced("platform_key", "valid_from", what="one state per platform and first day")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("platform_category", PLATFORM_CATEGORIES, what="platform categories")
    s.a_ge_b("valid_to", "valid_from", what="a state ends (valid_to) on or after its first day (valid_from)")
    s.not_null("is_in_force")

    s = suite("dim_period", "The reporting periods with the data's as-of date.")
    s.row_count(1)
    s.not_null("period_id", why="primary key")
    s.unique_enforced("period_id", what="primary key")
    s.unique_enforced("grain", "period_start", what="one period per grain and start")
    s.in_set("grain", ("month", "quarter", "year"), what="grains")
    s.a_ge_b("as_of_date", "period_end", what="no period ends after the as-of date")

    s = suite("fct_talent_intake", "Talent intake records in their latest state (person_key only).")
    s.row_count(1)
    s.not_null("record_id", why="primary key")
    s.unique_enforced("record_id", what="primary key")
    s.in_set("talent_category", CATEGORIES, what="talent categories")
    s.in_set("area_code", AREAS, what="six areas")
    s.in_set("intake_type", INTAKE_TYPES, what="intake types")
    s.matches("person_key", PERSON_KEY_PATTERN, what="a keyed pseudonym (64 hex digits), never an ID number")

    s = suite("fct_projects", "Project-month snapshots.")
    s.row_count(1)
    s.unique_enforced("project_key", "snapshot_month", what="one snapshot per project and month")
    s.in_set("project_category", PROJECT_CATEGORIES, what="project categories")
    s.in_set("project_status", PROJECT_STATUSES, what="project states")
    s.between("progress_pct", 0, 100)
    s.between("cumulative_investment_10k_yuan", 0)

    # Personal data (PIPL) must not reach any warehouse schema, least of all those BI reads.
    s = SuiteSpec("information_schema", "columns", CHECKPOINT_MARTS,
                  "The warehouse's columns: no personal data in any corridor schema.")
    suites.append(s)
    schemas = ("raw", "staging", "intermediate", "marts", "kpi")
    s.rows("no_personal_data_columns", f"""
        select table_schema, table_name, column_name
        from batch_rows
        where table_schema in ({', '.join(literal(x) for x in schemas)})
            and lower(column_name) in ({', '.join(literal(x) for x in PERSONAL_DATA_COLUMNS)})
        """, what="no column of raw, staging, intermediate, marts or kpi carries personal data "
                  f"({', '.join(PERSONAL_DATA_COLUMNS)})", columns=("column_name",))
    return suites


def kpi_suites() -> list[SuiteSpec]:
    from corridor.feeds import AREAS

    rates = rate_kpis()
    scopes = (*AREAS, "ALL")
    start = window_start()
    suites = []

    s = SuiteSpec("kpi", "kpi_values", CHECKPOINT_KPI,
                  "The KPI fact behind every scorecard: one row per KPI × area × grain × period.")
    suites.append(s)
    s.columns_match(kpi_contract(), ordered=True, source="enforced dbt contract (_kpi__models.yml)")
    s.row_count(1)
    s.unique("kpi_code", "area_code", "grain", "period_start", what="one row per KPI × area × grain × period")
    s.in_set("kpi_code", kpi_codes(), what="18 KPIs of kpis.md")
    s.in_set("area_code", scopes, what="six areas and ALL")
    s.in_set("grain", ("month", "quarter", "year"), what="grains")
    s.in_set("status", ("ahead", "on_track", "behind", "no_target"), what="states")
    for column in ("kpi_code", "area_code", "grain", "period_start", "period_end"):
        s.not_null(column)
    s.rows("complete_grid", f"""
        with {as_of_cte()},
        months as (
            select month_start::date as period_start
            from as_of
            cross join lateral generate_series(
                {literal(start)}, date_trunc('month', as_of.as_of_date), interval '1 month'
            ) as month_start
        ),
        periods as (
            select 'month' as grain, period_start from months
            union all
            select 'quarter', months.period_start
            from months cross join as_of
            where extract(month from months.period_start) in (1, 4, 7, 10)
                and (months.period_start + interval '3 months' - interval '1 day')::date <= as_of.as_of_date
            union all
            select 'year', months.period_start
            from months cross join as_of
            where extract(month from months.period_start) = 1
                and (months.period_start + interval '1 year' - interval '1 day')::date <= as_of.as_of_date
        ),
        expected as (
            select kpis.kpi_code, scopes.area_code, periods.grain, periods.period_start
            from {_values('kpis', 'kpi_code', kpi_codes())}
            cross join {_values('scopes', 'area_code', scopes)}
            cross join periods
        )
        select expected.*
        from expected
        left join batch_rows as kpi_values
            on kpi_values.kpi_code = expected.kpi_code
            and kpi_values.area_code = expected.area_code
            and kpi_values.grain = expected.grain
            and kpi_values.period_start = expected.period_start
        where kpi_values.kpi_code is null
        order by expected.period_start, expected.grain, expected.kpi_code, expected.area_code
        """, what=f"every KPI × area (six and ALL) × period from {start:%Y-%m} to the as-of month "
                  "(complete quarters and years) is present")
    s.rows("no_period_after_as_of", f"""
        with {as_of_cte()}
        select kpi_values.*, as_of.as_of_date
        from batch_rows as kpi_values
        cross join as_of
        where as_of.as_of_date is null or kpi_values.period_end > as_of.as_of_date
        """, what="no period ends after the data's as-of date", columns=("period_end",))
    s.rows("period_bounds", """
        select *
        from batch_rows
        where period_start <> date_trunc(grain, period_start)::date
            or period_end <> (period_start + case grain
                when 'month' then interval '1 month'
                when 'quarter' then interval '3 months'
                else interval '1 year' end - interval '1 day')::date
        """, what="period_start and period_end bound a calendar month, quarter or year",
           columns=("period_start", "period_end"))
    not_rate = Condition("kpi_code", "not in", list(rates))
    s.not_null("actual_value", when=not_rate,
               why="a count or sum is 0 when nothing happened; only a growth rate without a base has none")
    s.between("actual_value", 0, when=not_rate, key="non_negative:actual_value",
              what=f"actual_value is ≥ 0 (every KPI but the growth rate{'s' if len(rates) > 1 else ''} "
                   f"{', '.join(rates)})")
    s.between("actual_value", -1, when=Condition("kpi_code", "in", list(rates)), key="growth_floor:actual_value",
              what=f"a growth rate ({', '.join(rates)}) may fall, but not below −100 % (actual_value ≥ −1)")
    s.between("target_value", 0)
    s.between("paced_target_value", 0)
    s.a_ge_b("target_value", "paced_target_value", what="the paced target does not exceed the target")
    s.between("completion_ratio", 0, when=not_rate, key="non_negative:completion_ratio",
              what="completion_ratio is ≥ 0 (every KPI but the growth rates)")
    s.rows("completion_ratio_consistent", """
        with checked as (
            select
                kpi_values.*,
                case
                    when kpi_values.actual_value is null or kpi_values.paced_target_value is null then null
                    when kpi_catalogue.direction = 'lower_is_better' then
                        case when kpi_values.actual_value > 0
                            then kpi_values.paced_target_value / kpi_values.actual_value end
                    when kpi_values.paced_target_value > 0
                        then kpi_values.actual_value / kpi_values.paced_target_value
                end as expected_ratio
            from batch_rows as kpi_values
            left join kpi.kpi_catalogue as kpi_catalogue on kpi_catalogue.kpi_code = kpi_values.kpi_code
        )
        select *
        from checked
        where (completion_ratio is null) <> (expected_ratio is null)
            or abs(completion_ratio - expected_ratio) > 1e-8 * greatest(1, abs(expected_ratio))
        """, what="completion_ratio = actual_value / paced_target_value (null without a value or a target)",
           columns=("completion_ratio", "actual_value", "paced_target_value"))
    targeted = ranked_kpis()
    untargeted = tuple(k for k in kpi_codes() if k not in targeted)
    s.rows("targets_present", f"""
        select *
        from batch_rows
        where case when kpi_code in ({', '.join(literal(k) for k in targeted)})
            then (target_value is null or paced_target_value is null)
                -- but an area of allocation weight 0, which has no target of its own (kpi_values.sql)
                and not exists (
                    select
                    from seeds.kpi_area_allocation as allocation
                    inner join seeds.kpi_targets as targets on targets.kpi_code = allocation.kpi_code
                    where allocation.kpi_code = batch_rows.kpi_code
                        and allocation.area_code = batch_rows.area_code
                        and allocation.allocation_weight = 0
                        and targets.area_target_method = 'allocated'
                )
            else target_value is not null or paced_target_value is not null
        end
        """, what=f"every row of a KPI with a target ({', '.join(targeted)}) has its target_value and "
                  f"paced_target_value, but an area of allocation weight 0 (seeds.kpi_area_allocation); a KPI "
                  f"tracked without one ({', '.join(untargeted)}) has neither (a lost target would read as "
                  "no_target)",
           columns=("kpi_code", "area_code", "target_value", "paced_target_value"))
    s.rows("status_consistent", """
        with thresholds as (
            select
                max(min_completion_ratio) filter (where status = 'ahead') as ahead_from,
                max(min_completion_ratio) filter (where status = 'on_track') as on_track_from
            from seeds.kpi_status_thresholds
        )
        select kpi_values.*
        from batch_rows as kpi_values
        cross join thresholds
        where kpi_values.status is distinct from case
            when kpi_values.target_value is null then 'no_target'
            when kpi_values.completion_ratio is null then null
            when kpi_values.completion_ratio >= thresholds.ahead_from then 'ahead'
            when kpi_values.completion_ratio >= thresholds.on_track_from then 'on_track'
            else 'behind'
        end
        """, what="status follows completion_ratio and the thresholds (seeds.kpi_status_thresholds)",
           columns=("status", "completion_ratio"))
    s.rows("period_rows_match_month_end", """
        select longer.*, month_row.actual_value as month_end_value
        from batch_rows as longer
        inner join batch_rows as month_row
            on month_row.kpi_code = longer.kpi_code
            and month_row.area_code = longer.area_code
            and month_row.grain = 'month'
            and month_row.period_end = longer.period_end
        where longer.grain in ('quarter', 'year')
            and longer.actual_value is distinct from month_row.actual_value
        """, what="a quarter or year row has the value of its last month", columns=("actual_value",))
    s.rows("corridor_within_areas", f"""
        with areas as (
            select kpi_code, grain, period_start,
                max(actual_value) as max_area_value,
                sum(actual_value) as sum_area_values
            from batch_rows
            where area_code <> 'ALL'
            group by kpi_code, grain, period_start
        )
        select corridor.*, areas.max_area_value, areas.sum_area_values
        from batch_rows as corridor
        inner join areas
            on areas.kpi_code = corridor.kpi_code
            and areas.grain = corridor.grain
            and areas.period_start = corridor.period_start
        where corridor.area_code = 'ALL'
            and corridor.kpi_code not in ({', '.join(literal(k) for k in rates)})
            and (corridor.actual_value < areas.max_area_value - 1e-9
                or corridor.actual_value > areas.sum_area_values + 1e-9)
        """, what="ALL lies between the largest area and the sum of the areas (distinct counts over the corridor)",
           columns=("actual_value",))
    ytd = ", ".join(literal(k) for k in YEAR_TO_DATE_KPIS)
    s.rows("implausible_jumps", f"""
        with month_rows as (
            select kpi_code, area_code, period_start, actual_value,
                case when kpi_code in ({ytd})
                    then lag(actual_value, 12) over w
                    else lag(actual_value) over w
                end as compared_value,
                case when kpi_code in ({ytd})
                    then lag(period_start, 12) over w
                    else lag(period_start) over w
                end as compared_period_start
            from batch_rows
            where grain = 'month'
                and kpi_code not in ({', '.join(literal(k) for k in rates)})
            window w as (partition by kpi_code, area_code order by period_start)
        )
        select *, round(actual_value / nullif(compared_value, 0), 2) as factor
        from month_rows
        where compared_value > 0
            and greatest(actual_value, compared_value) >= {JUMP_FLOOR}
            and (actual_value > {JUMP_FACTOR} * compared_value or {JUMP_FACTOR} * actual_value < compared_value)
        order by period_start, kpi_code, area_code
        """, what=f"no implausible jump: a month's value is within {JUMP_FACTOR}× (up or down) of the previous "
                  f"month's (year-to-date KPIs {', '.join(YEAR_TO_DATE_KPIS)}: of the same month a year "
                  f"earlier), once either is at least {JUMP_FLOOR}",
           severity=WARNING, columns=("actual_value",))
    s.rows("built_from_latest_deliveries", f"""
        with {as_of_cte()}
        select as_of.as_of_date, max(kpi_values.period_end) as latest_month_end
        from batch_rows as kpi_values
        cross join as_of
        where kpi_values.grain = 'month'
        group by as_of.as_of_date
        having max(kpi_values.period_end) < as_of.as_of_date
        """, what="the KPI layer reaches the data's as-of month (else it was built before the latest deliveries)",
           severity=WARNING)
    s.rows("months_complete", f"""
        with months as (
            select distinct period_start as month_start
            from batch_rows
            where grain = 'month'
        ),
        {missing_deliveries_sql()}
        select * from missing order by month_start, feed, source_code
        """, what="every area, bank and feed has delivered for every published month "
                  "(otherwise that month's scorecard is provisional)",
           severity=WARNING)

    s = SuiteSpec("kpi", "area_ranking", CHECKPOINT_KPI, "The annual competition (年度比拼).")
    suites.append(s)
    s.unique("ranking_year", "area_code", what="one rank per area and year")
    s.in_set("area_code", AREAS, what="six areas")
    s.between("area_rank", 1, len(AREAS))
    s.between("composite_score", 0, float(dbt_vars()["ranking_score_cap"]))
    s.between("kpis_scored", 1, len(ranked_kpis()))
    s.rows("six_areas_per_year", f"""
        select ranking_year, count(*) as areas_ranked
        from batch_rows
        group by ranking_year
        having count(*) <> {len(AREAS)}
        """, what=f"every ranked year ranks all {len(AREAS)} areas")
    s.rows("rank_follows_score", """
        select *
        from (
            select *, rank() over (partition by ranking_year order by composite_score desc) as expected_rank
            from batch_rows
        ) as ranked
        where area_rank <> expected_rank
        """, what="area_rank is the rank of composite_score within the year (ties share a rank)",
           columns=("area_rank", "composite_score"))
    s.rows("every_complete_year_ranked", """
        select distinct extract(year from kpi_values.period_start)::integer as ranking_year
        from kpi.kpi_values as kpi_values
        where kpi_values.grain = 'year'
            and not exists (
                select 1 from batch_rows as ranking
                where ranking.ranking_year = extract(year from kpi_values.period_start)::integer
            )
        """, what="every complete year of kpi_values is ranked")

    s = SuiteSpec("kpi", "kpi_catalogue", CHECKPOINT_KPI, "The KPI catalogue for scorecards.")
    suites.append(s)
    s.row_count(len(kpi_codes()), len(kpi_codes()))
    s.unique("kpi_code", what="primary key")
    s.in_set("kpi_code", kpi_codes(), what="18 KPIs of kpis.md")
    s.not_null("indicator_name")
    s.not_null("definition")
    s.in_set("target_kind", ("cumulative", "annual", "none"), what="target kinds")
    s.in_set("pacing", ("window_linear", "year_linear", "none"), what="pacings")
    s.in_set("direction", ("higher_is_better", "lower_is_better"), what="directions")
    return suites


@cache
def all_suites() -> tuple[SuiteSpec, ...]:
    return (*raw_suites(), *mart_suites(), *kpi_suites())


def suites_of(checkpoint: str) -> list[SuiteSpec]:
    return [s for s in all_suites() if s.checkpoint == checkpoint]


def find_check(suite_name: str, key: str) -> tuple[SuiteSpec, Check] | None:
    for s in all_suites():
        if s.name == suite_name:
            for c in s.checks:
                if c.key == key:
                    return s, c
    return None


def sample_query(suite: SuiteSpec, check: Check, limit: int = 5, *, due: bool = False) -> str | None:
    """SQL returning up to ``limit`` offending rows of a failed check (None for table-level checks).

    ``due``: among the rows of the files not validated yet (an incremental run's
    batch of an incremental suite). Rows of a raw table say their file (``file_name``).
    """
    source = suite.qualified_table
    if due and suite.incremental:
        source = f"{ident(DUE_VIEW_SCHEMA)}.{ident(due_view(suite))}"
    if check.query:
        body = check.query.format(batch=source)
        return f"select * from (\n{body}\n) as offending limit {limit}"
    if not check.violation:
        return None
    where = f"({check.violation})"
    if check.when:
        where += f" and ({check.when.sql()})"
    if suite.incremental:
        return (f"select (select load_ledger.file_name from ops.load_ledger as load_ledger"
                f" where load_ledger.ledger_id = offending.ledger_id) as file_name, offending.*"
                f" from {source} as offending where {where} limit {limit}")
    return f"select * from {source} where {where} limit {limit}"


def months_between(first: date, last: date) -> list[date]:
    months, d = [], date(first.year, first.month, 1)
    while d <= last:
        months.append(d)
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return months


__all__ = ["CHECKPOINTS", "CRITICAL", "WARNING", "Check", "Condition", "SuiteSpec", "all_suites",
           "find_check", "sample_query", "suites_of"]
