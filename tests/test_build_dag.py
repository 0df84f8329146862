"""The build DAG under dag.test(): one cosmos `dbt build` task, dbt's profile derived from
CORRIDOR_WAREHOUSE_URL alone, a failed model shown as the failed task with dbt's message."""

from __future__ import annotations

import psycopg

from tests.conftest import ROOT

DBT_ENV = ("CORRIDOR_PGHOST", "CORRIDOR_PGPORT", "CORRIDOR_PGUSER", "CORRIDOR_PGPASSWORD", "CORRIDOR_PGDATABASE")


def _build_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags" / "build_warehouse.py"))
    assert not bag.import_errors
    dag = bag.get_dag("build_warehouse")
    for task in dag.tasks:
        task.retries = 0
    return dag


def test_failed_model_fails_the_build_task_with_dbts_message(airflow_db, warehouse_copy, tmp_path, monkeypatch,
                                                              capfd):
    with psycopg.connect(warehouse_copy, autocommit=True) as conn:
        conn.execute("drop table raw.hr_talents cascade")
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    for var in DBT_ENV:  # only the URL: the task derives dbt's profile from it
        monkeypatch.delenv(var, raising=False)
    run = _build_dag().test()

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states["dbt_build"] == "failed"
    log = "".join(capfd.readouterr())
    assert "dbt invocation completed with errors" in log
    assert "stg_hr__talents" in log and 'relation "raw.hr_talents" does not exist' in log


def test_build_dag_in_a_fresh_state_folder_writes_nothing_into_the_dbt_project(airflow_db, warehouse_copy,
                                                                               monkeypatch):
    before = sorted(p.relative_to(ROOT) for p in (ROOT / "dbt_project").rglob("*"))
    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    for var in DBT_ENV:
        monkeypatch.delenv(var, raising=False)
    run = _build_dag().test()
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states == {"changes_since_last_build": "success", "dbt_build": "success", "source_freshness": "success"}
    assert sorted(p.relative_to(ROOT) for p in (ROOT / "dbt_project").rglob("*")) == before


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def test_build_dag_skips_dbt_when_nothing_was_loaded_since_the_last_successful_build(
        airflow_db, warehouse_copy, monkeypatch):
    from corridor import transform
    from corridor.orchestration.build import changes_since_last_build

    monkeypatch.setenv("CORRIDOR_WAREHOUSE_URL", warehouse_copy)
    for var in DBT_ENV:
        monkeypatch.delenv(var, raising=False)
    # no build recorded yet in this database: the build runs, and records the ledger it started from
    assert _states(_build_dag().test())["dbt_build"] == "success"
    with psycopg.connect(warehouse_copy) as conn:
        recorded = conn.execute("select ledger_max_id, ledger_rows from ops.dbt_builds").fetchall()
        ledger = conn.execute("select max(ledger_id), count(*) from ops.load_ledger").fetchone()
        conn.execute("create table public.kpi_before as select * from kpi.kpi_values")
    assert recorded == [ledger]
    # nothing new: dbt is skipped entirely (kpi_values not even rebuilt), freshness still checked
    assert _states(_build_dag().test()) == {
        "changes_since_last_build": "success", "dbt_build": "skipped", "source_freshness": "success"}
    with psycopg.connect(warehouse_copy) as conn:
        assert conn.execute("select count(*) from ops.dbt_builds").fetchone()[0] == 1
        assert conn.execute("select count(*) from (select * from kpi.kpi_values except all"
                            " select * from public.kpi_before) as d").fetchone()[0] == 0
    assert transform.unchanged_since_last_build(warehouse_copy, ROOT / "dbt_project")
    # a person asks for a build anyway (the DAG's param force): it runs, and is recorded
    assert _states(_build_dag().test(run_conf={"force": True}))["dbt_build"] == "success"
    with psycopg.connect(warehouse_copy) as conn:
        assert conn.execute("select count(*) from ops.dbt_builds").fetchone()[0] == 2
    # a file loaded since (a ledger row, even with an id below the recorded maximum): it runs again
    with psycopg.connect(warehouse_copy) as conn:
        conn.execute(
            "insert into ops.load_ledger (ledger_id, feed, file_name, sha256, bytes, status, started_at,"
            " finished_at, message) values (0, 'hr', 'late.xlsx', 'x', 0, 'rejected', now(), now(), 'late')")
    assert changes_since_last_build(ROOT / "dbt_project") is True
    assert transform.unchanged_since_last_build(warehouse_copy, ROOT / "dbt_project") is None


