"""``pipeline-hub`` commands: run the pipeline in-process and seed the raw zone with the bundled sample."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from pipeline_hub.cli.app import DS_HELP, app, resolve_ds, split


@app.command()
def run(
    input: Annotated[
        str,
        typer.Option("--input", help="raw-zone root: <source>/<ds>/<files> (path or s3://conn@bucket/prefix)"),
    ],
    output: Annotated[str, typer.Option("--output", help="sanitized root receiving sanitized_data/ and quarantine/")],
    topics: Annotated[str | None, typer.Option(help="comma-separated topics (default: all)")] = None,
    ds: Annotated[str | None, typer.Option(help=DS_HELP)] = None,
    source: Annotated[str | None, typer.Option(help="only topics reading this source")] = None,
    row_limit: Annotated[int | None, typer.Option(help="read at most N records per source")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="cap on the run's LLM spend in USD")] = None,
    conn_id: Annotated[str, typer.Option(help="Airflow connection of the LLM")] = "llm_default",
    chunk_size: Annotated[int | None, typer.Option(help="records per chunk")] = None,
    staging: Annotated[
        str | None,
        typer.Option(help="staging root for raw record text (default: <state dir>/staging, PIPELINE_HUB_STATE_DIR)"),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", help="pin a prompt label for a topic: topic=label (repeatable; default prod, dev refused)"
        ),
    ] = None,
) -> None:
    """Run discover → hash → chunk → prompt → scrub → validate → publish without Airflow.

    Exit codes: 0 every requested topic published or was already published; 1 a topic failed its
    quality gate (its records are quarantined, the others published); 2 invalid options;
    3 no_input: a requested source had no object to read under <input>/<source>/<ds>/ (one line on
    stderr names each prefix; the other sources still ran and published); 4 the LLM provider failed
    (``error: …`` naming the connection, see README "Errors and exit codes"); 2 also for an unknown
    S3 connection in a URI (``error: unknown connection …``, never anonymous access).

    ``--ds`` defaults to yesterday's date in UTC, taken when the command runs. Progress of the prompt
    stage: a bar per topic on a terminal (stderr), else a log line every PIPELINE_HUB_PROGRESS_INTERVAL_S
    seconds (records done/total, rate, ETA, quarantined, calls in flight).

    ``--label topic=label`` (repeatable) runs that topic at the version its named label points to; an
    unknown topic or label exits 2 with one line naming the known labels, before any LLM call.
    """
    from pipeline_hub.stages.runner import run_pipeline

    ds = resolve_ds(ds)
    prompt_labels = parse_labels(label)
    with _progress_display():
        for noisy in ("httpx", "httpx2", "great_expectations"):
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
            prompt_labels=prompt_labels,
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


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """``["topic=label", …]`` (``--label``) → ``{topic: label}``; a malformed or repeated topic exits 2."""
    labels: dict[str, str] = {}
    for value in values or []:
        topic, sep, name = (part.strip() for part in value.partition("="))
        if not sep or not topic or not name or topic in labels:
            why = "is given twice" if topic in labels else "must be topic=label"
            typer.echo(f"error: --label {value!r} {why}, e.g. --label industry_classification=canary", err=True)
            raise typer.Exit(2)
        labels[topic] = name
    return labels


@app.command()
def seed(
    ds: Annotated[str | None, typer.Option(help=DS_HELP)] = None,
    raw: Annotated[str | None, typer.Option(help="raw-zone root (default: PIPELINE_HUB_RAW_URI)")] = None,
    sample_dir: Annotated[Path | None, typer.Option(help="sample folder (default: include/sample_data)")] = None,
) -> None:
    """Upload the bundled real sample batch to <raw>/<source>/<ds>/ (same bytes every time).

    ``--ds`` defaults to yesterday's date in UTC (the default of ``run`` too).
    """
    from pipeline_hub import storage
    from pipeline_hub.config import Settings, include_dir
    from pipeline_hub.readers import detect_format

    ds = resolve_ds(ds)
    root = raw or Settings.from_env().raw_root
    storage.check_connection(root)
    sample = sample_dir or include_dir() / "sample_data"
    for src in sorted(p for p in sample.iterdir() if p.is_dir()):
        for f in sorted(src.iterdir()):
            if f.is_file() and detect_format(f.name)[0]:
                target = storage.join(root, src.name, ds, f.name)
                storage.write_bytes_atomic(target, f.read_bytes())
                typer.echo(f"seeded {storage.public_uri(target)}")


@contextlib.contextmanager
def _progress_display() -> Iterator[None]:
    """Progress of ``run``: a rich bar per topic when stderr is a terminal, else plain log lines.

    On a terminal the log lines are printed above the bars (the handlers writing to stdout/stderr write
    through rich while the bars show) and the periodic progress lines are left out (the bars show the
    same counts); otherwise every log line, progress included, is plain text.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # no-op under Airflow's
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pipeline_hub.stages.progress import Snapshot, listening

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} rec/s"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[quarantined]} quarantined, {task.fields[in_flight]} in flight"),
        console=Console(stderr=True),
    )
    tasks: dict[str, int] = {}
    done: dict[tuple[str, int | None], tuple[int, int]] = {}  # (topic, chunk) -> (done, quarantined)

    def show(snap: Snapshot) -> None:
        if snap.topic not in tasks:
            tasks[snap.topic] = bar.add_task(
                snap.topic, total=snap.topic_total or snap.total, rate=0.0, quarantined=0, in_flight=0
            )
        done[(snap.topic, snap.chunk_index)] = (snap.done, snap.quarantined)
        mine = [v for k, v in done.items() if k[0] == snap.topic]
        bar.update(
            tasks[snap.topic],
            completed=sum(d for d, _ in mine),
            rate=snap.rate,
            quarantined=sum(q for _, q in mine),
            in_flight=snap.in_flight,
        )

    quiet = logging.getLogger("pipeline_hub.stages.progress")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    streams = {id(sys.stdout): "stdout", id(sys.stderr): "stderr"}
    moved: list[tuple[logging.StreamHandler, object]] = []
    try:
        with bar, listening(show):
            # Inside the live display sys.stdout/sys.stderr print above the bars: point the handlers there.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and id(handler.stream) in streams:
                    moved.append((handler, handler.setStream(getattr(sys, streams[id(handler.stream)]))))
            try:
                yield
            finally:
                for handler, stream in moved:
                    handler.setStream(stream)
    finally:
        quiet.setLevel(level)
