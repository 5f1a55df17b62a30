"""``pipeline-hub feedback add|list``: analysts' corrections of published answers (issue 14, item 6).

Storage and checks are :mod:`pipeline_hub.prompts.feedback`; the note is scrubbed with the
pipeline's Presidio configuration (:func:`pipeline_hub.governance.feedback_notes.note_scrubber`, shared
with the Prompt Hub form) before it is stored. Errors (unknown record, invalid label) are one line and exit 2.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline_hub.cli.app import app

feedback_app = typer.Typer(
    no_args_is_help=True, help="Analysts' feedback: mark a published answer wrong and give the right label."
)
app.add_typer(feedback_app, name="feedback")

OutputOption = Annotated[
    str | None, typer.Option("--output", help="sanitized root (default: PIPELINE_HUB_SANITIZED_URI)")
]


def _root(output: str | None) -> str:
    from pipeline_hub.config import Settings

    return output or Settings.from_env().sanitized_root


@feedback_app.command("add")
def add(
    topic: Annotated[str, typer.Option(help="topic of the published answer")],
    record_id: Annotated[str, typer.Option("--record-id", help="the published record_id (as in the topic's view)")],
    label: Annotated[str, typer.Option(help="the right label (a value of the topic's label field)")],
    note: Annotated[
        str | None, typer.Option(help="free text; scrubbed (PII pseudonymised) before it is stored")
    ] = None,
    ds: Annotated[
        str | None, typer.Option(help="partition of the answer (default: the latest holding the record)")
    ] = None,
    output: OutputOption = None,
    author: Annotated[str | None, typer.Option(help="who (default: PIPELINE_HUB_ACTOR or the login name)")] = None,
) -> None:
    """Record that a published answer is wrong and what the right label is; prints the stored row as JSON.

    A note naming a data subject erased earlier (their pseudonym after scrubbing) is refused, as the
    publish stage keeps erased subjects out of new partitions.
    """
    from pipeline_hub.governance.feedback_notes import note_scrubber
    from pipeline_hub.prompts.feedback import add_feedback

    root = _root(output)
    with note_scrubber(root) as scrub:
        row = add_feedback(root, topic, record_id, label, scrub=scrub, note=note, ds=ds, author=author)
    typer.echo(json.dumps(row, indent=2, default=str))


@feedback_app.command("list")
def list_(
    topic: Annotated[str, typer.Option(help="topic whose feedback to list")],
    ds: Annotated[str | None, typer.Option(help="only feedback on this partition")] = None,
    output: OutputOption = None,
) -> None:
    """Print the topic's feedback rows (oldest first) and the per-version agreement, as JSON."""
    from pipeline_hub.prompts.feedback import agreement, read_feedback

    rows = read_feedback(_root(output), topic, ds)
    typer.echo(json.dumps({"topic": topic, "rows": rows, "by_version": agreement(rows)}, indent=2, default=str))