def test_only_a_whole_project_build_is_recorded_or_skipped():
    from corridor.transform import is_whole_build

    assert is_whole_build(["build"])
    assert is_whole_build(["build", "--target-path", "/tmp/t", "--quiet"])
    assert is_whole_build(["build", "--full-refresh"])
    for args in (["build", "-s", "kpi"], ["build", "--select=kpi"], ["build", "--exclude", "x"],
                 ["build", "--vars", "{a: 1}"], ["run"], ["test"], []):
        assert not is_whole_build(args), args


def test_unit_tests_run_again_only_when_the_dbt_project_changed(warehouse_copy, monkeypatch):
    """dbt unit tests check the project's code, not the data: a whole build of the project that the last
    successful build ran leaves them out; a first build, --full-refresh or a changed project runs them.
    The same builds pass the ledger id whose raw rows the last build tested (the staging tests read the
    later files), unless a file with a lower id was committed after it started."""
    from corridor import transform

    calls = []
    monkeypatch.setattr(transform, "dbt", lambda args, project_dir, check=True, tested_ledger_id=None, **_:
                        calls.append((list(args), tested_ledger_id)))
    project = ROOT / "dbt_project"
    # and without loading the seeds again (their CSVs are in the digest), nor the views and seed-only models
    without_unit_tests = ["--exclude-resource-type", "unit_test", "--exclude-resource-type", "seed",
                          *transform.INCREMENT_EXCLUDES]
    with psycopg.connect(warehouse_copy) as conn:
        ledger = conn.execute("select max(ledger_id) from ops.load_ledger").fetchone()[0]

    def build(*args: str) -> tuple[list[str], int | None]:
        transform.dbt_recorded(warehouse_copy, ["build", *args], project, log=lambda _: None, skip_unchanged=False)
        return calls[-1]

    assert build() == (["build"], None)  # no build recorded yet
    assert build() == (["build", *without_unit_tests], ledger)
    assert build("--full-refresh") == (["build", "--full-refresh"], None)
    assert build("--select", "kpi") == (["build", "--select", "kpi"], None)  # a selection: as asked
    monkeypatch.setattr(transform, "project_digest", lambda _: "a changed project")
    assert build() == (["build"], None)
    assert build() == (["build", *without_unit_tests], ledger)
    with psycopg.connect(warehouse_copy) as conn:
        assert conn.execute("select count(*) from ops.dbt_builds").fetchone()[0] == 5
        # a file committed late, with an id below the last build's highest: every raw row is tested again
        conn.execute(
            "insert into ops.load_ledger (ledger_id, feed, file_name, sha256, bytes, status, started_at,"
            " finished_at, message) values (0, 'hr', 'late.xlsx', 'x', 0, 'rejected', now(), now(), 'late')")
    assert build() == (["build", *without_unit_tests], None)
    # a view or a seed-only table dropped outside dbt: the next build runs everything (and makes it again)
    left_out = transform.left_out_relations(project)
    assert transform.missing_relations(warehouse_copy, left_out) == []
    for drop, gone in (("drop table marts.dim_area cascade", ["marts.dim_area"]),
                       ("drop view staging.stg_hr__talents cascade", ["marts.dim_area", "staging.stg_hr__talents"])):
        with psycopg.connect(warehouse_copy) as conn:
            conn.execute(drop)
        assert transform.missing_relations(warehouse_copy, left_out) == gone
        assert build() == (["build"], None)


