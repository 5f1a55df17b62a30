"""``pipeline-hub services up|down|status|env``: the dev services from the command line.

A typer app registered as entry point ``services`` in group ``pipeline_hub.cli`` (the runtime CLI adds
each command group found there); also runnable alone: ``python -m pipeline_hub_dev``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import manager
from .errors import ServiceError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Embedded local services: SeaweedFS (S3) and llama.cpp.",
    pretty_exceptions_show_locals=False,
)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _fail(exc: Exception) -> typer.Exit:
    """Print ``error: <message>`` on stderr; the caller raises the returned exit code 1."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command("up")
def up(
    only: Annotated[str | None, typer.Option(help="comma-separated subset: s3,llm")] = None,
) -> None:
    """Start the embedded services not configured elsewhere; write .local/env.sh."""
    try:
        result = manager.up(services=tuple(_split(only) or ("s3", "llm")))
    except (ServiceError, ValueError) as exc:
        raise _fail(exc) from None
    for name, info in result["services"].items():
        typer.echo(f"{name:4} {info['state']:16} {info.get('endpoint') or ''}  {info.get('message') or ''}".rstrip())
    typer.echo(f"environment: source {result['env_file']}")


@app.command("down")
def down(only: Annotated[str | None, typer.Option(help="comma-separated subset")] = None) -> None:
    """Stop the embedded services (SIGTERM, then SIGKILL after 10 s)."""
    try:
        outcomes = manager.down(services=_split(only))
    except (ServiceError, ValueError) as exc:
        raise _fail(exc) from None
    for name, state in outcomes.items():
        typer.echo(f"{name:4} {state}")


@app.command("status")
def status() -> None:
    """Show each embedded service: running or stopped, pid, endpoint, log file."""
    try:
        statuses = manager.status()
    except ServiceError as exc:
        raise _fail(exc) from None
    for st in statuses:
        typer.echo(str(st))


@app.command("env")
def env() -> None:
    """Rewrite .local/env.sh for the services as they are now (starts nothing); print how to source it."""
    try:
        path = manager.write_env_file()
    except ServiceError as exc:
        raise _fail(exc) from None
    typer.echo(f"environment: source {path}")


if __name__ == "__main__":  # python -m pipeline_hub_dev.cli
    app(prog_name="pipeline-hub services")
