"""The ``pipeline-hub`` Typer application and its global options; the command modules add to :data:`app`."""

from __future__ import annotations

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
