"""``pipeline-hub`` commands: great Expectations suites of the topics: ``pipeline-hub quality export``."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline_hub.cli.app import app, split

quality_app = typer.Typer(no_args_is_help=True, help="Great Expectations suites of the topics (include/quality/).")
app.add_typer(quality_app, name="quality")


@quality_app.command("export")
def quality_export(
    topics: Annotated[str | None, typer.Option(help="comma-separated topics (default: all)")] = None,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 if a suite file is stale")] = False,
) -> None:
    """Regenerate include/quality/<topic>.json from metadata.yaml and the output schema (hand-written
    expectations in the file are kept)."""
    from pipeline_hub.quality.suites import stale_suites, write_suites

    if check:
        stale = stale_suites(split(topics))
        for name in stale:
            typer.echo(f"stale: include/quality/{name}.json (run `pipeline-hub quality export`)", err=True)
        raise typer.Exit(1 if stale else 0)
    for path in write_suites(split(topics)):
        typer.echo(f"wrote {path}")
