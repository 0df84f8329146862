"""dbt from Python: the connection environment, and where dbt writes.

dbt writes its ``target/`` (manifest, run results, compiled SQL, partial
parse) and ``logs/`` under the state folder (``CORRIDOR_STATE_DIR/dbt/``),
never into the code tree, so a read-only checkout works. ``ensure_manifest``
makes ``manifest.json`` there with ``dbt parse`` whenever a file of the dbt
project changed (``make docs`` and BI tooling read it); no DAG needs it at
parse time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corridor import config, db

PROJECT_FILES = ("dbt_project.yml", "profiles.yml")
PROJECT_DIRS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")


# work_mem of dbt's sessions (PGOPTIONS, read by libpq): the server default (4MB) spills the
# sorts and hashes of a province build to disk; CORRIDOR_DBT_WORK_MEM="" keeps the server's.
DBT_WORK_MEM = "64MB"

# jit of dbt's sessions: off. A build is ~400 statements of a few seconds at most, whose plans often
# overestimate rows (joins to unions, `in` lists): past jit_above_cost PostgreSQL compiles, inlines
# and optimises every expression first. At province on PostgreSQL 15 defaults that compilation took
# 8 of the 9 s of dim_enterprise's incremental statement (issue 11). CORRIDOR_DBT_JIT="" keeps the
# server's setting.
DBT_JIT = "off"


def set_dbt_env(url: str) -> None:
    """Point dbt_project/profiles.yml at the warehouse for this process and its children, and set
    the sessions' work_mem (``CORRIDOR_DBT_WORK_MEM``, default 64MB) and jit
    (``CORRIDOR_DBT_JIT``, default off) through PGOPTIONS."""
    os.environ.update(db.dbt_env(url))
    settings = {"work_mem": os.environ.get("CORRIDOR_DBT_WORK_MEM", DBT_WORK_MEM).strip(),
                "jit": os.environ.get("CORRIDOR_DBT_JIT", DBT_JIT).strip()}
    options = os.environ.get("PGOPTIONS", "").strip()
    merged = db.merged_options(options, settings)
    if merged != options:
        os.environ["PGOPTIONS"] = merged


def dbt_state_dir() -> Path:
    """Where dbt's target/ and logs/ go: ``CORRIDOR_STATE_DIR/dbt``."""
    return config.load().state_dir / "dbt"


