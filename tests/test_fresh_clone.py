"""`corridor` from a fresh clone whose code tree is read-only: any command, in any order."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_PII_KEY
from tests.test_stack import _can_mount_read_only, _copy_code_tree, _tree_snapshot


def _read_only(code: Path, argv: list[str], base: Path) -> list[str]:
    if os.geteuid() == 0 and shutil.which("unshare") and _can_mount_read_only(base):
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind -o ro "$0" "$0" && exec "$@"', str(code), *argv]
    subprocess.run(["chmod", "-R", "a-w", str(code)], check=True)
    return argv


def test_ingest_before_any_build_works_from_a_read_only_fresh_clone(tmp_path, warehouse_url):
    from corridor.demo import generate

    code = _copy_code_tree(tmp_path / "code")
    landing = tmp_path / "landing"
    generate(landing, seed=7, start="2022-12", end="2022-12")
    snapshot = _tree_snapshot(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CORRIDOR_"))}
    env.update({"PYTHONPATH": str(code / "src"), "CORRIDOR_STATE_DIR": str(tmp_path / "state"),
                "CORRIDOR_OUTPUT_DIR": str(tmp_path / "out"), "CORRIDOR_LANDING_DIR": str(landing),
                "CORRIDOR_WAREHOUSE_URL": warehouse_url, "CORRIDOR_PII_KEY": TEST_PII_KEY.decode()})
    corridor = str(Path(sys.executable).with_name("corridor"))
    try:
        proc = subprocess.run(_read_only(code, [corridor, "ingest", "hr"], tmp_path), env=env, cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "ingest_hr: success" in proc.stdout
        parse = subprocess.run(_read_only(code, [corridor, "dbt", "parse", "--quiet"], tmp_path), env=env,
                               cwd=tmp_path, capture_output=True, text=True)
        assert parse.returncode == 0, parse.stdout[-3000:] + parse.stderr[-3000:]
        assert (tmp_path / "state" / "dbt" / "target" / "manifest.json").is_file()
        assert _tree_snapshot(code) == snapshot
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(code)], check=False)
