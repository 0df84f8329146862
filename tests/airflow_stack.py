"""A small real Airflow for tests: api-server, scheduler, dag-processor and triggerer as subprocesses,
LocalExecutor, metadata on PostgreSQL. Only what the deadline and backfill tests need; the full
Celery topology is the native stack's (make stack)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import psycopg

from tests.mailbox import free_port

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def sqlalchemy_url(libpq_url: str) -> str:
    """postgresql+psycopg:// for SQLAlchemy; a socket-only URL gets host localhost (the query's host wins)."""
    parts = urlsplit(libpq_url)
    netloc = parts.netloc if parts.hostname else parts.netloc.rstrip("@") + "@localhost"
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", netloc=netloc, query=urlencode(query)))


class AirflowStack:
    def __init__(self, home: Path, metadata_url: str, dags_folder: Path, extra_env: dict[str, str]) -> None:
        self.home = Path(home)
        self.metadata_url = metadata_url  # libpq URL, for the test's own queries
        self.port = free_port()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(metadata_url),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{self.port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://localhost:{self.port}",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            **extra_env,
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate", timeout=300)
        # The pool build and publication share (as `corridor stack init` creates it): tasks of a
        # pool that does not exist are never scheduled.
        from corridor.orchestration.assets import WAREHOUSE_POOL, WAREHOUSE_POOL_DESCRIPTION

        self.airflow("pools", "set", WAREHOUSE_POOL, "1", WAREHOUSE_POOL_DESCRIPTION)
        for component in COMPONENTS:
            log = open(self.home / f"{component}.log", "wb")  # noqa: SIM115 (closed with the process)
            self.processes[component] = subprocess.Popen(
                [sys.executable, "-m", "airflow", component], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def log(self, component: str) -> str:
        return (self.home / f"{component}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        dead = {c: p.returncode for c, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"Airflow components exited: {dead}\n" + "\n".join(
            f"--- {c} ---\n{self.log(c)[-3000:]}" for c in dead)

    def query(self, sql: str, params=()) -> list[tuple]:
        with psycopg.connect(self.metadata_url) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_until(self, what: str, predicate, timeout: float, poll: float = 1.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                     + "\n".join(f"--- {c} ---\n{self.log(c)[-2500:]}" for c in self.processes))
            time.sleep(poll)

    def stop(self) -> None:
        """Stop the processes this stack started (their process groups), SIGTERM then SIGKILL."""
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.processes.clear()
