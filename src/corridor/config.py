"""Configuration read from the environment: ``load()`` reads and checks the settings below. A setting of one
module is read where it is used: a whole number (workers, ports) through ``env_int``, an on/off switch
through ``env_flag`` (README.md, Settings, lists every variable and the module that reads it).

| variable                 | default                                  |
|--------------------------|------------------------------------------|
| CORRIDOR_WAREHOUSE_URL   | an embedded PostgreSQL under .corridor/  |
| CORRIDOR_LANDING_DIR     | the generated demo landing area          |
| CORRIDOR_OUTPUT_DIR      | out/                                     |
| CORRIDOR_PII_KEY         | a generated key kept in .corridor/pii.key|
| CORRIDOR_STATE_DIR       | .corridor/ (embedded database, Airflow)  |
| CORRIDOR_DEMO_SCALE      | city                                     |
| CORRIDOR_DEMO_SEED       | 20200305                                 |
| CORRIDOR_MAX_XLSX_BYTES  | 52428800 (50 MiB)                        |
| CORRIDOR_MAX_FILE_BYTES  | 1073741824 (1 GiB): largest CSV / JSONL  |
| CORRIDOR_MAX_RECORD_BYTES| 1048576 (1 MiB): longest CSV record / JSONL line |
| CORRIDOR_MAX_FIELD_CHARS | 32767 (Excel's cell limit): longest field |
| CORRIDOR_MAX_FIELDS      | 1000: most fields in a CSV record / keys in a JSON object |
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# The demo data set's sizes (rows ×1, ×20, ×200; corridor.demo): CORRIDOR_DEMO_SCALE names one.
DEMO_SCALES = {"city": 1, "province": 20, "national": 200}


class ConfigError(ValueError):
    """A setting that cannot be used, named with the variable or what it names (the landing folder:
    corridor.ingest.LandingFolderMissing). The command line prints it as one line; a task fails on it at once
    (corridor.orchestration.alerts.fails_at_once_on_a_setting)."""


def project_root() -> Path:
    """The repository root: where dags/, dbt_project/ and expectations/ live."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "dbt_project").is_dir():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class Limits:
    """How large a landing file and its parts may be (untrusted input must not exhaust memory).

    A CSV / JSONL file over ``file_bytes`` is rejected before it is read; a
    record over ``record_bytes``, a field over ``field_chars`` characters or a
    record with more than ``fields`` fields is quarantined (its first few KB
    and its length are kept, not the whole record).
    """

    file_bytes: int = 1024 * 1024 * 1024
    record_bytes: int = 1024 * 1024
    field_chars: int = 32767
    fields: int = 1000


def _positive_int(env, name: str, default: int) -> int:
    value = _int(env, name, default)
    if value <= 0:
        raise ConfigError(f"{name}={env.get(name)!r} must be positive")
    return value


