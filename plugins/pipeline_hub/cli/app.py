"""The ``pipeline-hub`` Typer application and its global options; the command modules add to :data:`app`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

HELP = "``pipeline-hub``: run the pipeline in-process, query the sanitized zone, manage prompts, PII and governance."

# Tracebacks never show local variables: they can hold record text or PII.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP, pretty_exceptions_show_locals=False)


class State:
    """Global options of the current invocation (set by :func:`options`)."""

    debug = False


@app.callback()
def options(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="on an error show the traceback, not one line (also PIPELINE_HUB_DEBUG=1)"),
    ] = False,
) -> None:
    """Global options, given before the command: ``pipeline-hub --debug run …``."""
    State.debug = debug


def split(value: str | None) -> list[str] | None:
    """``"a, b,"`` → ``["a", "b"]``; None or empty → None (a comma-separated option)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


DS_HELP = "partition date YYYY-MM-DD (default: yesterday's date in UTC, taken when the command runs)"


def yesterday_utc() -> str:
    """Yesterday's date in UTC as ``YYYY-MM-DD``, computed at each call (the default of every ``--ds``).

    Typer evaluates option defaults once, at import; a ``--ds`` option therefore defaults to None and the
    command calls :func:`resolve_ds`, so a long-lived process (a worker, a shell) never uses a stale date.
    """
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def resolve_ds(ds: str | None) -> str:
    """The ``--ds`` value: ``ds`` when it is a calendar date ``YYYY-MM-DD``, yesterday (UTC) when None.

    Anything else prints one line naming ``--ds`` and the expected form on stderr and exits 2
    (``typer.Exit``), before any storage or SQL sees the value.
    """
    if ds is None:
        return yesterday_utc()
    from pipeline_hub.stages.plan import DS_PATTERN

    try:
        if DS_PATTERN.match(ds) and date.fromisoformat(ds):
            return ds
    except ValueError:
        pass
    typer.echo(f"error: --ds must be a date YYYY-MM-DD such as {yesterday_utc()}, got {ds!r}", err=True)
    raise typer.Exit(2)