def test_a_whole_build_reads_every_row_after_writes_no_successful_whole_build_tested(warehouse_copy, monkeypatch):
    """transform.unverified_writes: a dbt command that may write models leaves a row in
    ops.dbt_unverified_writes before dbt starts, which only a successful whole build deletes; a whole build
    that finds one (or follows no recorded build) is asked to test every row of the incremental models
    (``every_row``) and is never skipped as "nothing changed". tests/test_warehouse.py runs the real thing."""
    from types import SimpleNamespace

    import pytest

    from corridor import transform

    url, project = warehouse_copy, ROOT / "dbt_project"
    calls: list[tuple[str, bool]] = []
    failing: list[bool] = []

    def fake_dbt(args, project_dir, check=True, tested_ledger_id=None, every_row=False, **_):
        calls.append((args[0], every_row))
        if failing:
            raise RuntimeError(f"dbt {' '.join(args)} failed: a test failed")
        if "tag:nothing" in args:  # dbt's result of a selection that matched no node
            return SimpleNamespace(result=SimpleNamespace(results=[]))
        return None  # a result that says nothing: taken as having written

    monkeypatch.setattr(transform, "dbt", fake_dbt)

    def build(*args: str, command: str = "build", skip_unchanged: bool = False) -> bool | None:
        """The ``every_row`` dbt was given, None when the build was skipped."""
        before = len(calls)
        transform.dbt_recorded(url, [command, *args], project, log=lambda _: None, skip_unchanged=skip_unchanged)
        return calls[-1][1] if len(calls) > before else None

    def unverified() -> list[str]:
        with psycopg.connect(url) as conn:
            return [r[0] for r in conn.execute("select command from ops.dbt_unverified_writes order by write_id")]

    assert build() is True  # no build recorded yet (the copy's tables were built by plain dbt)
    assert build() is False and unverified() == []
    assert build(skip_unchanged=True) is None  # nothing loaded, nothing written: skipped
    for command, args in (("run", ["--select", "kpi"]), ("build", ["--select", "kpi"]), ("seed", []),
                          ("retry", [])):
        build(*args, command=command)
        assert unverified() == [" ".join(["dbt", command, *args])]
        assert transform.unchanged_since_last_build(url, project) is None
        assert build(skip_unchanged=True) is True  # not skipped, and reads every row
        assert build() is False and unverified() == []
    for command in ("test", "compile", "docs"):  # they write no model's rows
        build(command=command)
        assert unverified() == [] and build() is False
    # a whole build that failed: not recorded, its row stays
    failing.append(True)
    with pytest.raises(RuntimeError, match="failed"):
        build()
    failing.clear()
    assert unverified() == ["dbt build"]
    assert build() is True and build() is False
    # a build killed while dbt ran: its row was committed before dbt started
    transform.unverified_writes(url, ["build", "--full-refresh"])
    assert build(skip_unchanged=True) is True and unverified() == []
    # a selection that ran no model, seed or snapshot takes its row back
    build("--select", "tag:nothing")
    assert unverified() == [] and build() is False


