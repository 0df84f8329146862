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
