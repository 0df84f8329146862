"""The deployment files: docker-compose.yml against the Compose specification, and one configuration
shared by the compose file and the native stack (corridor.stack)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"  # beside the clone
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker"]


def _schema_path():
    """shared/schemas/compose-spec.json beside the clone (as CI lays it), or COMPOSE_SPEC_SCHEMA."""
    import os

    if os.environ.get("COMPOSE_SPEC_SCHEMA"):
        return type(SCHEMA)(os.environ["COMPOSE_SPEC_SCHEMA"])
    for parent in ROOT.parents:
        candidate = parent / "shared" / "schemas" / "compose-spec.json"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("shared/schemas/compose-spec.json not found beside the repository")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_file_validates_against_the_compose_specification(compose):
    import jsonschema

    schema = json.loads(_schema_path().read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert errors == [], "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    print(f"docker-compose.yml: valid against {_schema_path().name} ({schema.get('$schema')})")


def test_compose_runs_the_warehouse_topology_with_health_checks_and_restart_policies(compose):
    services = compose["services"]
    assert set(services) == {"airflow-init", *AIRFLOW_SERVICES, "redis", "postgres", "warehouse", "mailpit"}
    print("services:", ", ".join(services))
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, name
            assert service.get("restart") == "always", name
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
        for infra in ("redis", "postgres", "warehouse"):
            assert depends[infra] == {"condition": "service_healthy"}, (name, infra)
    worker = services["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker  # scalable: --scale airflow-worker=N
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    env = services["airflow-scheduler"]["environment"]
    assert "postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "@warehouse:5432/" in env["CORRIDOR_WAREHOUSE_URL"]  # a separate PostgreSQL for the warehouse
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    volumes = set(compose["volumes"])
    assert {"corridor-output", "corridor-state", "airflow-logs"} <= volumes
    mounts = {re.search(r":(/opt/airflow/[a-z]+)", m).group(1): m for m in services["airflow-worker"]["volumes"]}
    assert mounts["/opt/airflow/landing"].endswith(":ro")
    assert mounts["/opt/airflow/output"].startswith("corridor-output:")
    assert mounts["/opt/airflow/logs"].startswith("airflow-logs:")


def test_every_secret_comes_from_env_and_only_the_example_is_committed(compose):
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert referenced <= example, sorted(referenced - example)
    for secret in ("POSTGRES_PASSWORD", "WAREHOUSE_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
                   "AIRFLOW_ADMIN_PASSWORD", "CORRIDOR_PII_KEY"):
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must be required from .env"
    tracked = subprocess.run(["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == ""
    ignored = subprocess.run(["git", "check-ignore", ".env"], cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 0, ".env must be git-ignored"


def test_image_builds_from_airflow_332_python311_with_the_lock_file_and_cjk_fonts():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", text, re.M)
    assert "-r /opt/corridor/requirements.lock" in text
    assert "fonts-noto-cjk" in text
    lock = (ROOT / "requirements.lock").read_text()
    for package in ("apache-airflow==3.3.2", "apache-airflow-providers-celery==", "redis==", "celery=="):
        assert package in lock, package


def test_compose_and_native_stack_read_one_configuration(compose, tmp_path, monkeypatch):
    """No drift: the same Airflow settings file, the same per-host variables, the same commands."""
    from corridor import config, stack

    common = compose["x-airflow-common"]
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        service = compose["services"][name]
        assert service["env_file"] == [stack.AIRFLOW_ENV_FILE], name
        assert set(service["environment"]) - {"DUMB_INIT_SETSID", "AIRFLOW_ADMIN_PASSWORD"} == set(stack.HOST_KEYS), name
    assert list(common["environment"]) == list(stack.HOST_KEYS)
    for name, argv in stack.SERVICES.items():
        assert compose["services"][name]["command"] == " ".join(argv), name
    assert "corridor stack init" in " ".join(compose["services"]["airflow-init"]["command"])

    shared = stack.read_env_file(ROOT / stack.AIRFLOW_ENV_FILE)
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert not set(shared) & set(stack.HOST_KEYS), "host-specific variables do not belong in the shared file"
    monkeypatch.setenv("CORRIDOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CORRIDOR_PII_KEY", "not-a-secret")
    settings = config.load()
    home = settings.state_dir / "stack"
    home.mkdir(parents=True)
    native = stack.Stack(home=home, code_root=ROOT, api_port=18080, redis_port=16379, smtp_port=11025,
                         health_port=18974, metadata_url="postgresql://postgres@localhost/airflow?host=/run/pg",
                         warehouse_url="postgresql://postgres@localhost/corridor?host=/run/pg")
    env = stack.stack_env(native, settings)
    for key, value in shared.items():
        assert env[key] == value, key
    assert set(stack.HOST_KEYS) <= set(env)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["CORRIDOR_WAREHOUSE_URL"] == native.warehouse_url
    # the UI's address, which the alert e-mails' log links use: the native stack's API, compose's from .env
    assert env["AIRFLOW__API__BASE_URL"] == "http://localhost:18080"
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    base_url = common["environment"]["AIRFLOW__API__BASE_URL"]
    assert _interpolate(base_url, example) == "http://localhost:8080"
    assert _interpolate(base_url, {**example, "AIRFLOW_BASE_URL": "https://airflow.corridor.example"}) == \
        "https://airflow.corridor.example"


def _official_entrypoint_execs(args: list[str]) -> list[str]:
    """What the apache/airflow image's ``/entrypoint`` (scripts/docker/entrypoint_prod.sh) execs for ``args``:
    ``bash ...`` and ``python ...`` run as they are; anything else is handed to the airflow CLI
    (``exec "airflow" "${@}"``, a leading ``airflow`` dropped)."""
    if args[:1] == ["bash"]:
        return ["/bin/bash", *args[1:]]
    if args[:1] == ["python"]:
        return ["python", *args[1:]]
    return ["airflow", *(args[1:] if args[:1] == ["airflow"] else args)]


def _entrypoint_calls(script: str) -> list[list[str]]:
    """Every ``/entrypoint ...`` invocation of a shell script, also inside ``su ... -c "..."`` / ``bash -c``."""
    import shlex

    calls = []
    for line in script.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"\s*(?:&&|\|\||;)\s*", line):
            tokens = shlex.split(part)
            if tokens[:1] == ["/entrypoint"]:
                calls.append(tokens[1:])
            elif "-c" in tokens and tokens[0] in ("su", "bash", "/bin/bash", "sh"):
                calls += _entrypoint_calls(tokens[tokens.index("-c") + 1])
    return calls


def test_airflow_init_runs_corridor_stack_init_through_the_image_entrypoint(compose):
    """The image's /entrypoint hands any command but bash/python to the airflow CLI: `/entrypoint corridor ...`
    would run `airflow corridor stack init` ("invalid choice: 'corridor'"), airflow-init would fail, and no
    other service would start (they wait for it to complete successfully)."""
    from airflow.cli.cli_config import core_commands

    airflow_commands = {c.name for c in core_commands} | {"celery"}
    script = compose["services"]["airflow-init"]["command"][-1]
    calls = _entrypoint_calls(script)
    assert calls, "airflow-init runs corridor stack init through /entrypoint (it waits for the metadata database)"
    runs = []
    for args in calls:
        argv = _official_entrypoint_execs(args)
        if argv[0] == "airflow":
            assert argv[1:2] and argv[1] in airflow_commands, f"/entrypoint {' '.join(args)} runs `{' '.join(argv)}`"
        runs.append(" ".join(argv))
    print("airflow-init runs:", *runs, sep="\n  ")
    assert any(re.search(r"(^|[ '\"])corridor stack init\b", run) for run in runs), runs


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR:-default} / ${VAR} interpolation (the forms the connection uses)."""
    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}",
                  lambda m: env.get(m[1]) or (m[2] or ""), text)