def test_an_increment_leaves_out_the_seeds_tests_the_staging_views_and_the_seed_only_models(monkeypatch, tmp_path):
    """What an increment leaves out with transform.INCREMENT_EXCLUDES: the tests declared on the seeds (each
    reading seed tables only), the staging views (their SQL is in the project digest) and the models whose
    every ancestor is a seed (tag reads_seeds_only, with the tests that read only them and seeds, such as
    assert_kpi_codes_have_one_measure); every other node stays: the views' own tests, and the tests that
    read a seed or a seed-only model beside another model (relationships to corridor_areas or dim_area)."""
    import json

    from corridor import transform

    for var in ("CORRIDOR_PGHOST", "CORRIDOR_PGUSER", "CORRIDOR_PGDATABASE"):
        monkeypatch.setenv(var, "unset")  # dbt ls parses, never connects
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))

    def listed(*args: str) -> dict[str, dict]:
        result = transform.dbt(["ls", "--quiet", "--output", "json", "--output-keys", "unique_id", "depends_on",
                                "config", "original_file_path", "--exclude-resource-type", "unit_test",
                                "--exclude-resource-type", "seed", *args], ROOT / "dbt_project")
        nodes = [json.loads(line) for line in result.result]
        return {n["unique_id"]: n for n in nodes}

    every = listed()
    kept = listed(*transform.INCREMENT_EXCLUDES)
    left_out = set(every) - set(kept)
    assert set(kept) <= set(every)

    def parents(uid: str) -> list[str]:
        return every[uid].get("depends_on", {}).get("nodes", [])  # a source has none

    def seeds_only(uid: str) -> bool:
        """Every ancestor of the node is a seed."""
        return bool(parents(uid)) and all(p.startswith("seed.") or (p in every and seeds_only(p))
                                          for p in parents(uid))

    views = {uid for uid, n in every.items() if uid.startswith("model.") and n["config"]["materialized"] == "view"}
    seed_only_models = {uid for uid in every if uid.startswith("model.") and seeds_only(uid)}
    assert views and all(every[uid]["original_file_path"].startswith("models/staging/") for uid in views)
    assert {uid.split(".")[-1] for uid in seed_only_models} == {"dim_area", "kpi_catalogue"}
    seed_tests = {uid for uid in every if uid.startswith("test.") and all(p.startswith("seed.") for p in parents(uid))}
    seed_only_model_tests = {uid for uid in every if uid.startswith("test.") and uid not in seed_tests and all(
        p.startswith("seed.") or p in seed_only_models for p in parents(uid))}
    assert seed_tests and left_out == views | seed_only_models | seed_tests | seed_only_model_tests, \
        sorted(left_out ^ (views | seed_only_models | seed_tests | seed_only_model_tests))
    # the views' tests stay, on the rows of the files loaded since the last build
    assert {uid for uid in kept if uid.startswith("test.") and set(parents(uid)) & views}
    assert "test.corridor.assert_kpi_codes_have_one_measure" in left_out  # kpi_targets, kpi_catalogue, the yml
    assert any("corridor_areas" in uid and "stg_" in uid for uid in kept)
    assert any("ref_dim_area" in uid for uid in kept)
    # an increment first checks that the warehouse still holds what it does not build again
    models = {uid.split(".")[-1] for uid in left_out if uid.startswith("model.")}
    assert {name for schema, name in transform.left_out_relations(ROOT / "dbt_project")
            if schema != "seeds"} == models


def test_an_increment_into_a_target_stamped_with_its_project_writes_run_results_not_the_manifest(
        warehouse_copy, monkeypatch, tmp_path):
    """A whole build stamps its target with the project digest; the next whole build of the same project
    into it runs with --no-write-json (manifest.json, ~0.45 s a build, stays as written) and writes
    run_results.json from dbt's result; a build of a changed project writes the manifest again."""
    import json

    from corridor import transform
    from tests.conftest import point_dbt_at

    point_dbt_at(monkeypatch, warehouse_copy)
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    project = ROOT / "dbt_project"
    target = tmp_path / "target"
    digest = transform.project_digest(project)

    def build() -> tuple[float, dict]:
        (target / "run_results.json").unlink(missing_ok=True)
        result = transform.dbt_recorded(warehouse_copy, ["build", "--target-path", str(target), "--quiet"], project,
                                        log=lambda _: None, skip_unchanged=False)
        assert result.success
        return (target / "manifest.json").stat().st_mtime_ns, json.loads((target / "run_results.json").read_text())

    written, first = build()  # the copy's recorded build wrote into another target
    assert (target / transform.TARGET_STAMP).read_text() == digest
    assert first["args"]["write_json"] is True
    kept, second = build()
    assert kept == written and second["args"]["write_json"] is False
    assert len(second["results"]) > 50 and {r["status"] for r in second["results"]} <= {"success", "pass", "warn", "no-op"}
    assert (target / transform.TARGET_STAMP).read_text() == digest
    # another project in the same target: dbt writes its manifest, stamped again after the build
    (target / transform.TARGET_STAMP).write_text("another project")
    rewritten, third = build()
    assert rewritten > written and third["args"]["write_json"] is True
    assert (target / transform.TARGET_STAMP).read_text() == digest


