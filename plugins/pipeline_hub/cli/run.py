"""``pipeline-hub`` commands: run the pipeline in-process and seed the raw zone with the bundled sample."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from pipeline_hub.cli.app import app, split


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
    staging: Annotated[
        str | None,
        typer.Option(help="staging root for raw record text (default: <state dir>/staging, PIPELINE_HUB_STATE_DIR)"),
    ] = None,
) -> None:
    """Run discover → hash → chunk → prompt → scrub → validate → publish without Airflow.

    Exit codes: 0 every requested topic published or was already published; 1 a topic failed its
    quality gate (its records are quarantined, the others published); 2 invalid options;
    3 no_input: a requested source had no object to read under <input>/<source>/<ds>/ (one line on
    stderr names each prefix; the other sources still ran and published); 4 the LLM provider failed
    (``error: …`` naming the connection, see README "Errors and exit codes").
    """
    from pipeline_hub.stages.runner import run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    result = run_pipeline(
        raw_root=input,
        output_root=output,
        ds=ds,
        topics=split(topics),
        source=source,
        row_limit=row_limit,
        budget_usd=budget_usd,
        llm_conn_id=conn_id,
        chunk_size=chunk_size,
        staging_root=staging,
    )
    typer.echo(
        json.dumps(
            {
                "run_id": result.run_id,
                "ds": result.ds,
                "published": result.published,
                "skipped": result.skipped,
                "failed": result.failed,
                "no_input": result.no_input,
                "outcome": result.outcome,
                "duration_s": result.duration_s,
            },
            indent=2,
        )
    )
    if result.failed:
        raise typer.Exit(1)
    if result.no_input:
        from pipeline_hub.stages.hash import no_input_message

        typer.echo(no_input_message({"no_input": result.no_input, "ds": ds}), err=True)
        raise typer.Exit(3)


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
