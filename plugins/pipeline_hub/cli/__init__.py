"""``pipeline-hub``, the command line: :func:`main` runs :data:`app` and turns project errors into one line.

What lives here: :mod:`~pipeline_hub.cli.app` (the Typer ``app``, the global ``--debug``) and one module
per command group: :mod:`~pipeline_hub.cli.run` (run, seed), :mod:`~pipeline_hub.cli.analytics` (query,
report, athena-ddl, lineage), :mod:`~pipeline_hub.cli.prompts` (validate, score, promote, rollback, label),
:mod:`~pipeline_hub.cli.pii` (scrub, pii-eval), :mod:`~pipeline_hub.cli.governance` (erase, retention),
:mod:`~pipeline_hub.cli.feedback` (feedback add, list) and :mod:`~pipeline_hub.cli.quality` (quality export).
Further sub-commands come from installed distributions through the entry-point group ``pipeline_hub.cli``
(name = sub-command, value = a ``typer.Typer``): the dev services (``infra/devservices``) add ``services``
there; without them ``pipeline-hub services`` says how to install them and exits 2.

:mod:`~pipeline_hub.cli.drift`: ``drift`` (a topic's drift for one ``ds``).

Imports: the CLI may import anything below it; nothing in the package imports ``cli``.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from pipeline_hub.cli import (  # noqa: F401 - register commands
    analytics,
    drift,
    feedback,
    governance,
    pii,
    prompts,
    quality,
    run,
)
from pipeline_hub.cli.app import State, app
from pipeline_hub.exceptions import PipelineHubError

ENTRY_POINT_GROUP = "pipeline_hub.cli"
SERVICES_MISSING = "services: the dev services are not installed: pip install -e infra/devservices (make install does)"

__all__ = ["app", "main"]


def _services_missing() -> None:
    """The ``services`` stand-in when no distribution provides it: one line, exit 2."""
    typer.echo(SERVICES_MISSING, err=True)
    raise typer.Exit(2)


def register_plugins(target: typer.Typer = app) -> list[str]:
    """Add every ``pipeline_hub.cli`` entry point to ``target`` as a sub-command; returns their names.

    An entry point that fails to load is skipped with one line on stderr. When none is named ``services``
    a stand-in command says how to install the dev services.
    """
    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            sub = ep.load()
        except Exception as exc:  # a broken plugin must not break the CLI
            print(f"warning: CLI plugin {ep.name!r} ({ep.value}) failed to load: {exc}", file=sys.stderr)
            continue
        target.add_typer(sub, name=ep.name)
        names.append(ep.name)
    if "services" not in names:
        target.command(
            "services",
            help="Dev services (not installed).",
            add_help_option=False,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_services_missing)
    return names


register_plugins()


def _debug() -> bool:
    if State.debug:
        return True
    try:
        from pipeline_hub.config import get_settings

        return get_settings().debug
    except PipelineHubError:  # a bad setting is reported as the error itself
        return False


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and exit with its status.

    A :class:`~pipeline_hub.exceptions.PipelineHubError` prints ``error: <message>`` (one line) on stderr
    and exits with the error's ``exit_code``; with ``--debug`` or ``PIPELINE_HUB_DEBUG=1`` it is re-raised
    (the traceback shows). Other exceptions are bugs and always show their traceback.
    """
    command = typer.main.get_command(app)
    State.debug = False
    try:
        command.main(args=sys.argv[1:] if argv is None else argv, prog_name="pipeline-hub")
    except PipelineHubError as exc:
        if _debug():
            raise
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(exc.exit_code)
