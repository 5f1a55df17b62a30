"""``pipeline-hub`` commands: gDPR erasure and raw-zone retention (issue 4)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from pipeline_hub.cli.app import app


@app.command()
def erase(
    subject: Annotated[
        list[str],
        typer.Option(
            help="the subject's e-mail, phone or name; repeat for every variant of one person; "
            "'-' reads one value per line from stdin (keeps it out of shell history and ps)"
        ),
    ],
    root: Annotated[str | None, typer.Option(help="sanitized root (default: PIPELINE_HUB_SANITIZED_URI)")] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="entity kinds to pseudonymise as (default: guessed per value: PERSON, EMAIL_ADDRESS, …)"),
    ] = None,
    cache: Annotated[
        str | None, typer.Option(help="response cache to purge (default: PIPELINE_HUB_LLM_CACHE; 'off' to skip)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be removed, write nothing")] = False,
) -> None:
    """GDPR erasure: remove a data subject's rows from the sanitized zone, purge the response cache, audit it."""
    from pipeline_hub.config import Settings
    from pipeline_hub.governance.erasure import SubjectError, erase_subject
    from pipeline_hub.providers.cache import open_cache

    values = [line.strip() for line in sys.stdin if line.strip()] if subject == ["-"] else subject
    try:
        result = erase_subject(
            root or Settings.from_env().sanitized_root,
            values,
            kinds=kind or None,
            cache=False if cache == "off" else open_cache(cache),
            dry_run=dry_run,
        )
    except SubjectError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({**result.audit_record(), "audit": result.audit_uri}, indent=2))


@app.command()
def retention(
    days: Annotated[
        int | None, typer.Option(help="retention in days (default: PIPELINE_HUB_RAW_RETENTION_DAYS or 90)")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="delete the expired objects (default: list only)")] = False,
) -> None:
    """List (or delete) raw and staging objects older than the retention period; writes a report."""
    from pipeline_hub.governance.retention import run_retention

    typer.echo(json.dumps(run_retention(days=days, delete=delete), indent=2))
