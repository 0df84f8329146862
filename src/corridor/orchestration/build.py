"""The build DAG's tasks: one `dbt build` through cosmos, and `dbt source freshness`.

The build is skipped (a short-circuit task before it) when nothing was loaded and the dbt
project did not change since the last successful build: the build records the load ledger's
position it started from in ops.dbt_builds (corridor.transform).

Why one coarse build task and not one task per dbt node (see the DAG's doc):
under a real executor every task instance pays 6-12 s of start-up (a worker
slot, a fresh interpreter, the DAG file parsed again). Cosmos 1.15's watcher
consumers are deferrable sensors, but they still start on a worker before they
defer (there is no ``start_from_trigger`` in cosmos), so 85 node tasks cost
85 start-ups: 109-197 s against ~30 s for the build itself. One cosmos
``DbtBuildLocalOperator`` runs the whole project in one dbt invocation with
dbt's own threads; a failed model fails that task, and cosmos's error names
every failed node with dbt's message; the task log lists every node's status.

The warehouse connection is one setting, ``CORRIDOR_WAREHOUSE_URL`` (or the
embedded server): the task derives the ``CORRIDOR_PG*`` variables that
``dbt_project/profiles.yml`` reads from it, in the task process on the worker,
so no worker needs them set and no secret is written into the serialised DAG.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from cosmos.operators.local import DbtBuildLocalOperator

from corridor.orchestration.alerts import fails_at_once_on_a_setting

log = logging.getLogger(__name__)


def warehouse_dbt_env() -> dict[str, str]:
    """Point dbt's profile at the configured warehouse in this process; return the settings' state dir."""
    from corridor import config, db, transform

    settings = config.load()
    url = db.warehouse_url(settings)
    transform.set_dbt_env(url)
    return {"state_dir": str(settings.state_dir)}


class WarehouseBuildOperator(DbtBuildLocalOperator):
    """``dbt build`` of the whole project (cosmos), connected through ``CORRIDOR_WAREHOUSE_URL``."""

    @fails_at_once_on_a_setting
    def execute(self, context: Any, **kwargs: Any) -> None:
        from pathlib import Path

        from corridor import config, db, transform

        state = warehouse_dbt_env()["state_dir"]
        # cosmos keeps dbt's partial-parse file here between runs (never in the code tree).
        self.cache_dir = Path(state) / "cosmos"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        url = db.warehouse_url(config.load())
        full_refresh = str(getattr(self, "full_refresh", False)).strip().lower() in ("true", "1", "yes")
        # never beside `corridor dbt build` in a terminal (the pool keeps this DAG's own runs apart); recorded
        # in ops.dbt_builds only when dbt succeeded (cosmos raises on a failed node)
        with (transform.build_lock(url, ["build"], log.info),
              transform.whole_build(url, Path(self.project_dir), full_refresh, log.info) as build):
            transform.keep_dbt_connections()  # cosmos runs dbt in this process (InvocationMode.DBT_RUNNER)
            with transform.tested_ledger(build.tested_ledger_id, build.every_row):
                # dbt's file log at transform's level (warnings and errors), as `corridor dbt build` has it
                result = self.build_and_run_cmd(
                    context=context, cmd_flags=[*self.add_cmd_flags(), *build.extra, *transform.file_log_args([])],
                    **kwargs)
            log_node_summary(result)


def log_node_summary(result: Any) -> None:
    """One line per node type with counts by status (the build's outcome at a glance)."""
    results = getattr(getattr(result, "result", None), "results", None) or []
    counts: dict[str, Counter] = {}
    for r in results:
        counts.setdefault(str(r.node.resource_type), Counter())[str(r.status)] += 1
    for kind, c in sorted(counts.items()):
        log.info("dbt build: %s %s", kind, ", ".join(f"{n} {s}" for s, n in sorted(c.items())))


@fails_at_once_on_a_setting
def changes_since_last_build(project_dir, *, force: bool = False, scheduled: bool = False) -> bool:
    """False (skip dbt) when nothing was loaded and the dbt project is unchanged since the last
    successful whole build recorded in ops.dbt_builds; True otherwise, and always when ``force``
    (the DAG's param of that name).

    ``scheduled``: the DAG's daily timetable started the run, which is there for ``source_freshness``
    (a run only new files start never sees the loads stop): it never builds. A build follows the feeds'
    Asset events, the ingest runs that loaded a delivery; a daily run that built whatever was loaded by
    then would publish a delivery half loaded (on a first deployment, marts without the feeds still
    loading: a blocked gate and its alert)."""
    from pathlib import Path

    from corridor import config, db, transform

    if force:
        log.info("the run asks for a build (param force): dbt build runs whatever was loaded")
        return True
    if scheduled:
        log.info("the daily run checks the sources' freshness; builds follow the feeds' Asset events (trigger"
                 " with the param force to build now)")
        return False
    warehouse_dbt_env()
    url = db.warehouse_url(config.load())
    reason = transform.unchanged_since_last_build(url, Path(project_dir))
    if reason:
        log.info("%s", reason)
        return False
    log.info("new loads or a changed dbt project since the last successful build: dbt build runs")
    return True


class FreshnessFailed(Exception):
    """An error-level `dbt source freshness` result: a feed stopped delivering."""


@fails_at_once_on_a_setting
def source_freshness() -> dict:
    """Run `dbt source freshness`; raise naming each feed whose error threshold passed; report warnings.

    Returns ``{"checked": n, "warnings": [...], "errors": [...]}`` (each a line naming the
    feed, the source table, its latest loaded-at and the threshold).
    """
    from corridor import config, transform

    warehouse_dbt_env()
    settings = config.load()
    # A target folder of its own, kept: dbt's partial parse makes the next run's parse cheap.
    target = settings.state_dir / "dbt" / "freshness"
    result = transform.dbt(["source", "freshness", "--quiet", "--target-path", str(target)],
                           settings.dbt_project_dir, check=False)
    lines = {"warn": [], "error": []}
    checked = 0
    for r in getattr(result.result, "results", None) or []:
        if str(getattr(r.node, "resource_type", "")) != "source":
            continue  # on-run-start/-end hooks
        checked += 1
        status = str(getattr(r, "status", ""))
        node = r.node
        feed = node.source_name
        table = f"{node.schema}.{node.identifier}"
        loaded = getattr(r, "max_loaded_at", None)
        age = getattr(r, "age", None)
        criteria = node.freshness
        if status == "pass":
            continue
        if status == "runtime error":
            lines["error"].append(f"feed {feed}: freshness of {table} could not be checked: {r.message}")
            continue
        threshold = criteria.error_after if status == "error" else criteria.warn_after
        days = f"{age / 86400:.0f} days" if age is not None else "unknown age"
        level = "error" if status == "error" else "warn"
        verb = "stopped" if level == "error" else "is late"
        lines[level].append(
            f"feed {feed} {verb}: {table} last loaded {loaded} ({days} ago; "
            f"{level} after {threshold.count} {threshold.period})")
    for line in lines["warn"]:
        log.warning("freshness: %s", line)
    summary = {"checked": checked, "warnings": lines["warn"], "errors": lines["error"]}
    if not result.success and not lines["error"]:
        raise FreshnessFailed(f"dbt source freshness failed: {result.exception}")
    if lines["error"]:
        raise FreshnessFailed("\n".join(["dbt source freshness: a feed stopped delivering"] + lines["error"]))
    log.info("freshness: %d source table(s) checked, %d warning(s), no error", checked, len(lines["warn"]))
    return summary
