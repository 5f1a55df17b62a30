"""Analysts' feedback on published answers: "this answer is wrong, the right label is L" (issue 14, item 6).

Storage, append-only, one Parquet object per write (S3 has no append; concurrent writers never
overwrite each other)::

    <sanitized root>/feedback/<topic>/<YYYYmmddTHHMMSSffffffZ>-<uuid>.parquet

one row each, columns :data:`SCHEMA`: ``record_id``, ``topic``, ``ds`` (the partition the answer was
published in), ``label`` (the analyst's), ``published_label`` (the answer at the time of the feedback,
so agreement stays computable after a rerun or an erasure rewrote the partition), ``note`` (free text,
**scrubbed** before it is stored), ``prompt_version``, ``model``, ``batch_hash`` (lineage of the published
row), ``author``, ``created_at`` (UTC).

* The record must be published: it is looked up by ``record_id`` in
  ``sanitized_data/<topic>/ds=*/part-*.parquet`` (latest ``ds`` first, or only ``ds`` when given); the
  ``record_id`` is the published one (an id holding PII is published as its pseudonym).
* The label must be valid for the topic's output schema: it is a value of the topic's label field
  (``evaluation.label_field`` of a classification topic, ``evaluation.match_field`` of a matching topic,
  else ``quality.label_field``), checked with ``jsonschema`` against that property of the output schema of
  the version that published the row (an enum value is matched case-insensitively and stored as spelt in
  the schema; ``null``/``none`` stands for JSON null where the schema allows it). Extraction topics have
  no single label field and are refused.
* ``note`` may hold PII. This module sits below the ``pii`` layer, so the caller passes the scrubber
  (``scrub``, e.g. :func:`pipeline_hub.pii.scrubber.scrub_text`); it is required, there is no default.

Raw record text is never stored or available here: the sanitized zone holds no raw inputs, so feedback
rows are not labelled examples; :func:`agreement` summarises them per prompt version instead.

Imports: base modules and :mod:`pipeline_hub.prompts.registry`.
"""

from __future__ import annotations

import getpass
import io
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from pipeline_hub import storage
from pipeline_hub.config import get_settings
from pipeline_hub.exceptions import InputError
from pipeline_hub.prompts.registry import RegistryError, Topic, load_topic

