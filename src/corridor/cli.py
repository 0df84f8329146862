"""The one command line: ``corridor --help``."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import click

from corridor.feeds import FEEDS

FEED_NAMES = tuple(FEEDS)

# Errors a person can act on (an unreachable warehouse, a setting that cannot be used, a missing landing folder
# among them, a landing area without the demo's manifest): (module, class).
_ACTIONABLE = (("corridor.db", "WarehouseUnavailable"), ("corridor.config", "ConfigError"),
               ("corridor.verify", "NoDemoManifest"))

# Subcommands imported only when used: `corridor.scorecards` (WeasyPrint, openpyxl, …) cost every other
# command ~0.3-0.5 s of start-up (issue 11: `corridor dbt build` and `corridor ingest` pay it each run).
_LAZY_COMMANDS = {"scorecards": ("corridor.scorecards.cli", "scorecards")}


class _Group(click.Group):
    """Actionable errors print as one line; the subcommands of _LAZY_COMMANDS load when asked for."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # a module never imported raised none of its errors: only those imported are looked at
            actionable = tuple(c for c in (getattr(sys.modules.get(m), name, None) for m, name in _ACTIONABLE)
                               if isinstance(c, type))
            if actionable and isinstance(exc, actionable):
                raise click.ClickException(str(exc)) from None
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str):
        if name in _LAZY_COMMANDS and name not in self.commands:
            module, attribute = _LAZY_COMMANDS[name]
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """The corridor warehouse (环大罗山科创走廊): ingest, build, check, publish."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
def run() -> None:
    """Run the whole pipeline (the main job of `make run`)."""
    from corridor import pipeline

    sys.exit(pipeline.run())


@main.command("publish")
def publish_cmd() -> None:
    """Run the publish DAG alone: quality gate, then scorecards (`make publish`)."""
    from corridor import config, pipeline, transform
    from corridor import db as database
    from corridor.orchestration.runner import prepare_airflow

    settings = config.load()
    url = database.warehouse_url(settings)
    database.ensure_schema(url)
    transform.set_dbt_env(url)
    prepare_airflow(settings, url)
    result = pipeline.publish(settings, url, click.echo)
    click.echo(f"DAG {result.dag_id}: {result.state} ({result.seconds:.1f} s)")
    sys.exit(0 if result.state == "success" else 1)


@main.group()
def demo() -> None:
    """The demo data set."""


@demo.command("generate")
@click.option("--landing", "landing", type=click.Path(path_type=Path), required=True,
              help="Landing folder to write (district/, techmarket/, bank/, hr/, _demo/).")
@click.option("--seed", default=20200305, show_default=True, type=int)
@click.option("--scale", default="city", show_default=True, type=click.Choice(["city", "province", "national"]))
@click.option("--start", default="2019-01", show_default=True, help="First month, YYYY-MM.")
@click.option("--end", default="2022-12", show_default=True, help="Last month, YYYY-MM.")
def demo_generate(landing: Path, seed: int, scale: str, start: str, end: str) -> None:
    """Write the four feeds' files and the manifest of planted dirty records."""
    import time

    from corridor.demo import generate

    started = time.perf_counter()
    summary = generate(landing, seed=seed, scale=scale, start=start, end=end)
    click.echo(f"wrote {landing} in {time.perf_counter() - started:.1f} s")
    click.echo(str(summary))


@demo.command("verify")
def demo_verify() -> None:
    """Check every planted dirty record of the demo landing area against the warehouse, and that no other
    record of its files was quarantined."""
    from corridor import config
    from corridor import db as database
    from corridor.verify import verify_manifest

    settings = config.load()
    result = verify_manifest(database.warehouse_url(settings), settings.landing_dir, settings.pii_key())
    for entry, reason in result.misses:
        click.echo(f"MISSED {entry['feed']}/{entry['file']} {entry.get('sheet') or ''} row {entry.get('row')}"
                   f" [{entry['kind']}]: {reason}")
    for feed, name, sheet, row, rule, message in result.unplanted:
        click.echo(f"NOT PLANTED {feed}/{name} {sheet or ''} row {row} quarantined [{rule}]: {message}")
    click.echo(f"planted dirty records caught: {result.caught} of {result.checked}")
    click.echo(f"quarantined records the generator did not plant: {len(result.unplanted)} of {result.quarantined}")
    sys.exit(0 if result.ok else 1)


@main.group()
def db() -> None:
    """The warehouse database."""


@db.command("url")
def db_url() -> None:
    """Print the warehouse URL (starting the embedded server if needed)."""
    from corridor import config
    from corridor import db as database

    url = database.warehouse_url(config.load())
    database.ensure_schema(url)
    click.echo(url)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dbt(args: tuple[str, ...]) -> None:
    """Run dbt against the warehouse: `corridor dbt build -s kpi`, `corridor dbt docs generate`.

    `corridor dbt build` of the whole project is skipped when nothing was loaded and the dbt
    project did not change since the last successful one (ops.dbt_builds); a selection,
    --full-refresh or `corridor dbt build --force` always runs.
    """
    from corridor import config, transform
    from corridor import db as database

    settings = config.load()
    url = database.warehouse_url(settings)
    database.ensure_schema(url)
    transform.set_dbt_env(url)
    arguments = list(args)
    force = "--force" in arguments
    if force:
        arguments.remove("--force")
    try:
        transform.dbt_recorded(url, arguments, settings.dbt_project_dir, log=click.echo, skip_unchanged=not force)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("feeds", nargs=-1, type=click.Choice(FEED_NAMES))
def ingest(feeds: tuple[str, ...]) -> None:
    """Run the ingest DAGs (all, or the FEEDS named) once, through Airflow."""
    from corridor import config, pipeline
    from corridor import db as database
    from corridor.orchestration.runner import prepare_airflow, run_dags

    settings = config.load()
    url = database.warehouse_url(settings)
    database.ensure_schema(url)
    prepare_airflow(settings, url)
    from corridor.ingest import close_parse_pool

    dag_ids = [f"ingest_{f}" for f in feeds] if feeds else pipeline.INGEST_DAGS
    try:
        results = run_dags(dag_ids, settings.dags_dir)
    finally:
        close_parse_pool()  # the parse workers the feeds shared
    for r in results:
        click.echo(f"{r.dag_id}: {r.state} ({r.seconds:.1f} s)")
    sys.exit(0 if all(r.state == "success" for r in results) else 1)


@main.group()
def stack() -> None:
    """The native production stack (the topology of docker-compose.yml): `make stack`, `make stack-down`."""


@stack.command("up")
@click.option("--workers", default=2, show_default=True, type=int, help="Celery workers to start.")
@click.option("--port", type=int, default=None, help="API server port (default 8080, or a free one).")
def stack_up(workers: int, port: int | None) -> None:
    """Start Redis, the SMTP catcher, the Airflow services and N Celery workers; wait until healthy."""
    from corridor import config, pipeline
    from corridor import stack as native

    settings = config.load()
    if settings.landing_is_demo:
        pipeline.ensure_demo_landing(settings, click.echo)
    try:
        native.up(settings, workers=workers, api_port=port, echo=click.echo)
    except (RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc


@stack.command("down")
def stack_down() -> None:
    """Stop every process `corridor stack up` started."""
    from corridor import stack as native

    native.down(echo=click.echo)


@stack.command("init")
def stack_init() -> None:
    """The airflow-init step (compose and native): migrate, create the warehouse pool and schemas."""
    from corridor import stack as native

    try:
        native.init(echo=click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