def test_the_mail_connection_reaches_an_authenticated_tls_relay(compose):
    """The compose file's SMTP connection, with .env's values: Mailpit by default (no TLS, no login), and a
    real relay (STARTTLS on 587, or SMTPS on 465, with a login) from .env alone: the provider's hook reads
    the login, the password and the TLS switches from it."""
    from airflow.models.connection import Connection
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    raw = compose["x-airflow-common"]["environment"]["AIRFLOW_CONN_SMTP_DEFAULT"]
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))

    def hook(env: dict[str, str]) -> SmtpHook:
        conn = Connection.from_json(_interpolate(raw, env), conn_id="smtp_default")
        smtp = SmtpHook()
        smtp.conn = conn
        return smtp

    mailpit = hook(example)
    assert (mailpit.conn.host, mailpit.conn.port) == ("mailpit", 1025)
    assert not mailpit.smtp_user and not mailpit.smtp_starttls and not mailpit.use_ssl
    relay = hook({**example, "SMTP_HOST": "smtp.wenzhou.gov.cn", "SMTP_PORT": "587", "SMTP_USER": "scorecards",
                  "SMTP_PASSWORD": "s3cret", "SMTP_DISABLE_TLS": "false"})
    assert (relay.conn.host, relay.conn.port, relay.smtp_user, relay.conn.password) == \
        ("smtp.wenzhou.gov.cn", 587, "scorecards", "s3cret")
    assert relay.smtp_starttls and not relay.use_ssl
    smtps = hook({**example, "SMTP_PORT": "465", "SMTP_DISABLE_SSL": "false"})
    assert smtps.use_ssl and smtps.conn.port == 465
