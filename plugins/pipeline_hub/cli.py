"""``pipeline-hub``: run the pipeline in-process, query the sanitized zone, manage local services."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

# Tracebacks never show local variables: they can hold record text or PII.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
services_app = typer.Typer(no_args_is_help=True, help="Embedded local services: SeaweedFS (S3) and llama.cpp.")
app.add_typer(services_app, name="services")


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command()
def run(
    input: Annotated[
        str,
        typer.Option("--input", help="raw-zone root: <source>/<ds>/<files> (path or s3://conn@bucket/prefix)"),
    ],
    output: Annotated[str, typer.Option("--output", help="sanitized root receiving sanitized_data/ and quarantine/")],
    topics: Annotated[str | None, typer.Option(help="comma-separated topics (default: all)")] = None,
    ds: Annotated[str, typer.Option(help="partition date YYYY-MM-DD")] = date.today().isoformat(),
    source: Annotated[str | None, typer.Option(help="only topics reading this source")] = None,
    row_limit: Annotated[int | None, typer.Option(help="read at most N records per source")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="cap on the run's LLM spend in USD")] = None,
    conn_id: Annotated[str, typer.Option(help="Airflow connection of the LLM")] = "llm_default",
    chunk_size: Annotated[int | None, typer.Option(help="records per chunk")] = None,
) -> None:
    """Run discover → hash → chunk → prompt → scrub → validate → publish without Airflow."""
    from pipeline_hub.pipeline import run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    result = run_pipeline(
        raw_root=input,
        output_root=output,
        ds=ds,
        topics=_split(topics),
        source=source,
        row_limit=row_limit,
        budget_usd=budget_usd,
        llm_conn_id=conn_id,
        chunk_size=chunk_size,
    )
    typer.echo(
        json.dumps(
            {
                "run_id": result.run_id,
                "ds": result.ds,
                "published": result.published,
                "skipped": result.skipped,
                "failed": result.failed,
                "duration_s": result.duration_s,
            },
            indent=2,
        )
    )
    if result.failed:
        raise typer.Exit(1)


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
    from pipeline_hub.config import Settings
    from pipeline_hub.query import run_query

    columns, rows = run_query(root or Settings.from_env().sanitized_root, sql)
    if json_out:
        typer.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2))
        return
    from tabulate import tabulate

    typer.echo(tabulate(rows, headers=columns))


@app.command()
def seed(
    ds: Annotated[str, typer.Option(help="partition date YYYY-MM-DD to upload the sample under")],
    raw: Annotated[str | None, typer.Option(help="raw-zone root (default: PIPELINE_HUB_RAW_URI)")] = None,
    sample_dir: Annotated[Path | None, typer.Option(help="sample folder (default: include/sample_data)")] = None,
) -> None:
    """Upload the bundled real sample batch to <raw>/<source>/<ds>/ (same bytes every time)."""
    from pipeline_hub import storage
    from pipeline_hub.config import Settings, include_dir
    from pipeline_hub.readers import detect_format

    root = raw or Settings.from_env().raw_root
    sample = sample_dir or include_dir() / "sample_data"
    for src in sorted(p for p in sample.iterdir() if p.is_dir()):
        for f in sorted(src.iterdir()):
            if f.is_file() and detect_format(f.name)[0]:
                target = storage.join(root, src.name, ds, f.name)
                storage.write_bytes_atomic(target, f.read_bytes())
                typer.echo(f"seeded {storage.public_uri(target)}")


@app.command()
def report(
    ds: Annotated[str, typer.Option(help="partition date YYYY-MM-DD")],
    root: Annotated[str | None, typer.Option(help="sanitized root (default: PIPELINE_HUB_SANITIZED_URI)")] = None,
) -> None:
    """Print per topic what is published for ``ds`` (counts, tokens, duration) and a DuckDB sample query."""
    from pipeline_hub.config import Settings
    from pipeline_hub.reporting import render_report

    typer.echo(render_report(root or Settings.from_env().sanitized_root, ds))


@services_app.command("up")
def services_up(
    only: Annotated[str | None, typer.Option(help="comma-separated subset: s3,llm")] = None,
) -> None:
    """Start the embedded services not configured elsewhere; write .local/env.sh."""
    from pipeline_hub import services

    try:
        result = services.up(services=tuple(_split(only) or ("s3", "llm")))
    except services.ServiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for name, info in result["services"].items():
        typer.echo(f"{name:4} {info['state']:16} {info.get('endpoint') or ''}  {info.get('message') or ''}".rstrip())
    typer.echo(f"environment: source {result['env_file']}")


@services_app.command("down")
def services_down(only: Annotated[str | None, typer.Option(help="comma-separated subset")] = None) -> None:
    """Stop the embedded services (SIGTERM, then SIGKILL after 10 s)."""
    from pipeline_hub import services

    for name, state in services.down(services=_split(only)).items():
        typer.echo(f"{name:4} {state}")


@services_app.command("status")
def services_status() -> None:
    """Show each embedded service: running or stopped, pid, endpoint, log file."""
    from pipeline_hub import services

    for st in services.status():
        typer.echo(str(st))


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


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
    from pipeline_hub.pii_config import PiiConfigError
    from pipeline_hub.pseudonym import MissingKeyError
    from pipeline_hub.scrub_file import ScrubFileError, scrub_file

    if policy not in ("operators", "redact", "pseudonymize"):
        raise typer.BadParameter("must be operators, redact or pseudonymize", param_hint="--policy")
    try:
        result = scrub_file(input, output, _split(columns), None if policy == "operators" else policy)
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
    from pipeline_hub.pii_eval import evaluate, format_report, missed_targets

    report = evaluate(path=data)
    missed = missed_targets(report)
    if json_out:
        typer.echo(json.dumps({"entities": report, "missed_targets": missed}, indent=2))
    else:
        typer.echo(format_report(report))
        typer.echo("all recall targets met" if not missed else "below target: " + "; ".join(missed))
    if missed:
        raise typer.Exit(1)