def project_digest(project_dir: Path) -> str:
    """sha256 of the dbt project's files, of the dbt and adapter versions (another dbt may compile the
    same SQL into other statements) and of the raw schema the staging views read (``sql/raw.sql``): after
    any of them changes, a build runs everything (see increment_scope)."""
    from importlib import resources
    from importlib.metadata import version

    digest = hashlib.sha256()
    digest.update(f"dbt-core {version('dbt-core')} dbt-postgres {version('dbt-postgres')}\n".encode())
    digest.update(resources.files("corridor").joinpath("sql/raw.sql").read_bytes())
    paths = [project_dir / f for f in PROJECT_FILES]
    for d in PROJECT_DIRS:
        if (project_dir / d).is_dir():
            paths += sorted(p for p in (project_dir / d).rglob("*") if p.is_file())
    for path in paths:
        if path.is_file():
            digest.update(str(path.relative_to(project_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# Set by dbt_recorded for a whole build only (macros/get_where_subquery.sql): the tests of the staging
# views over the raw feeds read the rows of files after this ledger id. Never taken from outside.
TESTED_LEDGER_ENV = "CORRIDOR_DBT_TESTED_LEDGER_ID"


# Set ("1") while dbt runs a whole build that follows a dbt command whose writes no successful whole build has
# tested since (ops.dbt_unverified_writes, below): the tests of the incremental models then read every row,
# not only the rows this build wrote (macros/get_where_subquery.sql). Never taken from outside either.
TEST_EVERY_ROW_ENV = "CORRIDOR_DBT_TEST_EVERY_ROW"


@contextlib.contextmanager
def tested_ledger(ledger_id: int | None, every_row: bool = False) -> Iterator[None]:
    """TESTED_LEDGER_ENV set to ``ledger_id`` (unset for None), and TEST_EVERY_ROW_ENV to "1" if
    ``every_row`` (else unset), while dbt runs; both as they were afterwards."""
    saved = {name: os.environ.pop(name, None) for name in (TESTED_LEDGER_ENV, TEST_EVERY_ROW_ENV)}
    if ledger_id is not None:
        os.environ[TESTED_LEDGER_ENV] = str(int(ledger_id))
    if every_row:
        os.environ[TEST_EVERY_ROW_ENV] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


# A node's connection kept for the thread's next node (issue 11). dbt-adapters' `release()`, called after
# every node, always closes the node's connection, so each of a build's ~190 nodes (~125 in an increment)
# connects anew: a new server backend, forked, authenticated and with cold catalog caches, ~12 ms of server
# CPU a node (measured on PostgreSQL 15 here: 100 connections each running two catalog-reading queries cost
# the server 1.3 s of CPU, one connection running them all 0.09 s). `keep_dbt_connections` makes `release()`
# end the node's transaction instead (a rollback of whatever is still open, which `close()` did too) and
# leave the connection open; dbt's `set_connection_name` then gives the same thread's next node that
# connection under its own name (dbt's ConnectionReused), and dbt closes every connection at the end of the
# invocation (`cleanup_connections`). A connection that failed or is not open is closed as before. Nothing
# of a node is left in the session for the next: `release()` puts the session back as a new connection has
# it (`discard all`: the node's temporary tables, e.g. an increment's new rows, which dbt leaves to the
# session's end; any `set` of a pre-hook or `sql_header`, such as a model's own work_mem or time zone, which
# would otherwise reach whichever node the thread runs next; advisory locks, LISTENs, prepared statements,
# cached plans) and applies the profile's `role` again, as dbt-postgres's `open()` does.
# Applies to dbt run in this process (`dbt` below, the build DAG's cosmos task with InvocationMode.DBT_RUNNER).
# CORRIDOR_DBT_KEEP_CONNECTIONS=0 (or false/no/off, config.env_flag) restores dbt's behaviour.
KEEP_CONNECTIONS_VAR = "CORRIDOR_DBT_KEEP_CONNECTIONS"


def keep_dbt_connections() -> None:
    """Patch dbt-postgres's connection manager so that a node's connection serves its thread's next node
    (see above); idempotent. Does nothing when CORRIDOR_DBT_KEEP_CONNECTIONS is off (0, false, no or off)."""
    from dbt.adapters.postgres.connections import PostgresConnectionManager

    if not config.env_flag(KEEP_CONNECTIONS_VAR, True):
        if hasattr(PostgresConnectionManager, "_corridor_release"):
            PostgresConnectionManager.release = PostgresConnectionManager._corridor_release
            del PostgresConnectionManager._corridor_release
        return
    if hasattr(PostgresConnectionManager, "_corridor_release"):
        return
    import psycopg2.extensions
    from dbt.adapters.contracts.connection import ConnectionState

    idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
    in_transaction = psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    in_error = psycopg2.extensions.TRANSACTION_STATUS_INERROR

    def release(self) -> None:
        conn = self.get_if_exists()
        if conn is None:
            return
        try:
            handle = conn.handle
            status = handle.get_transaction_status() if conn.state == ConnectionState.OPEN and isinstance(
                handle, psycopg2.extensions.connection) and not handle.closed else None
            if status not in (idle, in_transaction, in_error):
                self.close(conn)  # dbt's own release
                return
            # The node's transaction ended, as close() did (psycopg2's rollback: a round trip only when psycopg2
            # believes a transaction is open, and it leaves psycopg2 as on a fresh connection), then the session
            # as a new connection has it (see above), after every node: a test can carry a sql_header too. Few
            # round trips: each costs a worker thread more than the server's time, as it waits for the GIL again
            # when the answer comes.
            if status != idle or conn.transaction_open or handle.status != psycopg2.extensions.STATUS_READY:
                handle.rollback()
            conn.transaction_open = False
            if handle.get_transaction_status() != idle:
                self.close(conn)
                return
            toggle = not handle.autocommit
            if toggle:
                handle.autocommit = True  # DISCARD ALL cannot run in a transaction block
            try:
                with handle.cursor() as cursor:
                    cursor.execute("discard all")  # resets the role too: dbt's own `set role` follows
                    role = getattr(conn.credentials, "role", None)
                    if role:
                        cursor.execute(f"set role {role}")  # as dbt-postgres's open() writes it
            finally:
                if toggle:
                    handle.autocommit = False
        except Exception:
            self.clear_thread_connection()
            raise

    PostgresConnectionManager._corridor_release = PostgresConnectionManager.release
    PostgresConnectionManager.release = release


def dbt(args: list[str], project_dir: Path, check: bool = True, tested_ledger_id: int | None = None,
        keep_manifest: bool = False, every_row: bool = False):
    """Invoke dbt in-process; raise with dbt's own message when it fails (unless ``check`` is false).

    Target and log paths default to the state folder (``DBT_TARGET_PATH`` /
    ``DBT_LOG_PATH`` or ``--target-path`` win). ``tested_ledger_id``: see ``increment_scope``;
    ``every_row``: see ``unverified_writes``.
    ``keep_manifest``: see ``manifest_is_current``; dbt then writes no ``manifest.json`` and this writes
    ``run_results.json`` itself.
    """
    keep_dbt_connections()
    # A command that writes holds the build lock of the database dbt's profile names (the caller's, when
    # it holds it already: dbt_recorded, the build DAG's task)
    with build_lock(db.dbt_env_url(), args):
        return _dbt(args, project_dir, check, tested_ledger_id, keep_manifest, every_row)


def _dbt(args: list[str], project_dir: Path, check: bool, tested_ledger_id: int | None, keep_manifest: bool,
         every_row: bool):
    from dbt.cli.main import dbtRunner

    state = dbt_state_dir()
    env = {"DBT_TARGET_PATH": str(state / "target"), "DBT_LOG_PATH": str(state / "logs")}
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    Path(os.environ["DBT_LOG_PATH"]).mkdir(parents=True, exist_ok=True)
    try:
        with tested_ledger(tested_ledger_id, every_row):
            result = dbtRunner().invoke([*args, *file_log_args(args), *(["--no-write-json"] if keep_manifest else []),
                                         "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)])
        if keep_manifest:
            write_run_results(result, target_path(args, project_dir))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
    if check and not result.success:
        raise RuntimeError(f"dbt {' '.join(args)} failed: {result.exception or 'see the dbt log above'}")
    return result


# The level of dbt's file log (DBT_LOG_PATH/dbt.log): warnings and errors, not dbt's debug lines (every
# event, statement and status: ~2,900 lines an increment, each formatted, written and flushed by the
# worker threads under the GIL, ~0.5 s of an increment's ~10 s of client CPU, issue 11). A failed node's
# error, the warnings and the summary stay there; its SQL is in the target's compiled/ and run/ folders.
# CORRIDOR_DBT_LOG_LEVEL_FILE=debug (or DBT_LOG_LEVEL_FILE, or --log-level-file) logs everything again.
DBT_LOG_LEVEL_FILE = "warn"


def file_log_args(args: list[str]) -> list[str]:
    """``--log-level-file`` for ``args`` unless they or DBT_LOG_LEVEL_FILE set it."""
    if "DBT_LOG_LEVEL_FILE" in os.environ or any(a.split("=", 1)[0] == "--log-level-file" for a in args):
        return []
    return ["--log-level-file", os.environ.get("CORRIDOR_DBT_LOG_LEVEL_FILE", DBT_LOG_LEVEL_FILE).strip() or "debug"]


# manifest.json of a build's target (issue 11): dbt writes it twice a build, after parsing and after the
# run, ~0.45 s of an increment's client CPU for a file that only changes with the project. A whole build
# stamps its target with the project digest (TARGET_STAMP, the stamp ensure_manifest keeps); a later whole
# build of the same project into a target so stamped runs with --no-write-json and writes only
# run_results.json (from dbt's result, as dbt would). The partial parse file is written either way.
TARGET_STAMP = ".corridor-digest"


def target_path(args: list[str], project_dir: Path) -> Path:
    """Where dbt writes for ``args``: ``--target-path``, else DBT_TARGET_PATH, else the state folder's
    target/ (a relative path is the project's, as dbt reads it)."""
    value = os.environ.get("DBT_TARGET_PATH") or str(dbt_state_dir() / "target")
    for i, arg in enumerate(args):
        if arg == "--target-path" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--target-path="):
            value = arg.split("=", 1)[1]
    path = Path(value)
    return path if path.is_absolute() else project_dir / path


def manifest_is_current(target: Path, digest: str) -> bool:
    """``target`` holds a manifest.json of the project with this ``digest`` (TARGET_STAMP)."""
    stamp = target / TARGET_STAMP
    return (target / "manifest.json").is_file() and stamp.is_file() and stamp.read_text() == digest


def stamp_manifest(target: Path, digest: str) -> None:
    """Record that ``target``'s manifest.json is of the project with this ``digest``."""
    if (target / "manifest.json").is_file():
        (target / TARGET_STAMP).write_text(digest)


def write_run_results(result, target: Path) -> None:
    """``run_results.json`` of a dbt run made with --no-write-json, from its result (dbt's own writer)."""
    execution = getattr(result, "result", None)
    if hasattr(execution, "write"):
        target.mkdir(parents=True, exist_ok=True)
        execution.write(str(target / "run_results.json"))


def manifest_path() -> Path:
    return dbt_state_dir() / "target" / "manifest.json"


def ensure_manifest(project_dir: Path) -> Path:
    """``manifest.json`` under the state folder, parsed anew only when the project changed."""
    manifest = manifest_path()
    digest = project_digest(project_dir)
    if manifest_is_current(manifest.parent, digest):
        return manifest
    for var in ("CORRIDOR_PGHOST", "CORRIDOR_PGUSER", "CORRIDOR_PGDATABASE"):
        os.environ.setdefault(var, "unset")  # parse reads the profile but never connects
    dbt(["parse", "--quiet"], project_dir)
    stamp_manifest(manifest.parent, digest)
    return manifest


# --- skipping a build when nothing changed (issue 11) -------------------------------------------
#
# A successful build of the whole project records where the load ledger stood when it started
# (its highest ledger_id and its number of rows: a lower id committed late still changes the
# count) and the digest of the dbt project, in ops.dbt_builds. A later whole-project build with
# the same ledger position and the same project has nothing to do: every model would compute the
# same rows and every test would see the data it already passed on. `corridor dbt build` and the
# build DAG then skip dbt entirely. Selections, --full-refresh, --vars and the like always run.
# (The tables: db.BUILDS_DDL.)

# --- writes no successful whole build has tested -------------------------------------------------
#
# An increment's tests read the rows its build wrote (macros/get_where_subquery.sql): every older row passed
# the same tests in an earlier build, provided that build succeeded. A dbt command that writes models
# without ending in a successful whole build breaks that: a build that failed (a test of a model whose
# increment had committed: dbt keeps the model's rows) or was killed between a model and its tests, a
# selection, `dbt run`, `dbt retry`. The next build would find nothing new for that model, its tests would
# read nothing, and it would pass and be recorded: a failed check forgotten by running the build again.
# So every such command (run through `corridor dbt` or the build DAG) leaves a row in
# ops.dbt_unverified_writes before dbt starts, committed at once (a killed command leaves it too); a
# successful whole build deletes the rows up to its own in the transaction that records it. A whole build
# that finds rows of earlier commands there, or follows no recorded build, tests every row of the
# incremental models (TEST_EVERY_ROW_ENV), and is never skipped as "nothing changed".

# dbt commands that may write a model's rows
MODEL_WRITING_COMMANDS = frozenset({"build", "run", "seed", "snapshot", "retry", "clone"})


def unverified_writes(url: str, command: list[str]) -> tuple[int, bool]:
    """Record ``command`` (a dbt command about to write models) in ops.dbt_unverified_writes, committed now;
    return its row's id and whether an earlier command's row is there (writes no successful whole build
    has tested since), or no successful whole build was ever recorded."""
    with db.connect(url, autocommit=True) as conn:
        conn.execute(db.BUILDS_DDL)
        earlier = conn.execute("select exists (select from ops.dbt_unverified_writes)"
                               " or not exists (select from ops.dbt_builds)").fetchone()[0]
        write_id = conn.execute("insert into ops.dbt_unverified_writes (command) values (%s) returning write_id",
                                (" ".join(["dbt", *command])[:1000],)).fetchone()[0]
    return int(write_id), bool(earlier)


def unverified_commands(url: str) -> list[tuple[str, Any]]:
    """(command, started_at) of the dbt commands whose writes no successful whole build has tested since
    (see above), oldest first."""
    with db.connect(url) as conn:
        if conn.execute("select to_regclass('ops.dbt_unverified_writes')").fetchone()[0] is None:
            return []
        return conn.execute("select command, started_at from ops.dbt_unverified_writes order by write_id").fetchall()


# --- one dbt build of a warehouse at a time, and never under a reader ----------------------------
#
# An increment's tests read the rows its model's INSERT recorded (macros/record_rows_written.sql), and two
# increments of the same watermark would both insert the same new rows: two dbt commands that write one
# warehouse must not overlap. The build DAG's pool of one slot keeps its runs apart; `build_lock` keeps
# them apart from `corridor dbt build` in a terminal (and two terminals apart): a session advisory lock on
# a connection of its own, held while dbt runs. PostgreSQL releases it when that connection ends, so a
# killed build never leaves it behind. A second build waits, saying which backend holds the lock.
#
# The quality gate and the publication read the marts and the KPI layer over many statements, and must read
# what one build wrote: a snapshot is not enough, because a table dbt replaces (its table materialisation
# builds the new table beside the old one and renames it into place) reads as *empty* in a snapshot taken
# before that build committed. A publication reading while a build committed sent scorecards without their
# KPIs. So readers hold the same lock shared (`warehouse_read`): any number of them together, no dbt command
# that writes while one reads. A build waits for the readers, and a reader for a running build; PostgreSQL
# queues a reader behind a build that is already waiting, so readers cannot starve builds.
#
# A dbt command that writes also holds the load ledger's lock (db.LEDGER_LOCK) exclusive: it starts once the
# files being committed are, and no file is committed while it runs, so it reads no file whose ledger id is
# below one it has already read (a watermark spanning the feeds would skip such a file for good).

BUILD_LOCK = "corridor.dbt_build"

# dbt commands that write the warehouse, or test what a build is writing
WRITING_COMMANDS = frozenset({"build", "run", "seed", "snapshot", "test", "retry", "clone"})


def _lock_holders(conn, key: str) -> list[tuple[bool, bool, str]]:
    """The other backends holding or awaiting the advisory lock ``key``: (exclusive, granted, "backend …
    (application, user, connected …)"), oldest connection first."""
    rows = conn.execute(
        "select l.mode = 'ExclusiveLock', l.granted, a.pid, a.application_name, a.usename, a.backend_start"
        " from pg_locks as l"
        " join pg_stat_activity as a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.database = (select oid from pg_database"
        " where datname = current_database()) and l.objsubid = 1"
        " and l.objid = (hashtext(%s)::bigint & 4294967295)::oid and l.pid <> pg_backend_pid()"
        " order by a.backend_start", (key,)).fetchall()
    # backend_start is NULL for another role's backend unless this one may read all statistics
    return [(exclusive, granted, f"backend {pid} ({name or 'no application name'}, user {user}"
                                 + (f", connected {since:%Y-%m-%d %H:%M:%S %Z})" if since is not None else ")"))
            for exclusive, granted, pid, name, user, since in rows]


def _lock_users(conn) -> str:
    """Who keeps this connection from the build lock, as a clause: a dbt command writing, else one waiting to
    write (readers queue behind it), else the readers holding it."""
    holders = _lock_holders(conn, BUILD_LOCK)
    writing = [who for exclusive, granted, who in holders if exclusive and granted]
    waiting = [who for exclusive, granted, who in holders if exclusive and not granted]
    reading = [who for exclusive, granted, who in holders if not exclusive and granted]
    if writing:
        return f"a dbt command is writing this warehouse ({'; '.join(writing)})"
    if waiting:
        return f"a dbt command is waiting to write this warehouse ({'; '.join(waiting)})"
    if reading:
        return (f"{'a reader is' if len(reading) == 1 else f'{len(reading)} readers are'} reading this warehouse"
                f" ({'; '.join(reading)})")
    return "a backend that has just finished held this warehouse"


def _loaders(conn) -> str:
    """The loaders committing a file now (holding db.LEDGER_LOCK), as a clause."""
    loading = [who for _, granted, who in _lock_holders(conn, db.LEDGER_LOCK) if granted]
    if len(loading) == 1:
        return f"a file is being committed by a loader ({loading[0]})"
    return (f"files are being committed by {len(loading)} loaders ({'; '.join(loading)})" if loading
            else "a loader has just committed")


_held = threading.local()  # the locks this thread holds (warehouse_read, build_lock): key -> depth


def _holds(key: tuple) -> bool:
    return bool(_held.__dict__.get(key))


@contextlib.contextmanager
def _holding(key: tuple) -> Iterator[None]:
    """Count the body as a use of ``key`` by this thread (its lock is held: taken here or by an outer use)."""
    _held.__dict__[key] = _held.__dict__.get(key, 0) + 1
    try:
        yield
    finally:
        _held.__dict__[key] -= 1


@contextlib.contextmanager
def warehouse_read(url: str, what: str, log=print) -> Iterator[None]:
    """Hold the warehouse's build lock shared while the body reads the marts and the KPI layer (``what``: the
    quality gate, a publication): no dbt command writes meanwhile (see above). Waits for a running one,
    saying which. Re-entrant in a thread (a publication that runs the gate again holds it once)."""
    if _holds(("read", url)):
        with _holding(("read", url)):
            yield
        return
    with db.connect(url, autocommit=True, application_name=f"corridor {what} (pid {os.getpid()})") as conn:
        if not conn.execute("select pg_try_advisory_lock_shared(hashtext(%s))", (BUILD_LOCK,)).fetchone()[0]:
            log(f"{_lock_users(conn)}: the {what} waits for it to finish")
            conn.execute("select pg_advisory_lock_shared(hashtext(%s))", (BUILD_LOCK,))
            log(f"the dbt command finished: the {what} reads")
        try:
            with _holding(("read", url)):
                yield
        finally:
            if not conn.closed:
                conn.execute("select pg_advisory_unlock_shared(hashtext(%s))", (BUILD_LOCK,))


# The backends holding the build lock for this process's dbt commands, for the project's on-run-start guard
# (dbt_project/macros/require_build_lock.sql): a dbt command that writes runs only while one of them holds it,
# so a plain `dbt build` (no lock: loaders, publications and builds beside it) is refused.
BUILD_LOCK_BACKENDS_ENV = "CORRIDOR_BUILD_LOCK_BACKENDS"
_backends_lock = threading.Lock()


def _announce_backend(pid: int, held: bool) -> None:
    with _backends_lock:
        pids = [p for p in os.environ.get(BUILD_LOCK_BACKENDS_ENV, "").split(",") if p and p != str(pid)]
        if held:
            pids.append(str(pid))
        if pids:
            os.environ[BUILD_LOCK_BACKENDS_ENV] = ",".join(pids)
        else:
            os.environ.pop(BUILD_LOCK_BACKENDS_ENV, None)


@contextlib.contextmanager
def build_lock(url: str, args: list[str], log=print) -> Iterator[None]:
    """Hold the warehouse's build lock while the body runs, for a dbt command that writes (else nothing).

    When another dbt command of the same warehouse holds it, log who (backend pid, application, connected
    since) and wait for it. Re-entrant in a thread, whatever the URL's spelling (``dbt`` under ``dbt_recorded``
    takes it once). The backend holding it is named in CORRIDOR_BUILD_LOCK_BACKENDS for the dbt project's guard."""
    if not args or args[0] not in WRITING_COMMANDS:
        yield
        return
    if _holds(("build",)):
        with _holding(("build",)):
            yield
        return
    with db.connect(url, autocommit=True, application_name=f"corridor dbt {args[0]} (pid {os.getpid()})") as conn:
        if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (BUILD_LOCK,)).fetchone()[0]:
            log(f"{_lock_users(conn)}: this dbt command waits for it to finish")
            conn.execute("select pg_advisory_lock(hashtext(%s))", (BUILD_LOCK,))
            log("the warehouse is free: this dbt command runs")
        try:
            # the files being committed first, and no file committed while it runs (db.LEDGER_LOCK)
            if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (db.LEDGER_LOCK,)).fetchone()[0]:
                log(f"{_loaders(conn)}: this dbt command waits for it; loading waits while the command runs")
                conn.execute("select pg_advisory_lock(hashtext(%s))", (db.LEDGER_LOCK,))
            _announce_backend(conn.info.backend_pid, True)
            with _holding(("build",)):
                yield
        finally:
            _announce_backend(conn.info.backend_pid, False)
            if not conn.closed:
                conn.execute("select pg_advisory_unlock_all()")


# dbt build flags after which the build is not "the whole project as configured": it runs always
# and is not recorded (a --full-refresh build runs always, and is recorded).
PARTIAL_BUILD_FLAGS = frozenset({
    "-s", "--select", "-m", "--models", "--exclude", "--selector", "--resource-type", "--resource-types",
    "--exclude-resource-type", "--exclude-resource-types", "--empty", "--defer", "--state", "--vars",
    "--favor-state", "--sample", "--event-time-start", "--event-time-end", "--inline",
})


def is_whole_build(args: list[str]) -> bool:
    """`dbt build` of the whole project (flags such as --quiet or --target-path allowed)."""
    return bool(args) and args[0] == "build" and not any(
        a.split("=", 1)[0] in PARTIAL_BUILD_FLAGS for a in args[1:])


def ledger_position(url: str) -> tuple[int, int]:
    """(highest ledger_id, number of ledger rows) of ops.load_ledger now."""
    with db.connect(url) as conn:
        row = conn.execute("select coalesce(max(ledger_id), 0), count(*) from ops.load_ledger").fetchone()
    return int(row[0]), int(row[1])


def last_build(url: str) -> tuple[int, int, str] | None:
    """(ledger max id, ledger rows, project digest) of the last recorded successful whole build."""
    with db.connect(url) as conn:
        if conn.execute("select to_regclass('ops.dbt_builds')").fetchone()[0] is None:
            return None
        row = conn.execute("select ledger_max_id, ledger_rows, project_digest from ops.dbt_builds"
                           " order by build_id desc limit 1").fetchone()
    return (int(row[0]), int(row[1]), row[2]) if row else None


def last_build_id(url: str) -> int | None:
    """The build_id of the last recorded successful whole build (ops.dbt_builds), None when none is."""
    with db.connect(url) as conn:
        if conn.execute("select to_regclass('ops.dbt_builds')").fetchone()[0] is None:
            return None
        row = conn.execute("select max(build_id) from ops.dbt_builds").fetchone()
    return None if row[0] is None else int(row[0])


def unchanged_since_last_build(url: str, project_dir: Path) -> str | None:
    """Why a whole build has nothing to do (a sentence), or None when something changed."""
    last = last_build(url)
    if last is None:
        return None
    max_id, rows = ledger_position(url)
    if (max_id, rows) != last[:2] or project_digest(project_dir) != last[2] or unverified_commands(url):
        return None
    return (f"nothing loaded since the last successful build (load ledger at id {max_id}, {rows} files)"
            " and the dbt project unchanged: dbt build skipped (--full-refresh or a selection always runs)")


# What a whole build of the project the last successful build ran need not run again (increment_scope):
# - the tests declared in dbt_project/seeds/ (they read seed tables only);
# - the staging views (`config.materialized:view,path:models/staging`): a view is its SQL, which is in the
#   project digest, over the raw tables, which dbt never drops (their schema, sql/raw.sql, is in the digest
#   too); the last build created exactly these views (one dropped outside dbt: increment_scope runs everything);
# - the models that read seeds only (tag `reads_seeds_only`: dim_area, kpi_catalogue) and the tests that
#   read only them and seeds (the same tag: assert_kpi_catalogue_has_18_kpis, assert_kpi_codes_have_one_measure,
#   assert_kpi_configuration_consistent):
#   the seed CSVs and the SQL are in the digest, so these tables hold exactly what the last build wrote
#   and tested.
# "empty" indirect selection: excluding a node leaves out that node only, never a test of another parent
# (the views' tests still run, on the rows of the files loaded since; so do the tests that read dim_area
# or kpi_catalogue beside a model the build writes). The tests declared in seeds/ are matched by path.
# tests/test_build_dag.py checks the list of what is left out.
INCREMENT_EXCLUDES = ("--exclude", "resource_type:test,path:seeds", "config.materialized:view,path:models/staging",
                      "tag:reads_seeds_only", "--indirect-selection", "empty")


def left_out_relations(project_dir: Path) -> list[tuple[str, str]]:
    """(schema, name) of what INCREMENT_EXCLUDES keeps from being built again: the staging views, the seeds
    and the models tagged ``reads_seeds_only`` (each folder's schema: dbt_project.yml)."""
    import yaml

    out = [("staging", p.stem) for p in (project_dir / "models" / "staging").rglob("*.sql")]
    out += [("seeds", p.stem) for p in (project_dir / "seeds").rglob("*.csv")]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the pure-Python loader took ~0.2 s a build
    for path in sorted((project_dir / "models").rglob("*.yml")):
        for model in (yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}).get("models") or []:
            if "reads_seeds_only" in ((model.get("config") or {}).get("tags") or []):
                out.append((path.relative_to(project_dir / "models").parts[0], model["name"]))
    return sorted(out)


def missing_relations(url: str, relations: list[tuple[str, str]]) -> list[str]:
    """Those of ``relations`` the warehouse does not hold (dropped outside dbt, say)."""
    with db.connect(url) as conn:
        rows = conn.execute(
            "select s || '.' || n from unnest(%s::text[], %s::text[]) as r (s, n)"
            " where to_regclass(quote_ident(s) || '.' || quote_ident(n)) is null",
            ([s for s, _ in relations], [n for _, n in relations])).fetchall()
    return sorted(r[0] for r in rows)


def increment_scope(url: str, digest: str, full_refresh: bool, log=print,
                    project_dir: Path | None = None) -> tuple[list[str], int | None]:
    """What a whole build need not check again: (extra dbt arguments, tested ledger id or None).

    Both only after a recorded successful whole build of this very dbt project (same digest), and never
    for --full-refresh:

    - the unit tests (``--exclude-resource-type unit_test``): they check the project's SQL on fixed
      inputs, not the warehouse's data, and passed on this code (a recorded build ran them, or followed
      a recorded build of the same digest that did; a build without them is partial, never recorded);
    - loading the seeds again (``--exclude-resource-type seed``): their CSVs are part of the digest, so
      the seed tables already hold exactly them (loaded by the first recorded build of this digest);
    - the seeds' own tests, the staging views and the models that read seeds only (``INCREMENT_EXCLUDES``):
      the seed tables hold exactly the rows those tests passed on in the build that loaded them, a view is
      its SQL (in the digest), and a model of seeds only would write the rows it wrote then. Tests of
      models that read a seed (e.g. ``relationships`` to ``corridor_areas``) and of the views still run;
    - the raw rows up to that build's ledger id, when no file with a lower id was committed after it
      started (the ledger then holds exactly its number of files up to that id): raw rows are never
      changed or deleted (dbt_project/README.md), so the staging views' tests need only read the rows
      of later files (macros/get_where_subquery.sql, through TESTED_LEDGER_ENV: ``tested_ledger``).
    """
    last = None if full_refresh else last_build(url)
    if last is None or last[2] != digest:
        return [], None
    gone = missing_relations(url, left_out_relations(project_dir or _default_project_dir()))
    if gone:
        log(f"the warehouse lacks {', '.join(gone)} (dropped outside dbt?): this build runs everything")
        return [], None
    log("dbt project unchanged since the last successful build: its unit tests (code, not data) passed on it"
        " and its seeds are loaded and tested; none of these runs again (--full-refresh or a changed project"
        " runs them)")
    with db.connect(url) as conn:
        files = conn.execute("select count(*) from ops.load_ledger where ledger_id <= %s", (last[0],)).fetchone()[0]
    return (["--exclude-resource-type", "unit_test", "--exclude-resource-type", "seed",
             *INCREMENT_EXCLUDES],
            last[0] if int(files) == last[1] else None)


def _default_project_dir() -> Path:
    return config.load().dbt_project_dir


def record_build(url: str, position: tuple[int, int], digest: str, started_at, full_refresh: bool,
                 write_id: int | None = None) -> None:
    """Record a successful whole build that started with the ledger at ``position``; its tests covered the
    writes recorded in ops.dbt_unverified_writes up to ``write_id`` (its own): they go, in the same transaction."""
    with db.connect(url) as conn:
        conn.execute(db.BUILDS_DDL)
        conn.execute("insert into ops.dbt_builds (ledger_max_id, ledger_rows, project_digest, is_full_refresh,"
                     " started_at) values (%s, %s, %s, %s, %s)", (*position, digest, full_refresh, started_at))
        if write_id is not None:
            conn.execute("delete from ops.dbt_unverified_writes where write_id <= %s", (write_id,))
        conn.commit()


@dataclass(frozen=True)
class WholeBuild:
    """A build of the whole project about to run: its project digest, the dbt arguments of what it need not
    check again and the ledger id whose raw rows were tested already (``increment_scope``)."""

    digest: str
    extra: list[str]
    tested_ledger_id: int | None
    every_row: bool = False  # the incremental models' tests read every row (see unverified_writes)


@contextlib.contextmanager
def whole_build(url: str, project_dir: Path, full_refresh: bool, log=print) -> Iterator[WholeBuild]:
    """The bookkeeping of a whole-project build, whoever runs dbt (``dbt_recorded``, the build DAG's task):
    where the ledger stands before it (what the build includes) and its scope; the build is recorded in
    ops.dbt_builds when the body returns, never when it raises (a failed dbt run). Run under ``build_lock``."""
    from datetime import UTC, datetime

    position = ledger_position(url)
    digest = project_digest(project_dir)
    extra, tested = increment_scope(url, digest, full_refresh, log, project_dir)
    write_id, every_row = unverified_writes(url, ["build", *(["--full-refresh"] if full_refresh else [])])
    if every_row and not full_refresh:
        log("a dbt command since the last successful whole build wrote models without one passing (a failed,"
            " killed or partial build, a dbt run), or none was recorded: this build's tests of the incremental"
            " models read every row, not only the rows it writes")
    started_at = datetime.now(UTC)
    yield WholeBuild(digest, extra, tested, every_row)
    record_build(url, position, digest, started_at, full_refresh, write_id)


def dbt_recorded(url: str, args: list[str], project_dir: Path, log=print, skip_unchanged: bool = True):
    """Run dbt ``args``; a successful whole-project build is recorded (ops.dbt_builds) with the
    ledger position it started from, and skipped (unless ``skip_unchanged`` is false, or with
    --full-refresh) when nothing changed since the last one. A whole build (not --full-refresh) of
    the project the last recorded build ran leaves out the unit tests and the seeds, and its staging
    tests read the raw rows loaded since that build (``increment_scope``).
    A command that writes the warehouse runs under ``build_lock`` (it waits for another).
    Returns dbt's result, None if skipped.
    """
    whole = is_whole_build(args)
    full_refresh = "--full-refresh" in args
    with build_lock(url, args, log):  # what changed is decided once no other build is writing
        if whole and skip_unchanged and not full_refresh:
            reason = unchanged_since_last_build(url, project_dir)
            if reason:
                log(reason)
                return None
        target = target_path(args, project_dir)
        write_id = None
        if not whole and args and args[0] in MODEL_WRITING_COMMANDS:
            write_id, _ = unverified_writes(url, args)  # what it writes, the next whole build tests whole
        with whole_build(url, project_dir, full_refresh, log) if whole else contextlib.nullcontext() as build:
            keep = build is not None and bool(build.extra) and manifest_is_current(target, build.digest)
            if not keep:  # dbt rewrites manifest.json: stamped again only after a successful whole build
                (target / TARGET_STAMP).unlink(missing_ok=True)
            result = dbt([*args, *(build.extra if build else [])], project_dir,
                         tested_ledger_id=build.tested_ledger_id if build else None, keep_manifest=keep,
                         every_row=build is not None and build.every_row)
        if build is not None and not keep:
            stamp_manifest(target, build.digest)
        if write_id is not None and not wrote_models(result):
            with db.connect(url, autocommit=True) as conn:
                conn.execute("delete from ops.dbt_unverified_writes where write_id = %s", (write_id,))
        return result


def wrote_models(result) -> bool:
    """Whether a dbt invocation ran a node that writes a table (model, seed, snapshot); True when unknown."""
    results = getattr(getattr(result, "result", None), "results", None)
    if results is None:
        return True
    return any(str(r.node.resource_type) in ("model", "seed", "snapshot") for r in results)