def _int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole-number setting of one module (workers, ports), read where it is used: ``default`` when unset,
    ConfigError naming the variable when it is not a whole number or is below ``minimum``."""
    value = _int(os.environ, name, default)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={os.environ.get(name)!r} must be {minimum} or more")
    return value


FLAG_ON = ("1", "true", "yes", "on")
FLAG_OFF = ("0", "false", "no", "off")


def env_flag(name: str, default: bool) -> bool:
    """An on/off switch of one module (the fast ingest path, the gate's full run), read where it is used:
    ``default`` when unset or blank, else 1/true/yes/on or 0/false/no/off in any case; anything else is a
    ConfigError naming the variable, its value and the accepted values."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in FLAG_ON:
        return True
    if value in FLAG_OFF:
        return False
    raise ConfigError(f"{name}={raw!r} is not an on/off value ({'/'.join(FLAG_ON)} or {'/'.join(FLAG_OFF)})")


def _choice(env, name: str, default: str, choices) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _warehouse_url(env) -> str | None:
    url = env.get("CORRIDOR_WAREHOUSE_URL") or None
    if url is not None and urlsplit(url).scheme not in ("postgresql", "postgres"):
        # not echoed: a connection string of another form may hold a password
        raise ConfigError("CORRIDOR_WAREHOUSE_URL is not a PostgreSQL URL (postgresql://user@host:port/dbname;"
                          " a Unix socket folder as ?host=/path)")
    if url is not None:
        _readable_url(url)
    return url


def _readable_url(url: str) -> None:
    """Refuse a URL that libpq cannot read, or reads otherwise than the project (which hands its parts to dbt):
    a ``%``, ``/``, ``#``, ``?`` or ``@`` left as it is in a password. Neither reader's error is shown: libpq's
    (``invalid percent-encoded token: "<password>"``) and urllib's (``Port could not be cast to integer value
    as '<start of the password>'``) quote the password."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from corridor.db import libpq_params

    try:
        libpq = conninfo_to_dict(url)
        ours = libpq_params(url)
    except (psycopg.ProgrammingError, ValueError):
        libpq, ours = {"host": None}, {"host": ""}
    if "host" in libpq:  # none (postgresql:///db): libpq's default socket, the project's localhost, as always
        libpq["host"], ours["host"] = str(libpq["host"]).lower(), ours["host"].lower()  # urllib lower-cases
    if any(str(libpq[k]) != ours[k] for k in ("host", "port", "user", "password", "dbname") if k in libpq):
        raise ConfigError("CORRIDOR_WAREHOUSE_URL cannot be read as one server, user and database (not shown: it"
                          " may hold a password): a %, /, #, ? or @ in the user name or password must be"
                          " percent-encoded (% as %25, / as %2F, # as %23, ? as %3F, @ as %40)")


@dataclass(frozen=True)
class Settings:
    root: Path
    state_dir: Path
    warehouse_url: str | None  # None: use the embedded PostgreSQL
    landing_dir: Path
    landing_is_demo: bool
    output_dir: Path
    demo_scale: str
    demo_seed: int
    max_xlsx_bytes: int
    limits: Limits

    @property
    def dags_dir(self) -> Path:
        return self.root / "dags"

    @property
    def dbt_project_dir(self) -> Path:
        return self.root / "dbt_project"

    @property
    def expectations_dir(self) -> Path:
        return self.root / "expectations"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"

    def pii_key(self) -> bytes:
        """The key of the person_key pseudonym (HMAC-SHA256).

        From CORRIDOR_PII_KEY; otherwise a random key generated once and kept
        in the git-ignored state folder, so that pseudonyms stay stable
        across local runs.
        """
        value = os.environ.get("CORRIDOR_PII_KEY")
        if value:
            return value.encode()
        path = self.state_dir / "pii.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def load() -> Settings:
    env = os.environ
    root = project_root()
    state_dir = Path(env.get("CORRIDOR_STATE_DIR") or root / ".corridor").resolve()
    landing = env.get("CORRIDOR_LANDING_DIR")
    return Settings(
        root=root,
        state_dir=state_dir,
        warehouse_url=_warehouse_url(env),
        landing_dir=Path(landing).resolve() if landing else state_dir / "demo-landing",
        landing_is_demo=not landing,
        output_dir=Path(env.get("CORRIDOR_OUTPUT_DIR") or root / "out").resolve(),
        demo_scale=_choice(env, "CORRIDOR_DEMO_SCALE", "city", DEMO_SCALES),
        demo_seed=_int(env, "CORRIDOR_DEMO_SEED", 20200305),
        max_xlsx_bytes=_positive_int(env, "CORRIDOR_MAX_XLSX_BYTES", 50 * 1024 * 1024),
        limits=Limits(
            file_bytes=_positive_int(env, "CORRIDOR_MAX_FILE_BYTES", Limits.file_bytes),
            record_bytes=_positive_int(env, "CORRIDOR_MAX_RECORD_BYTES", Limits.record_bytes),
            field_chars=_positive_int(env, "CORRIDOR_MAX_FIELD_CHARS", Limits.field_chars),
            fields=_positive_int(env, "CORRIDOR_MAX_FIELDS", Limits.fields),
        ),
    )