def test_dbts_file_log_keeps_warnings_and_errors_unless_asked_for_more(monkeypatch):
    from corridor import transform

    monkeypatch.delenv("DBT_LOG_LEVEL_FILE", raising=False)
    monkeypatch.delenv("CORRIDOR_DBT_LOG_LEVEL_FILE", raising=False)
    assert transform.file_log_args(["build"]) == ["--log-level-file", "warn"]
    assert transform.file_log_args(["build", "--log-level-file", "info"]) == []
    assert transform.file_log_args(["build", "--log-level-file=info"]) == []
    monkeypatch.setenv("CORRIDOR_DBT_LOG_LEVEL_FILE", "debug")
    assert transform.file_log_args(["build"]) == ["--log-level-file", "debug"]
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "info")
    assert transform.file_log_args(["build"]) == []


def test_a_second_dbt_build_waits_for_the_first_and_then_decides_what_changed(warehouse_copy, monkeypatch):
    """Two dbt commands that write one warehouse never overlap (an increment's tests read the rows its INSERT
    recorded; two increments of one watermark would insert the same rows twice): a build waits for the
    build lock, saying which backend holds it, and decides whether anything changed only once it has it,
    so a build that the other one made needless is skipped. Commands that only read dbt's project run."""
    import threading
    import time
    from datetime import UTC, datetime

    from corridor import transform

    project = ROOT / "dbt_project"
    calls, said = [], []
    monkeypatch.setattr(transform, "dbt", lambda args, project_dir, **_: calls.append(list(args)))

    def waiter_waits() -> bool:
        with psycopg.connect(warehouse_copy) as conn:
            return conn.execute("select count(*) from pg_stat_activity where datname = current_database()"
                                " and application_name like 'corridor dbt build (pid %%'"
                                " and wait_event_type = 'Lock' and wait_event = 'advisory'").fetchone()[0] == 1

    with psycopg.connect(warehouse_copy, autocommit=True, application_name="the other build") as other:
        other.execute("select pg_advisory_lock(hashtext(%s))", (transform.BUILD_LOCK,))
        transform.dbt_recorded(warehouse_copy, ["compile"], project, log=said.append)  # reads: does not wait
        assert calls == [["compile"]]
        second = threading.Thread(target=transform.dbt_recorded, args=(warehouse_copy, ["build"], project),
                                  kwargs={"log": said.append})
        second.start()
        deadline = time.monotonic() + 60
        while not waiter_waits() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiter_waits()
        assert calls == [["compile"]]  # not yet
        assert said and said[0].startswith("a dbt command is writing this warehouse (backend ")
        assert "the other build" in said[0] and said[0].endswith("this dbt command waits for it to finish")
        # the other build ends having built everything loaded so far
        transform.record_build(warehouse_copy, transform.ledger_position(warehouse_copy),
                               transform.project_digest(project), datetime.now(UTC), False)
        other.execute("select pg_advisory_unlock(hashtext(%s))", (transform.BUILD_LOCK,))
        second.join(timeout=60)
    assert not second.is_alive()
    assert calls == [["compile"]]  # nothing left to build: skipped
    assert said[1] == "the warehouse is free: this dbt command runs"
    assert said[2].startswith("nothing loaded since the last successful build")
    # the lock is free again: the next build neither waits nor says so
    said.clear()
    transform.dbt_recorded(warehouse_copy, ["build"], project, log=said.append, skip_unchanged=False)
    assert calls[-1][0] == "build" and not any("waits" in line for line in said)
