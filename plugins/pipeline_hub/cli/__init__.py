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


def _add_plugin_groups() -> None:
    """Command groups other distributions register (entry-point group ``pipeline_hub.cli``).

    The dev-services package (``infra/devservices``) registers ``services``; the runtime has none.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="pipeline_hub.cli"):
        app.add_typer(ep.load(), name=ep.name)


_add_plugin_groups()


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
    staging: Annotated[
        str | None,
        typer.Option(help="staging root for raw record text (default: <state dir>/staging, PIPELINE_HUB_STATE_DIR)"),
    ] = None,
) -> None:
    """Run discover → hash → chunk → prompt → scrub → validate → publish without Airflow.

    Exit codes: 0 every requested topic published or was already published; 1 a topic failed its
    quality gate (its records are quarantined, the others published); 2 invalid options;
    3 no_input: a requested source had no object to read under <input>/<source>/<ds>/ (one line on
    stderr names each prefix; the other sources still ran and published).
    """
    from pipeline_hub.stages.runner import run_pipeline

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
    """Print per topic what is published for ``ds`` (counts, tokens, duration) and a DuckDB sample query.

    Exits 1 with one line naming the sanitized root and ``ds`` when nothing is published for ``ds``
    (after the table, when every topic was quarantined), 2 when ``ds`` is not ``YYYY-MM-DD``.
    """
    from pipeline_hub.analytics.reporting import load_manifests, nothing_published, render_report
    from pipeline_hub.config import Settings
    from pipeline_hub.stages.plan import DS_PATTERN

    if not DS_PATTERN.match(ds):
        typer.echo(f"--ds must be YYYY-MM-DD, got {ds!r}", err=True)
        raise typer.Exit(2)
    sanitized_root = root or Settings.from_env().sanitized_root
    manifests = load_manifests(sanitized_root, ds)
    if manifests:
        typer.echo(render_report(sanitized_root, ds))
    missing = nothing_published(sanitized_root, ds, manifests)
    if missing:
        typer.echo(missing, err=True)
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    """Console entry point ``pipeline-hub``: run the Typer app and exit with its status."""
    sys.exit(app())


# --- Analysts, GDPR erasure and retention (issue 4) -------------------------------------------------


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


# --- Quality gates and lineage -------------------------------------------------------------------
quality_app = typer.Typer(no_args_is_help=True, help="Great Expectations suites of the topics (include/quality/).")
app.add_typer(quality_app, name="quality")


@quality_app.command("export")
def quality_export(
    topics: Annotated[str | None, typer.Option(help="comma-separated topics (default: all)")] = None,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 if a suite file is stale")] = False,
) -> None:
    """Regenerate include/quality/<topic>.json from metadata.yaml and the output schema (hand-written
    expectations in the file are kept)."""
    from pipeline_hub.quality.suites import stale_suites, write_suites

    if check:
        stale = stale_suites(_split(topics))
        for name in stale:
            typer.echo(f"stale: include/quality/{name}.json (run `pipeline-hub quality export`)", err=True)
        raise typer.Exit(1 if stale else 0)
    for path in write_suites(_split(topics)):
        typer.echo(f"wrote {path}")


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


# --- Prompt lifecycle: validate, score, promote, roll back (issue 5) -------------------------------


@app.command()
def validate(
    directory: Annotated[
        Path | None, typer.Argument(help="prompts directory holding <topic>/metadata.yaml (default: include/prompts)")
    ] = None,
    topics: Annotated[str | None, typer.Option(help="comma-separated topics (default: all)")] = None,
) -> None:
    """Check the prompt registry: metadata schema, templates, variables, output schemas, examples, pointers.

    Prints one ``path:line: message`` per problem and exits 1 when there is any.
    """
    from pipeline_hub.lifecycle.validation import validate_registry

    try:
        problems = validate_registry(directory, _split(topics))
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        typer.echo(f"{len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo("prompt registry is valid")


@app.command()
def score(
    topic: Annotated[str, typer.Option(help="topic to score")],
    version: Annotated[str | None, typer.Option(help="version to score (default: the dev pointer)")] = None,
    conn: Annotated[str, typer.Option("--conn", help="Airflow connection of the model")] = "llm_default",
    limit: Annotated[int | None, typer.Option(help="score only the first N examples (not valid for the gate)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the score as JSON")] = False,
    artifacts: Annotated[
        str | None, typer.Option(help="artifacts root (default: PIPELINE_HUB_ARTIFACTS_URI or .local/)")
    ] = None,
) -> None:
    """Run a prompt version over its labelled examples; write reports/<topic>/<version>/score.json|md|png."""
    from pipeline_hub.lifecycle.reports import render_markdown
    from pipeline_hub.lifecycle.scoring import ScoreError, score_version
    from pipeline_hub.prompts.registry import RegistryError

    try:
        result = score_version(topic, version=version, conn_id=conn, limit=limit, artifacts=artifacts)
    except (RegistryError, ScoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    typer.echo(render_markdown(result, plot_name=None))
    typer.echo("\n".join(f"{kind}: {uri}" for kind, uri in result["artifacts"].items()))


@app.command()
def promote(
    topic: Annotated[str, typer.Option(help="topic whose prod pointer moves")],
    version: Annotated[str, typer.Option(help="version to make prod (must pass the topic's gate)")],
    by: Annotated[str | None, typer.Option(help="who promotes (default: PIPELINE_HUB_ACTOR or the login name)")] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(help="artifacts root holding the scores (default: PIPELINE_HUB_ARTIFACTS_URI or .local/)"),
    ] = None,
) -> None:
    """Move prod to VERSION if its latest score passes the gate in metadata.yaml; audit + changelog."""
    from pipeline_hub.lifecycle.promotion import GateRefused, PromotionError
    from pipeline_hub.lifecycle.promotion import promote as do_promote

    try:
        entry = do_promote(topic, version, artifacts=artifacts, actor=by)
    except GateRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except PromotionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(entry, indent=2, default=str))


@app.command()
def rollback(
    topic: Annotated[str, typer.Option(help="topic whose prod pointer goes back")],
    by: Annotated[
        str | None, typer.Option(help="who rolls back (default: PIPELINE_HUB_ACTOR or the login name)")
    ] = None,
    artifacts: Annotated[str | None, typer.Option(help="artifacts root holding the scores")] = None,
) -> None:
    """Move prod back to the previously promoted version (from the audit log); audit + changelog."""
    from pipeline_hub.lifecycle.promotion import PromotionError
    from pipeline_hub.lifecycle.promotion import rollback as do_rollback

    try:
        entry = do_rollback(topic, artifacts=artifacts, actor=by)
    except PromotionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(entry, indent=2, default=str))


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
