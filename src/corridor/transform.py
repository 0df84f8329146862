"""dbt from Python: the connection environment and the prebuilt manifest.

The build DAG renders from ``dbt_project/target/manifest.json``. It is made
by ``dbt parse`` (in-process, one dbt start-up) whenever a file of the dbt
project changed since the last parse, and reused otherwise.
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


def dbt(args: list[str], project_dir: Path):
    """Invoke dbt in-process; raise with dbt's own message when it fails."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke([*args, "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)])
    if not result.success:
        raise RuntimeError(f"dbt {' '.join(args)} failed: {result.exception or 'see the dbt log above'}")
    return result


def ensure_manifest(project_dir: Path) -> Path:
    """``target/manifest.json``, parsed anew only when the project changed."""
    manifest = project_dir / "target" / "manifest.json"
    stamp = project_dir / "target" / ".corridor-digest"
    digest = project_digest(project_dir)
    if manifest.exists() and stamp.exists() and stamp.read_text() == digest:
        return manifest
    for var in ("CORRIDOR_PGHOST", "CORRIDOR_PGUSER", "CORRIDOR_PGDATABASE"):
        os.environ.setdefault(var, "unset")  # parse reads the profile but never connects
    dbt(["parse", "--quiet"], project_dir)
    stamp.write_text(digest)
    return manifest