FEEDBACK_DIR = "feedback"
PUBLISHED_DIR = "sanitized_data"
NULL_WORDS = ("null", "none")
SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("topic", pa.string()),
        ("ds", pa.string()),
        ("label", pa.string()),
        ("published_label", pa.string()),
        ("note", pa.string()),
        ("prompt_version", pa.string()),
        ("model", pa.string()),
        ("batch_hash", pa.string()),
        ("author", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


class FeedbackError(InputError):
    """The feedback cannot be recorded as given (unknown record, invalid label, topic without a label field).

    The message is one line naming the topic and what to do; it never echoes the record id or the note.
    """


def label_field(topic: Topic) -> str:
    """The output field a feedback label is a value of (module docstring); raises :class:`FeedbackError`."""
    meta = yaml.safe_load(topic.metadata_path.read_text()) or {}
    evaluation = meta.get("evaluation") or {}
    name = evaluation.get("label_field") or evaluation.get("match_field") or (topic.quality or {}).get("label_field")
    if not name or name not in topic.prompt.output_schema.get("properties", {}):
        raise FeedbackError(
            f"topic {topic.name}: no single label field (evaluation.label_field / match_field in "
            f"{topic.metadata_path.name}); feedback takes classification and matching topics"
        )
    return name


def check_label(topic: Topic, label: str) -> str | None:
    """``label`` as stored: the schema's spelling of an enum value, or None for JSON null where allowed.

    Validates against the label field's property of ``topic``'s output schema (JSON Schema 2020-12,
    ``jsonschema``). Raises :class:`FeedbackError` naming the field and, for an enum, the allowed values.
    """
    import jsonschema

    field = label_field(topic)
    prop = topic.prompt.output_schema["properties"][field]
    value: str | None = label.strip()
    enum = prop.get("enum")
    if enum:
        value = next((e for e in enum if isinstance(e, str) and e.casefold() == value.casefold()), value)
    types = prop.get("type")
    nullable = "null" in (types if isinstance(types, list) else [types])
    if nullable and value.casefold() in NULL_WORDS:
        value = None
    errors = list(jsonschema.Draft202012Validator(prop).iter_errors(value))
    if errors or value == "":
        allowed = f" (one of: {', '.join(map(str, enum))})" if enum else ""
        raise FeedbackError(
            f"topic {topic.name} {topic.version}: the label is not a valid '{field}'{allowed}; "
            f"{errors[0].message if errors else 'it is empty'}"
        )
    return value


def check_ds(ds: str | None) -> str | None:
    """``ds`` unchanged when it is None or a date ``YYYY-MM-DD``; raises :class:`FeedbackError` otherwise."""
    if ds is not None:
        try:
            ok = date.fromisoformat(ds).isoformat() == ds
        except ValueError:
            ok = False
        if not ok:
            raise FeedbackError("--ds must be a date YYYY-MM-DD (the partition of the published answer)")
    return ds


def _partitions(root: str, topic: str, ds: str | None) -> list[tuple[str, Any]]:
    """``[(ds, partition dir)]`` of ``topic``'s published partitions, latest ``ds`` first."""
    base = storage.join(root, PUBLISHED_DIR, topic)
    if check_ds(ds) is not None:
        part = storage.join(base, f"ds={ds}")
        return [(ds, part)] if part.exists() else []
    if not base.exists():
        return []
    found = [(p.name[len("ds=") :], p) for p in base.iterdir() if p.name.startswith("ds=") and p.is_dir()]
    return sorted(found, key=lambda t: t[0], reverse=True)


def find_published(root: str, topic: str, record_id: str, ds: str | None = None) -> dict[str, Any]:
    """The published row of ``record_id`` (a dict of its columns plus ``ds``), latest partition first.

    Reads ``sanitized_data/<topic>/ds=*/part-*.parquet`` under ``root`` (any ``ObjectStoragePath`` URI).
    Raises :class:`FeedbackError` when no partition (of ``ds``, when given) holds the record.
    """
    for part_ds, part in _partitions(root, topic, ds):
        for f in storage.list_files(part):
            if not (f.name.startswith("part-") and f.name.endswith(".parquet")):
                continue
            table = pq.read_table(io.BytesIO(f.read_bytes()))
            if "record_id" not in table.column_names:
                continue
            hits = table.filter(pc.equal(table.column("record_id"), record_id))
            if hits.num_rows:
                return {**hits.slice(0, 1).to_pylist()[0], "ds": part_ds}
    where = f"ds={ds}" if ds else "ds=*"
    raise FeedbackError(
        f"topic {topic}: no published record with that record_id under "
        f"{storage.public_uri(storage.join(root, PUBLISHED_DIR, topic))}/{where}/ (give the published record_id)"
    )


def _version_topic(topic: str, version: str | None, prompts_dir: Path | None) -> Topic:
    """The topic at the version that published the row, or at prod when that version left the registry."""
    try:
        return load_topic(topic, prompts_dir, version=version)
    except RegistryError:
        return load_topic(topic, prompts_dir)


def author_name(author: str | None = None) -> str:
    """Who gives the feedback: ``author`` (e.g. the authenticated UI user), ``PIPELINE_HUB_ACTOR``, the login name."""
    if author or get_settings().actor:
        return author or get_settings().actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def _as_label(value: Any) -> str | None:
    return None if value is None else str(value)


def add_feedback(
    root: str,
    topic: str,
    record_id: str,
    label: str,
    *,
    scrub: Callable[[str], str],
    note: str | None = None,
    ds: str | None = None,
    author: str | None = None,
    prompts_dir: Path | None = None,
) -> dict[str, Any]:
    """Record one correction of ``record_id``'s published ``topic`` answer; returns the row and its ``uri``.

    ``root`` is the sanitized root; ``scrub`` turns the free-text ``note`` into its scrubbed form before
    anything is written (required: the note may hold PII). Raises :class:`FeedbackError` for an unknown
    record or an invalid label, :class:`~pipeline_hub.prompts.registry.RegistryError` for an unknown topic.
    """
    load_topic(topic, prompts_dir)  # an unknown topic fails first, naming the registry
    published = find_published(root, topic, record_id, ds)
    version_topic = _version_topic(topic, published.get("prompt_version"), prompts_dir)
    value = check_label(version_topic, label)
    field = label_field(version_topic)
    now = datetime.now(UTC)
    row = {
        "record_id": record_id,
        "topic": topic,
        "ds": published["ds"],
        "label": value,
        "published_label": _as_label(published.get(field)),
        "note": scrub(note) if note and note.strip() else None,
        "prompt_version": published.get("prompt_version"),
        "model": published.get("model"),
        "batch_hash": published.get("batch_hash"),
        "author": author_name(author),
        "created_at": now,
    }
    path = storage.join(root, FEEDBACK_DIR, topic, f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex}.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=SCHEMA), buf, compression="zstd")
    storage.write_bytes_atomic(path, buf.getvalue())
    return {**row, "created_at": now.isoformat(), "uri": storage.public_uri(path)}


def feedback_files(root: str) -> Iterator[tuple[str, Any]]:
    """``(topic, path)`` of every feedback Parquet object under ``<root>/feedback/`` (for erasure and reads)."""
    base = storage.join(root, FEEDBACK_DIR)
    if not base.exists():
        return
    for topic_dir in sorted(base.iterdir(), key=lambda p: p.name):
        if topic_dir.is_dir() and not topic_dir.name.startswith(("_", ".")):
            for f in storage.list_files(topic_dir):
                if f.name.endswith(".parquet"):
                    yield topic_dir.name, f


def read_feedback(root: str, topic: str, ds: str | None = None) -> list[dict[str, Any]]:
    """Every feedback row of ``topic`` (of partition ``ds`` when given), oldest first; ``created_at`` as ISO text."""
    rows = []
    for name, f in feedback_files(root):
        if name == topic:
            rows += pq.read_table(io.BytesIO(f.read_bytes())).to_pylist()
    rows = [r for r in rows if check_ds(ds) is None or r.get("ds") == ds]
    rows.sort(key=lambda r: r["created_at"])
    return [{**r, "created_at": r["created_at"].isoformat()} for r in rows]


def agreement(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per prompt version: ``{"feedback", "agreed", "corrections", "agreement_rate", "models"}``.

    ``agreed`` counts rows whose published answer equalled the analyst's label, ``corrections`` the
    others; ``agreement_rate`` = agreed / feedback (a share in [0, 1], over the feedback rows only:
    analysts mostly report wrong answers, so it is not the version's accuracy on all its records).
    """
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        v = out.setdefault(
            r.get("prompt_version") or "?", {"feedback": 0, "agreed": 0, "corrections": 0, "models": set()}
        )
        v["feedback"] += 1
        v["agreed" if r.get("published_label") == r.get("label") else "corrections"] += 1
        if r.get("model"):
            v["models"].add(r["model"])
    for v in out.values():
        v["agreement_rate"] = round(v["agreed"] / v["feedback"], 4)
        v["models"] = sorted(v["models"])
    return dict(sorted(out.items()))
