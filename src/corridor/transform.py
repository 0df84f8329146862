"""dbt from Python: the connection environment, and where dbt writes.

dbt writes its ``target/`` (manifest, run results, compiled SQL, partial
parse) and ``logs/`` under the state folder (``CORRIDOR_STATE_DIR/dbt/``),
never into the code tree, so a read-only checkout works. ``ensure_manifest``
makes ``manifest.json`` there with ``dbt parse`` whenever a file of the dbt
project changed (``make docs`` and BI tooling read it); no DAG needs it at
parse time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from corridor import db

PROJECT_FILES = ("dbt_project.yml", "profiles.yml")
PROJECT_DIRS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")


def set_dbt_env(url: str) -> None:
    """Point dbt_project/profiles.yml at the warehouse for this process and its children."""
    os.environ.update(db.dbt_env(url))


def dbt_state_dir() -> Path:
    """Where dbt's target/ and logs/ go: ``CORRIDOR_STATE_DIR/dbt``."""
    from corridor import config

    return config.load().state_dir / "dbt"


def project_digest(project_dir: Path) -> str:
    digest = hashlib.sha256()
    paths = [project_dir / f for f in PROJECT_FILES]
    for d in PROJECT_DIRS:
        if (project_dir / d).is_dir():
            paths += sorted(p for p in (project_dir / d).rglob("*") if p.is_file())
    for path in paths:
        if path.is_file():
            digest.update(str(path.relative_to(project_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def dbt(args: list[str], project_dir: Path, check: bool = True):
    """Invoke dbt in-process; raise with dbt's own message when it fails (unless ``check`` is false).

    Target and log paths default to the state folder (``DBT_TARGET_PATH`` /
    ``DBT_LOG_PATH`` or ``--target-path`` win).
    """
    from dbt.cli.main import dbtRunner

    state = dbt_state_dir()
    env = {"DBT_TARGET_PATH": str(state / "target"), "DBT_LOG_PATH": str(state / "logs")}
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    Path(os.environ["DBT_LOG_PATH"]).mkdir(parents=True, exist_ok=True)
    try:
        result = dbtRunner().invoke([*args, "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
    if check and not result.success:
        raise RuntimeError(f"dbt {' '.join(args)} failed: {result.exception or 'see the dbt log above'}")
    return result


def manifest_path() -> Path:
    return dbt_state_dir() / "target" / "manifest.json"


def ensure_manifest(project_dir: Path) -> Path:
    """``manifest.json`` under the state folder, parsed anew only when the project changed."""
    manifest = manifest_path()
    stamp = manifest.with_name(".corridor-digest")
    digest = project_digest(project_dir)
    if manifest.exists() and stamp.exists() and stamp.read_text() == digest:
        return manifest
    for var in ("CORRIDOR_PGHOST", "CORRIDOR_PGUSER", "CORRIDOR_PGDATABASE"):
        os.environ.setdefault(var, "unset")  # parse reads the profile but never connects
    dbt(["parse", "--quiet"], project_dir)
    stamp.write_text(digest)
    return manifest
