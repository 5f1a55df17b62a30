"""``pipeline-hub`` commands: pII: scrub a file with the pipeline's Presidio configuration; evaluate the scrubber."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline_hub.cli.app import app, split


@app.command()
def scrub(
    input: Annotated[Path, typer.Option("--input", help="JSONL/NDJSON or CSV (optionally .gz), or Parquet file")],
    output: Annotated[Path, typer.Option("--output", help="where the scrubbed copy goes (same format)")],
    columns: Annotated[str | None, typer.Option(help="comma-separated columns to scrub (default: all text)")] = None,
    policy: Annotated[
        str,
        typer.Option(help="operators: presidio.yaml's (pseudonyms need the HMAC key); redact: <ENTITY>; pseudonymize"),
    ] = "operators",
) -> None:
    """Scrub PII from a file with the pipeline's Presidio configuration; prints counts per entity."""
    from pipeline_hub.pii.config import PiiConfigError
    from pipeline_hub.pii.pseudonym import MissingKeyError
    from pipeline_hub.pii.scrub_file import ScrubFileError, scrub_file

    if policy not in ("operators", "redact", "pseudonymize"):
        raise typer.BadParameter("must be operators, redact or pseudonymize", param_hint="--policy")
    try:
        result = scrub_file(input, output, split(columns), None if policy == "operators" else policy)
    except (ScrubFileError, PiiConfigError, MissingKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"output": str(output), **result}, indent=2))


@app.command("pii-eval")
def pii_eval(
    data: Annotated[Path | None, typer.Option(help="labelled set (default: tests/data/pii_eval.jsonl)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Per-entity precision and recall of the scrubber on the labelled PII set; exit 1 below a recall target."""
    from pipeline_hub.pii.evaluate import evaluate, format_report, missed_targets

    report = evaluate(path=data)
    missed = missed_targets(report)
    if json_out:
        typer.echo(json.dumps({"entities": report, "missed_targets": missed}, indent=2))
    else:
        typer.echo(format_report(report))
        typer.echo("all recall targets met" if not missed else "below target: " + "; ".join(missed))
    if missed:
        raise typer.Exit(1)
