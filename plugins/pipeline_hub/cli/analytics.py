"""``pipeline-hub`` commands: analysts: DuckDB queries, the per-ds report, Athena DDL, OpenLineage events."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline_hub.cli.app import DS_HELP, app, resolve_ds


@app.command()
def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over the views industry_classification, use_case_extraction, "
            "contact_extraction, company_matching, quarantine"
        ),
    ],
    root: Annotated[str | None, typer.Option(help="sanitized root (default: PIPELINE_HUB_SANITIZED_URI)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON rows")] = False,
) -> None:
    """Query the sanitized zone with DuckDB."""
    from pipeline_hub.analytics.query import run_query
    from pipeline_hub.config import Settings

    columns, rows = run_query(root or Settings.from_env().sanitized_root, sql)
    if json_out:
        typer.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2))
        return
    from tabulate import tabulate

    typer.echo(tabulate(rows, headers=columns))


@app.command()
def report(
    ds: Annotated[str | None, typer.Option(help=DS_HELP)] = None,
    root: Annotated[str | None, typer.Option(help="sanitized root (default: PIPELINE_HUB_SANITIZED_URI)")] = None,
    html: Annotated[
        str | None,
        typer.Option("--html", help="also write a self-contained HTML report with plots to FILE (path or URI)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the per-topic figures as JSON instead")] = False,
) -> None:
    """Print per topic what is published for ``ds`` (counts, LLM calls, records per cascade route proxy /
    oracle, calls and cost saved, tokens, duration) and a DuckDB sample query.

    ``--ds`` defaults to yesterday's date in UTC, taken when the command runs. ``--json`` prints instead
    ``{"ds", "root", "topics": [...], "drift"}`` (the rows of
    :class:`pipeline_hub.analytics.report_html.ReportData`, figures and names only). ``--html FILE`` also
    writes one HTML page with plots (counts, quarantine reasons, cost, latency p50/p95 per topic, records
    per cascade route when a proxy answered, and drift when ``metrics/drift/`` exists): figures and names
    only, never record text. Exits 1 with one line naming the sanitized root and ``ds`` when nothing is
    published for ``ds`` (after the table and the page, when every topic was quarantined), 2 when ``ds``
    is not ``YYYY-MM-DD``.
    """
    from pipeline_hub import storage
    from pipeline_hub.analytics.reporting import load_manifests, nothing_published, render_report
    from pipeline_hub.config import Settings

    ds = resolve_ds(ds)
    sanitized_root = root or Settings.from_env().sanitized_root
    storage.check_connection(sanitized_root)
    manifests = load_manifests(sanitized_root, ds)
    if manifests and json_out:
        from dataclasses import asdict

        from pipeline_hub.analytics.report_html import collect

        typer.echo(json.dumps(asdict(collect(sanitized_root, ds)), default=str, indent=2))
    elif manifests:
        typer.echo(render_report(sanitized_root, ds))
    if manifests and html:
        from pipeline_hub.analytics.report_html import write_html_report

        write_html_report(sanitized_root, ds, html)
        typer.echo(f"wrote {html}", err=True)
    missing = nothing_published(sanitized_root, ds, manifests)
    if missing:
        typer.echo(missing, err=True)
        raise typer.Exit(1)


@app.command("athena-ddl")
def athena_ddl(
    database: Annotated[str, typer.Option(help="Glue database name")] = "pipeline_hub",
    location: Annotated[str, typer.Option(help="sanitized root as Athena sees it, e.g. s3://my-sanitized-bucket")] = (
        "s3://sanitized"
    ),
    write: Annotated[
        bool, typer.Option("--write", help="regenerate include/sql/athena_tables.sql (placeholders kept) instead")
    ] = False,
) -> None:
    """Print the Athena CREATE EXTERNAL TABLE statements for the sanitized zone (one per topic)."""
    from pipeline_hub.analytics import athena

    if write:
        athena.ddl_path().write_text(athena.render_all())
        typer.echo(f"wrote {athena.ddl_path()}")
        return
    typer.echo(athena.fill(athena.ddl_path().read_text(), database=database, location=location))


@app.command()
def lineage(
    events: Annotated[
        str, typer.Option(help="OpenLineage file-transport output: a directory or file prefix")
    ] = ".local/openlineage",
) -> None:
    """Print the datasets each OpenLineage job read and wrote (events of the file transport)."""
    from pipeline_hub.orchestration.lineage import describe_events, read_events

    for line in describe_events(read_events(events)):
        typer.echo(line)
