"""``pipeline-hub`` commands: prompt lifecycle: validate the registry, score, promote, roll back (issue 5),
and named labels (issue 14): ``promote --label``, ``rollback --label``, ``label list|delete``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline_hub.cli.app import app, split


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
        problems = validate_registry(directory, split(topics))
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
    with_feedback: Annotated[
        bool,
        typer.Option(
            "--with-feedback",
            help="add analysts' feedback per prompt version (corrections, agreement rate; not the gate)",
        ),
    ] = False,
    feedback_root: Annotated[
        str | None, typer.Option(help="sanitized root holding feedback/ (default: PIPELINE_HUB_SANITIZED_URI)")
    ] = None,
) -> None:
    """Run a prompt version over its labelled examples; write reports/<topic>/<version>/score.json|md|png."""
    from pipeline_hub.config import Settings
    from pipeline_hub.lifecycle.reports import render_markdown
    from pipeline_hub.lifecycle.scoring import ScoreError, score_version
    from pipeline_hub.prompts.registry import RegistryError

    try:
        result = score_version(
            topic,
            version=version,
            conn_id=conn,
            limit=limit,
            artifacts=artifacts,
            feedback_root=(feedback_root or Settings.from_env().sanitized_root) if with_feedback else None,
        )
    except (RegistryError, ScoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    typer.echo(render_markdown(result, plot_name=None))
    typer.echo("\n".join(f"{kind}: {uri}" for kind, uri in result["artifacts"].items()))


LabelOption = Annotated[
    str, typer.Option(help="label to move: prod or a named label (created by its first promotion); not dev")
]
ByOption = Annotated[str | None, typer.Option(help="who acts (default: PIPELINE_HUB_ACTOR or the login name)")]


@app.command()
def calibrate(
    topic: Annotated[str, typer.Option(help="topic whose cascade to calibrate")],
    version: Annotated[
        str | None, typer.Option(help="version with the cascade block (default: the dev pointer)")
    ] = None,
    sample: Annotated[
        Path | None,
        typer.Option(help="labelled JSONL {id, input, expected} (default: the topic's examples/*.jsonl)"),
    ] = None,
    conn_id: Annotated[
        str,
        typer.Option(
            "--conn-id",
            "--conn",
            help="Airflow connection of the oracle model (a model: proxy only; the topic's routes apply on top)",
        ),
    ] = "llm_default",
) -> None:
    """Learn the cascade thresholds (LOTUS) on a labelled sample; write them as a new version, move dev to it.

    A ``model:`` proxy is asked, with the oracle, over ``--conn-id`` (its answers agreeing with the
    oracle's are the positives; only ``upper`` is learned). prod and the named labels stay: score and
    promote the new version like a prompt change. Prints what was learned as JSON; a version without a
    cascade block, or an undefined connection, exits 2 with one line naming the file or connection.
    """
    from pipeline_hub.lifecycle.calibration import calibrate_topic

    typer.echo(json.dumps(calibrate_topic(topic, version, sample, conn_id=conn_id), indent=2, default=str))


def _print_or_exit(action, *args, **kwargs) -> None:
    """Run a promotion ``action``; print its audit entry as JSON, or one line and exit 1 (gate) / 2."""
    from pipeline_hub.lifecycle.promotion import GateRefused, PromotionError

    try:
        entry = action(*args, **kwargs)
    except GateRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except PromotionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(entry, indent=2, default=str))


@app.command()
def promote(
    topic: Annotated[str, typer.Option(help="topic whose label moves")],
    version: Annotated[str, typer.Option(help="version to point the label at (must pass the topic's gate)")],
    label: LabelOption = "prod",
    by: ByOption = None,
    artifacts: Annotated[
        str | None,
        typer.Option(help="artifacts root holding the scores (default: PIPELINE_HUB_ARTIFACTS_URI or .local/)"),
    ] = None,
) -> None:
    """Move LABEL (default prod) to VERSION if its latest score passes the gate in metadata.yaml; audit + changelog."""
    from pipeline_hub.lifecycle.promotion import promote as do_promote

    _print_or_exit(do_promote, topic, version, label=label, artifacts=artifacts, actor=by)


@app.command()
def rollback(
    topic: Annotated[str, typer.Option(help="topic whose label goes back")],
    label: LabelOption = "prod",
    by: ByOption = None,
    artifacts: Annotated[str | None, typer.Option(help="artifacts root holding the scores")] = None,
) -> None:
    """Move LABEL (default prod) back to its previously promoted version (from the audit log); audit + changelog."""
    from pipeline_hub.lifecycle.promotion import rollback as do_rollback

    _print_or_exit(do_rollback, topic, label=label, artifacts=artifacts, actor=by)


label_app = typer.Typer(no_args_is_help=True, help="Named prompt labels of a topic (labels: in metadata.yaml).")
app.add_typer(label_app, name="label")


@label_app.command("list")
def label_list(topic: Annotated[str, typer.Option(help="topic whose labels to show")]) -> None:
    """Print the topic's labels as JSON: dev, prod and the named labels -> version."""
    from pipeline_hub.prompts.registry import RegistryError, load_topic

    try:
        typer.echo(json.dumps(load_topic(topic).pointers, indent=2))
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@label_app.command("delete")
def label_delete(
    topic: Annotated[str, typer.Option(help="topic whose label is removed")],
    label: Annotated[str, typer.Option(help="named label to remove (not dev or prod)")],
    by: ByOption = None,
) -> None:
    """Remove a named label from metadata.yaml; audit + changelog. Runs pinning it then fail at plan time."""
    from pipeline_hub.lifecycle.promotion import delete_label

    _print_or_exit(delete_label, topic, label, actor=by)
