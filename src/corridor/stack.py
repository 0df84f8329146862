"""The production topology, run natively: what docker-compose.yml runs, as processes of this machine.

``corridor stack up`` starts, with the environment the compose file gives its
containers: Redis (Debian's ``redis-server``, the Celery broker), an SMTP
catcher (aiosmtpd standing in for Mailpit), then ``airflow api-server``,
``scheduler``, ``dag-processor``, ``triggerer`` and N ``airflow celery
worker`` (CeleryExecutor). Airflow's metadata is a PostgreSQL database
(``CORRIDOR_AIRFLOW_DB_URL``, default: the database ``airflow`` on the embedded
server of the state folder); the warehouse is ``CORRIDOR_WAREHOUSE_URL``
(default: the database ``corridor`` on that server). ``corridor stack down``
stops every process ``up`` started (recorded in ``stack.json``).

One source of configuration: the Airflow settings are ``config/airflow.env``
(the compose file's ``env_file``); the variables that differ per host (URLs,
ports, paths, secrets) are :data:`HOST_KEYS`, which the compose file sets from
``.env`` and :func:`host_env` sets here. ``tests/test_deploy.py`` checks both.

``corridor stack init`` is the ``airflow-init`` service of both: migrate the
metadata, create the pool that serialises build and publication, create the
warehouse's ``raw``/``ops`` schemas.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from corridor import config, db
from corridor.config import Settings

AIRFLOW_ENV_FILE = "config/airflow.env"
ADMIN_USER = "admin"

# Variables set per host: compose's `x-airflow-common.environment` sets exactly these.
HOST_KEYS = (
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    "AIRFLOW_CONN_SMTP_DEFAULT",
    "CORRIDOR_WAREHOUSE_URL",
    "CORRIDOR_STATE_DIR",
    "CORRIDOR_OUTPUT_DIR",
    "CORRIDOR_LANDING_DIR",
    "CORRIDOR_PII_KEY",
)

# The Airflow services and their commands (`airflow <command>`), as in docker-compose.yml.
SERVICES = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}


def hostname() -> str:
    """Airflow's ``hostname_callable``: a native worker's name (``CORRIDOR_WORKER_NAME``), else the FQDN.

    In compose every container has its own hostname; natively the two workers
    share one machine, and this keeps their task instances apart.
    """
    name = os.environ.get("CORRIDOR_WORKER_NAME")
    if name:
        return name
    from airflow.utils.net import getfqdn

    return getfqdn()


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines ignored), as compose's env_file reads them."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Stack:
    """A native stack's folder, ports, URLs and processes (``stack.json`` in its folder)."""

    home: Path  # CORRIDOR_STATE_DIR/stack
    code_root: Path
    api_port: int
    redis_port: int
    smtp_port: int
    health_port: int
    metadata_url: str
    warehouse_url: str
    workers: int = 2
    read_only_code: bool = False
    processes: dict[str, int] = field(default_factory=dict)  # name -> pid (process group leader)
    started_postgres: int | None = None  # postmaster pid, when `up` started the embedded server

    @property
    def url(self) -> str:
        return f"http://localhost:{self.api_port}"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def maildir(self) -> Path:
        return self.home / "mail"

    def save(self) -> None:
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        (self.home / "stack.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, home: Path) -> Stack | None:
        path = home / "stack.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        data["home"], data["code_root"] = Path(data["home"]), Path(data["code_root"])
        return cls(**data)

    def secrets(self) -> dict[str, str]:
        """Fernet key, JWT secret, API secret key, admin password: generated once, kept in the stack folder."""
        path = self.home / "secrets.json"
        if path.is_file():
            return json.loads(path.read_text())
        from cryptography.fernet import Fernet

        values = {"fernet_key": Fernet.generate_key().decode(), "jwt_secret": secrets.token_urlsafe(32),
                  "api_secret_key": secrets.token_urlsafe(32), "admin_password": secrets.token_urlsafe(12)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(values, fh)
        return values

    def admin_password(self) -> str:
        return self.secrets()["admin_password"]


def host_env(stack: Stack, settings: Settings) -> dict[str, str]:
    """The per-host variables (:data:`HOST_KEYS`) of the native stack."""
    s = stack.secrets()
    sa = db.libpq_params(stack.metadata_url)
    query = f"?host={sa['host']}" if sa["host"].startswith("/") else ""
    host = "localhost" if sa["host"].startswith("/") else sa["host"]
    auth = sa["user"] + (f":{sa['password']}" if sa["password"] else "")
    metadata = f"{auth}@{host}:{sa['port']}/{sa['dbname']}{query}"
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": stack.smtp_port,
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 30, "retry_limit": 0,
                      "from_email": "scorecards@corridor.example"}}
    env = {
        "AIRFLOW_HOME": str(stack.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(stack.code_root / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{metadata}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{stack.redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{metadata}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{stack.api_port}/execution/",
        "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
        "AIRFLOW__API__BASE_URL": stack.url,  # the UI's address: the alerts' log links (alerts._base_url)
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(stack.home / "passwords.json"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(stack.health_port),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp),
        "CORRIDOR_WAREHOUSE_URL": stack.warehouse_url,
        "CORRIDOR_STATE_DIR": str(settings.state_dir),
        "CORRIDOR_OUTPUT_DIR": str(settings.output_dir),
        "CORRIDOR_LANDING_DIR": str(settings.landing_dir),
        "CORRIDOR_PII_KEY": settings.pii_key().decode(),
    }
    assert tuple(env) == HOST_KEYS
    return env


def stack_env(stack: Stack, settings: Settings) -> dict[str, str]:
    """The whole environment of an Airflow process of the native stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CORRIDOR_"))}
    env.update(read_env_file(stack.code_root / AIRFLOW_ENV_FILE))
    env.update(host_env(stack, settings))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The stack's code is the tree it was started from (which may be a read-only copy).
    env["PYTHONPATH"] = str(stack.code_root / "src")
    return env


def _command(stack: Stack, argv: list[str]) -> list[str]:
    """``argv``, run with the code tree mounted read-only (a private mount namespace) when asked."""
    if not stack.read_only_code:
        return argv
    root = str(stack.code_root)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind -o ro "$0" "$0" && exec "$@"', root, *argv]


def _airflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]


def init(env: dict[str, str] | None = None, echo=print) -> None:
    """The ``airflow-init`` step: migrate, create the warehouse pool, create the warehouse schemas."""
    from corridor.orchestration.assets import WAREHOUSE_POOL, WAREHOUSE_POOL_DESCRIPTION

    env = env or os.environ.copy()
    for args in (("db", "migrate"), ("pools", "set", WAREHOUSE_POOL, "1", WAREHOUSE_POOL_DESCRIPTION)):
        started = time.perf_counter()
        proc = subprocess.run(_airflow(*args), env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        echo(f"airflow {' '.join(args[:2])}: ok ({time.perf_counter() - started:.1f} s)")
    db.ensure_schema(env.get("CORRIDOR_WAREHOUSE_URL") or db.warehouse_url(config.load()))
    echo("warehouse schemas raw, ops: ok")


def _postmaster_pid(pgdata: Path) -> int | None:
    path = pgdata / "postmaster.pid"
    try:
        pid = int(path.read_text().splitlines()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def _spawn(stack: Stack, name: str, argv: list[str], env: dict[str, str]) -> None:
    stack.logs.mkdir(parents=True, exist_ok=True)
    log = open(stack.logs / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen(_command(stack, argv), env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=stack.home)
    log.close()
    stack.processes[name] = proc.pid
    stack.save()


def up(settings: Settings | None = None, *, workers: int = 2, api_port: int | None = None,
       code_root: Path | None = None, read_only_code: bool = False, timeout: float = 240,
       echo=print) -> Stack:
    """Start the native stack and wait until it is healthy; return it (its URLs, ports, pids)."""
    settings = settings or config.load()
    home = settings.state_dir / "stack"
    previous = Stack.load(home)
    if previous and any(_alive(pid) for pid in previous.processes.values()):
        raise RuntimeError(f"a stack is already running from {home} ({previous.url}): `corridor stack down` first")
    home.mkdir(parents=True, exist_ok=True)
    for name in ("stack.json",):
        (home / name).unlink(missing_ok=True)
    code_root = (code_root or config.project_root()).resolve()
    if read_only_code and shutil.which("unshare") is None:
        raise RuntimeError("read_only_code needs unshare(1)")

    pg_before = _postmaster_pid(settings.pgdata)
    metadata_url = os.environ.get("CORRIDOR_AIRFLOW_DB_URL") or db.embedded_url(settings.pgdata, "airflow")
    warehouse_url = db.warehouse_url(settings)
    pg_after = _postmaster_pid(settings.pgdata)
    if api_port is None:
        api_port = config.env_int("CORRIDOR_STACK_PORT", 8080, minimum=1)
        if not _port_free(api_port):
            api_port = free_port()
    stack = Stack(home=home, code_root=code_root, api_port=api_port, redis_port=free_port(),
                  smtp_port=free_port(), health_port=free_port(), metadata_url=metadata_url,
                  warehouse_url=warehouse_url, workers=workers, read_only_code=read_only_code,
                  started_postgres=pg_after if pg_before is None else None)
    stack.save()
    env = stack_env(stack, settings)
    stack.airflow_home.mkdir(parents=True, exist_ok=True)
    (stack.home / "passwords.json").write_text(json.dumps({ADMIN_USER: stack.admin_password()}))
    for sub in ("tmp", "new", "cur"):  # a Maildir (aiosmtpd's Mailbox handler writes into it)
        (stack.maildir / sub).mkdir(parents=True, exist_ok=True)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    try:
        init(env, echo)
        _spawn(stack, "redis", ["redis-server", "--port", str(stack.redis_port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(stack.home)], env)
        _spawn(stack, "mailpit", [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{stack.smtp_port}",
                                  "-c", "aiosmtpd.handlers.Mailbox", str(stack.maildir)], env)
        _spawn(stack, "airflow-apiserver", _airflow("api-server", "--port", str(stack.api_port)), env)
        for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
            _spawn(stack, name, _airflow(*SERVICES[name]), env)
        for n in range(1, workers + 1):
            worker_env = {**env, "CORRIDOR_WORKER_NAME": f"worker-{n}",
                          "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
            _spawn(stack, f"airflow-worker-{n}",
                   _airflow("celery", "worker", "--celery-hostname", f"worker-{n}@%h"), worker_env)
        wait_healthy(stack, timeout)
    except BaseException:
        down(settings, echo=lambda *_: None)
        raise
    echo(f"Airflow UI: {stack.url}  (login: {ADMIN_USER} / {stack.admin_password()})")
    echo(f"logs: {stack.logs}; mail caught in {stack.maildir}; stop with `make stack-down`")
    return stack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of this process is not alive
        pid_done, _ = os.waitpid(pid, os.WNOHANG)
        return pid_done == 0
    except ChildProcessError:
        return True


def _http_json(url: str, token: str | None = None, data: dict | None = None, method: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def wait_healthy(stack: Stack, timeout: float = 240) -> dict:
    """Until the API answers, scheduler, triggerer and dag-processor are healthy and every worker is ready."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        dead = [n for n, pid in stack.processes.items() if not _alive(pid)]
        if dead:
            tail = "\n".join(_tail(stack.logs / f"{n}.log") for n in dead)
            raise RuntimeError(f"stack process(es) exited: {', '.join(dead)}\n{tail}")
        try:
            health = _http_json(f"{stack.url}/api/v2/monitor/health")
            last = health
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ok = all((health.get(p) or {}).get("status") == "healthy" for p in parts)
            ready = all(b"ready." in (stack.logs / f"airflow-worker-{n}.log").read_bytes()
                        for n in range(1, stack.workers + 1))
            if ok and ready:
                return health
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        time.sleep(2)
    raise TimeoutError(f"stack not healthy after {timeout:.0f} s: {last}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} missing)"
    return f"--- {path.name}\n" + "\n".join(text[-lines:])


def down(settings: Settings | None = None, echo=print, timeout: float = 30) -> list[str]:
    """Stop every process ``up`` started (Airflow first, then Redis, the mail catcher, PostgreSQL)."""
    settings = settings or config.load()
    stack = Stack.load(settings.state_dir / "stack")
    if stack is None:
        echo("no stack recorded: nothing to stop")
        return []
    stopped = []
    order = sorted(stack.processes, key=lambda n: (n in ("redis", "mailpit"), n))
    for name in order:
        pid = stack.processes[name]
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
            stopped.append(name)
    deadline = time.monotonic() + timeout
    for name in order:
        pid = stack.processes[name]
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
    if stack.started_postgres and _alive(stack.started_postgres):
        os.kill(stack.started_postgres, signal.SIGINT)  # fast shutdown
        stopped.append("postgres")
    stack.processes = {}
    stack.save()
    echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return stopped


class Api:
    """The Airflow REST API of a running stack, logged in as the admin."""

    def __init__(self, stack: Stack) -> None:
        self.base = stack.url
        token = _http_json(f"{self.base}/auth/token",
                           data={"username": ADMIN_USER, "password": stack.admin_password()})
        self.token = token["access_token"]

    def get(self, path: str):
        return _http_json(f"{self.base}/api/v2{path}", self.token)

    def post(self, path: str, data: dict):
        return _http_json(f"{self.base}/api/v2{path}", self.token, data=data, method="POST")

    def patch(self, path: str, data: dict):
        return _http_json(f"{self.base}/api/v2{path}", self.token, data=data, method="PATCH")
