"""``corridor scorecards …``: publish (gated, recorded, mailed), re-publish, preview, list editions.

Registered in the main command line on first use (``corridor.cli._LAZY_COMMANDS``: this module,
and WeasyPrint and openpyxl with it, is imported only when ``corridor scorecards`` is asked for).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

EDITION_CHOICE = click.Choice(["monthly", "quarterly", "year_end"])


def _url() -> str:
    from corridor import config, db

    return db.warehouse_url(config.load())


def _quality_gate(url: str) -> dict:
    """Run the quality checks now and return their gate (the publish DAG passes its own gate task's)."""
    try:
        from corridor.quality.checks import run_checks
    except ImportError as exc:  # pragma: no cover - the quality package ships with the project
        raise click.ClickException(f"the quality gate is not available ({exc})") from exc
    from corridor.quality.gate import full_run
    from corridor.scorecards.gate import normalise_gate

    return normalise_gate(run_checks(url, full=full_run()))  # CORRIDOR_GATE_FULL=1: every row again


@click.group()
def scorecards() -> None:
    """Scorecards of the plan's rhythm: 月度例会, 季度观摩, 年度比拼."""


@scorecards.command("publish")
@click.option("--edition", type=EDITION_CHOICE, help="Default: every edition at its latest complete period.")
@click.option("--period", "period", type=click.DateTime(["%Y-%m-%d"]), help="First day of the period.")
@click.option("--area", "areas", multiple=True, help="ALL or an area code (repeatable); default ALL and all six.")
@click.option("--republish", is_flag=True, help="Issue a new edition where the data changed since publication.")
@click.option("--no-send", is_flag=True, help="Record and write, but send no e-mail.")
def publish_command(edition, period, areas, republish, no_send) -> None:
    """Publish after the quality gate: files under CORRIDOR_OUTPUT_DIR, editions recorded, e-mail sent."""
    from corridor import config, transform
    from corridor.orchestration.tasks import WarehouseNotBuilt, check_warehouse_built
    from corridor.scorecards import GateBlocked, deliver, format_publish_result, publish

    settings = config.load()
    url = _url()
    # the gate and the publication under one read lock: no build between them (transform.warehouse_read)
    with transform.warehouse_read(url, "publication", lambda line: click.echo(line, err=True)):
        try:  # as the publish DAG's gate task: never built, or written since the last successful whole build
            check_warehouse_built(url)
        except WarehouseNotBuilt as exc:
            click.echo(f"not published: {exc}", err=True)
            sys.exit(1)
        gate = _quality_gate(url)
        try:
            result = publish(url, settings.output_dir, gate=gate, edition=edition,
                             period_start=period.date() if period else None, areas=list(areas) or None,
                             republish=republish, send=False)
        except GateBlocked as exc:
            click.echo(f"not published: {exc}", err=True)
            sys.exit(1)
    not_sent = None
    if not no_send:  # once the read lock is released: a slow mail server does not keep a build waiting
        try:
            deliver(url, result)
        except RuntimeError as exc:
            not_sent = exc
    click.echo(format_publish_result(result, settings.root))
    if result.restated and not republish:
        click.echo("data restated since publication: `corridor scorecards publish --republish` issues new editions")
    if not_sent is not None:
        click.echo(f"{not_sent}; `corridor scorecards publish` again sends what is left", err=True)
        sys.exit(1)


@scorecards.command("render")
@click.option("--edition", type=EDITION_CHOICE, required=True)
@click.option("--period", "period", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--area", default="ALL", show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder to write into.")
def render_command(edition, period, area, out) -> None:
    """A preview in three formats: nothing recorded, nothing sent, no quality gate."""
    from corridor.scorecards import render

    for fmt, path in render(_url(), edition=edition, period_start=period.date(), area=area, gate=None,
                            out_dir=out).items():
        click.echo(f"{fmt:<5}{path}")


@scorecards.command("editions")
@click.option("--year", type=int, help="Only periods starting in this year.")
def editions_command(year) -> None:
    """The published editions on record."""
    import psycopg

    from corridor.scorecards.registry import ensure_registry

    url = _url()
    ensure_registry(url)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            select edition, period_start, area_code, edition_no, string_agg(format, ',' order by format),
                   min(data_as_of), min(checkpoint_outcome), bool_or(provisional), min(published_at)
            from ops.scorecard_editions
            where %(year)s::int is null or extract(year from period_start) = %(year)s::int
            group by 1, 2, 3, 4 order by 2, 1, 3, 4
            """, {"year": year}).fetchall()
    for ed, start, area, no, formats, as_of, outcome, provisional, published in rows:
        click.echo(f"{ed:<10}{start}  {area:<4} v{no:<3}{formats:<14}as of {as_of}  {outcome:<21}"
                   f"{'provisional' if provisional else 'final':<12}{published:%Y-%m-%d %H:%M}")
    if not rows:
        click.echo("no edition published yet")
