"""The KPI configuration (dbt_project/seeds/*.csv, edited without code) is checked when it is built: a seed
that contradicts itself or what _seeds__seeds.yml promises fails the build, naming the problem
(tests/assert_kpi_configuration_consistent.sql), before any scorecard uses it."""

from __future__ import annotations

import csv
import json
import shutil

import psycopg
import pytest

from corridor import transform
from tests.conftest import ROOT, point_dbt_at

SEEDS = ("kpi_targets", "kpi_area_allocation", "kpi_weights", "kpi_status_thresholds")
CHECK = "assert_kpi_configuration_consistent"


def _edit_seed(path, change) -> None:
    """Rewrite a seed CSV with ``change(row)`` applied to every row (in place)."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        change(row)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _build(project, target):
    return transform.dbt(["build", "--select", *SEEDS, CHECK, "--exclude-resource-type", "unit_test", "--quiet",
                          "--target-path", str(target)], project, check=False)


def test_the_shipped_configuration_is_consistent(warehouse_copy, monkeypatch, tmp_path):
    point_dbt_at(monkeypatch, warehouse_copy)
    target = tmp_path / "target"  # not the state folder's: the shared manifest stays the real project's
    assert _build(ROOT / "dbt_project", target).success
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    assert [(r["status"], r["failures"]) for r in results if r["unique_id"] == f"test.corridor.{CHECK}"] \
        == [("pass", 0)]


def test_a_self_contradicting_configuration_fails_the_build_naming_each_problem(
        warehouse_copy, monkeypatch, tmp_path):
    """Edits a demanding official would not see until a scorecard is wrong: K01's target raised to 25 while its
    printed target_text still says ≥ 20; a target on K17 (tracked, no target); the annual K12 paced across the
    window; the K03 growth rate split across areas; a negative area weight and ranking weight; ahead below
    on_track. Each is one row of the check; the build fails."""
    point_dbt_at(monkeypatch, warehouse_copy)
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    seeds = project / "seeds"

    def targets(row):
        if row["kpi_code"] == "K01":
            row["corridor_target"] = "25"
        elif row["kpi_code"] == "K17":
            row["corridor_target"] = "5"
        elif row["kpi_code"] == "K12":
            row["pacing"] = "window_linear"
        elif row["kpi_code"] == "K03":
            row["area_target_method"] = "allocated"

    def allocation(row):
        if (row["kpi_code"], row["area_code"]) == ("K04", "LW"):
            row["allocation_weight"] = "-1"

    def weights(row):
        if row["kpi_code"] == "K05":
            row["ranking_weight"] = "-2"

    def thresholds(row):
        row["min_completion_ratio"] = {"ahead": "0.9", "on_track": "0.95"}[row["status"]]

    for name, change in (("kpi_targets", targets), ("kpi_area_allocation", allocation),
                         ("kpi_weights", weights), ("kpi_status_thresholds", thresholds)):
        _edit_seed(seeds / f"{name}.csv", change)
    target = tmp_path / "target"
    assert not _build(project, target).success
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    [check] = [r for r in results if r["unique_id"] == f"test.corridor.{CHECK}"]
    assert (check["status"], check["failures"]) == ("fail", 7), check
    assert {r["status"] for r in results if r["unique_id"] != check["unique_id"]} <= {"success", "pass"}
    compiled = (target / "compiled" / "corridor" / "tests" / f"{CHECK}.sql").read_text(encoding="utf-8")
    with psycopg.connect(warehouse_copy) as conn:
        problems = sorted(conn.execute(compiled).fetchall())
    assert problems == [
        ("kpi_area_allocation", "K04 LW", "allocation_weight -1 below 0"),
        ("kpi_status_thresholds", "ahead, on_track", "ahead from 0.9 is below on_track from 0.95"),
        ("kpi_targets", "K01", 'target_text "≥ 20 by 2022" states 20, corridor_target is 25'),
        ("kpi_targets", "K03", "a rate is not split across areas: area_target_method must be uniform"),
        ("kpi_targets", "K12", "pacing window_linear contradicts target_kind annual"),
        ("kpi_targets", "K17", "corridor_target 5 for a KPI without a target (target_kind none)"),
        ("kpi_weights", "K05", "ranking_weight -2 below 0"),
    ], problems


@pytest.mark.parametrize(("kpi", "column", "value", "problem"), [
    ("K04", "target_text", "≥ 900 every year", 'target_text "≥ 900 every year" does not state a cumulative target'),
    ("K15", "corridor_target", "", "no corridor_target for a KPI with a target (target_kind annual)"),
])
def test_a_target_text_of_another_kind_or_a_missing_target_fails(warehouse_copy, monkeypatch, tmp_path,
                                                                   kpi, column, value, problem):
    point_dbt_at(monkeypatch, warehouse_copy)
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))

    def change(row):
        if row["kpi_code"] == kpi:
            row[column] = value

    _edit_seed(project / "seeds" / "kpi_targets.csv", change)
    target = tmp_path / "target"
    assert not _build(project, target).success
    compiled = (target / "compiled" / "corridor" / "tests" / f"{CHECK}.sql").read_text(encoding="utf-8")
    with psycopg.connect(warehouse_copy) as conn:
        problems = conn.execute(compiled).fetchall()
    assert ("kpi_targets", kpi, problem) in problems, problems
