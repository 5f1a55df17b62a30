"""The scrub stage: Presidio over every answer, kept field, record id and quarantine detail; keyed pseudonyms.

Configuration: ``include/pii/presidio.yaml`` (engine, entities, threshold, allow list, one anonymizer
operator per entity; :mod:`pipeline_hub.pii.config`) and ``include/pii/recognizers.yaml`` (the
Presidio recognizer registry). Per topic, ``metadata.yaml`` says how each kept input field is treated
and which answer paths are pseudonymized (:class:`~pipeline_hub.pii.config.TopicPii`).

Per topic (:func:`scrub_topic`), in this order:

1. **Types.** Every answer is cast to its published Arrow types and kept fields that are not strings
   become JSON text (:mod:`pipeline_hub.stages.casting`); a value that does not fit quarantines its record as
   ``invalid_output`` with the field path.
2. **Answers and kept fields.** Every string leaf is analyzed, so PII a model echoed or invented is
   found wherever it appears: leaves at ``pseudonymize`` paths become keyed pseudonyms, leaves whose
   schema fixes the value (``enum``/``const``) are only counted, every other leaf is anonymized
   except at ``keep_as_is`` paths, which are published unchanged.
3. **Residual PII, per record.** A record is quarantined as ``residual_pii`` (detail: ``field 'notes'
   holds PHONE_NUMBER after scrubbing``, never the value) when a ``keep_as_is`` leaf holds a detection
   (other than :data:`~pipeline_hub.pii.scrubber.COUNTED_IN_KEEP_AS_IS`: company and place names the
   NER model reads as persons) or when any leaf not fixed by the schema still matches the residual
   e-mail/phone patterns of :data:`pipeline_hub.quality.checks.RESIDUAL_PII` after scrubbing. The GX suite
   stays the last gate over the whole table; these records are no longer in it.
4. **Record ids.** The raw ``record_id`` of every published and quarantined record is analyzed
   (distinct ids, in the same analyzer batch as the rows). An id holding PII is published only as its
   keyed pseudonym (:func:`pipeline_hub.pii.pseudonym.pseudonymize` of the whole id, with the detected
   entity kind), so ``pipeline-hub erase`` finds the record by the raw value or by the pseudonym. Ids
   the pipeline generates (content hashes, ``<sha16>:<pos>``) are not analyzed
   (:data:`~pipeline_hub.pii.record_ids.GENERATED_ID`); a ``PERSON`` detection counts in an id only
   when it spans two or more letter-only words (:data:`~pipeline_hub.pii.record_ids.NAME_LIKE`): NER
   reads tickers and codes such as ``SNPS`` or ``X-1`` as persons.
5. **Quarantine rows.** ``reason`` codes are ours and never analyzed. ``detail`` strings are made by
   :func:`pipeline_hub.reasons.detail`: only their marked outside parts
   (:func:`~pipeline_hub.reasons.outside_parts`) are analyzed and replaced, our own words ("invalid
   JSON") stay, and the published detail is :func:`~pipeline_hub.reasons.plain`. ``raw_answer`` and
   ``source_uri`` are analyzed whole. Left-over matches of the residual patterns in those texts are
   replaced by ``<EMAIL_ADDRESS>`` / ``<PHONE_NUMBER>``.

Counts per entity (never values) go to the stage summary and from there to the manifest.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.pii.config import TopicPii
from pipeline_hub.pii.record_ids import id_core, needs_analysis, published_ids
from pipeline_hub.pii.scrubber import Scrubber
from pipeline_hub.stages.cascade import ORACLE_ROUTE
from pipeline_hub.stages.casting import CastError, answer_types, cast_row
from pipeline_hub.stages.plan import RunPlan, plan_topic

log = logging.getLogger(__name__)
QUARANTINE_FIELDS = ("record_id", "reason", "detail", "source_uri", "position", "raw_answer")

__all__ = ["add_summaries", "cast_answers", "residual_detail", "run_scrub", "scrub_topic"]


def _quarantine_row(row: dict, origins: dict[str, dict], reason: str, detail: str, raw_answer: str | None) -> dict:
    origin = origins.get(row.get("record_id")) or {}
    return {
        "record_id": row.get("record_id"),
        "reason": reason,
        "detail": detail,
        "source_uri": origin.get("source_uri"),
        "position": origin.get("position"),
        "raw_answer": raw_answer,
    }


def residual_detail(paths: dict[str, list[str]]) -> str:
    """``field 'notes' holds PHONE_NUMBER after scrubbing`` (one clause per path; paths marked as outside text)."""
    ordered = sorted(paths)
    clauses = [f"field '{{p{n}}}' holds {', '.join(paths[p])}" for n, p in enumerate(ordered)]
    return reasons.detail("; ".join(clauses) + " after scrubbing", **{f"p{n}": p for n, p in enumerate(ordered)})


def cast_answers(
    rows: list[dict], output_schema: dict[str, Any], keep_fields: Iterable[str], origins: dict[str, dict]
) -> tuple[list[dict], list[dict]]:
    """``(typed rows, invalid_output quarantine rows)``: :func:`pipeline_hub.stages.casting.cast_row` per row.

    A row whose answer does not fit its published types is quarantined with a detail naming the field
    path and the type (never the value) and its answer (JSON) as ``raw_answer``, scrubbed like any.
    """
    types = answer_types(output_schema)
    typed, held = [], []
    for row in rows:
        try:
            typed.append(cast_row(row, types, keep_fields))
        except CastError as exc:
            expected = str(exc.expected).replace("{", "{{").replace("}", "}}")
            template = f"answer field '{{path}}' cannot be cast to its output type {expected}"
            detail = reasons.detail(template, path=exc.path)
            answer = json.dumps({k: v for k, v in row.items() if k in types}, ensure_ascii=False, default=str)
            held.append(_quarantine_row(row, origins, reasons.INVALID_OUTPUT, detail, answer))
    return typed, held


def scrub_topic(
    topic,
    rows: list[dict],
    quarantine: list[dict],
    scrubber: Scrubber | None = None,
    origins: dict[str, dict] | None = None,
) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """The stage for one topic: ``(published rows, quarantine rows, summary)`` (module docstring, steps 1-5).

    ``rows`` are ``{"record_id", "model"?, "route"?, **kept fields, **answer}``; ``quarantine`` rows are
    ``{"record_id", "reason", "detail", "source_uri", "position", "raw_answer"}``; ``origins`` maps a
    raw record id to its ``{"source_uri", "position"}`` (for records the stage quarantines). Records
    whose answer does not fit its types (``invalid_output``) or that still hold PII after scrubbing
    (``residual_pii``) move from the rows to the quarantine. The summary holds counts only: ``rows``,
    ``quarantined``, ``pii_found`` and ``pii_left`` (entity -> count, published rows),
    ``pii_found_quarantine``, ``pii_found_ids``, ``ids_pseudonymized``, ``quarantined_here``
    (reason -> records this stage quarantined), ``residual_pii`` (entity -> leaves) and
    ``strings_scanned``. Raises :class:`PiiConfigError` naming the topic's metadata.yaml when its PII
    policy is invalid.
    """
    pii = TopicPii.from_topic(topic)
    origins = origins or {}
    own = scrubber is None
    scrubber = scrubber or Scrubber()
    try:
        typed, held = cast_answers(rows, topic.prompt.output_schema, topic.keep_fields, origins)
        every_id = [r.get("record_id") for r in [*typed, *quarantine, *held]]
        ids = list(dict.fromkeys(i for i in every_id if needs_analysis(i)))
        scrubbed, scan, id_found = scrubber._scrub_topic_rows(
            typed, pii, topic.prompt.output_schema, ("record_id", "model", "route"), also=[id_core(i)[0] for i in ids]
        )
        id_map, id_counts = published_ids(scrubber, ids, id_found)
        published, residual = [], Counter()
        for i, row in enumerate(scrubbed):
            paths = scan.residual.get(i)
            if paths:
                held.append(_quarantine_row(row, origins, reasons.RESIDUAL_PII, residual_detail(paths), None))
                residual.update(e for entities in paths.values() for e in entities)
            else:
                published.append(row)
        q_scrubbed, q_found, q_strings = scrubber.scrub_quarantine([*quarantine, *held])
    finally:
        if own:
            scrubber.close()
    for row in [*published, *q_scrubbed]:
        if row.get("record_id") in id_map:
            row["record_id"] = id_map[row["record_id"]]
    left = Counter()
    for i, counts in scan.left_by_row.items():
        if i not in scan.residual:
            left.update(counts)
    summary = {
        "topic": topic.name,
        "rows": len(published),
        "quarantined": len(q_scrubbed),
        "pii_found": dict(sorted(scan.found.items())),
        "pii_left": dict(sorted(left.items())),
        "pii_found_quarantine": dict(sorted(q_found.items())),
        "pii_found_ids": dict(sorted(id_counts.items())),
        "ids_pseudonymized": len(id_map),
        "quarantined_here": dict(sorted(Counter(q["reason"] for q in held).items())),
        "residual_pii": dict(sorted(residual.items())),
        "strings_scanned": scan.strings + q_strings + len(ids),
    }
    return published, q_scrubbed, summary


REJECTS_BATCH = 5_000  # chunk-stage rejects scrubbed at a time


def _staged_answers(plan: RunPlan, tp, topic) -> Iterator[tuple[list[dict], list[dict], dict[str, dict]]]:
    """``(rows, quarantine, origins)`` per answers object of the topic (one prompt chunk), then the source's
    chunk-stage rejects in lists of :data:`REJECTS_BATCH`: O(chunk) records at a time.

    Raises ``ValueError`` naming the topic's metadata.yaml when kept fields collide with answer keys.
    """
    for path in storage.list_files(storage.join(plan.staging, "answers", topic.name)):
        rows, quarantine, origins = [], [], {}
        for r in storage.iter_jsonl(path):
            if r["status"] == "ok":
                origins[r["record_id"]] = {"source_uri": r.get("source_uri"), "position": r.get("position")}
                collision = set(r["fields"]) & set(r["answer"])
                if collision:
                    raise ValueError(f"{topic.metadata_path}: kept fields {sorted(collision)} collide with answer keys")
                row = {"record_id": r["record_id"], **r["fields"], **r["answer"]}
                if (r.get("usage") or {}).get("model"):
                    row["model"] = r["usage"]["model"]  # per record: routing may pick another model
                row["route"] = (r.get("usage") or {}).get("cascade") or ORACLE_ROUTE  # proxy | oracle
                rows.append(row)
            else:
                quarantine.append({k: r.get(k) for k in QUARANTINE_FIELDS})
        yield rows, quarantine, origins
    rejects = storage.join(plan.staging, "chunks", tp.source, "_rejects.jsonl")
    for batch in storage.batched_jsonl(rejects, REJECTS_BATCH):
        yield [], [{k: r.get(k) for k in QUARANTINE_FIELDS} for r in batch], {}


def add_summaries(total: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    """The :func:`scrub_topic` summary of two parts of a topic: counts added, entity counts added per key."""
    if total is None:
        return dict(part)
    out = {}
    for key, value in total.items():
        if isinstance(value, dict):
            out[key] = dict(sorted((Counter(value) + Counter(part[key])).items()))
        elif isinstance(value, int):
            out[key] = value + part[key]
        else:
            out[key] = value
    return out


def run_scrub(plan_uri: str, topic_name: str) -> dict[str, Any]:
    """Task ``scrub`` (per topic): types cast, Presidio over every answer, kept field, id and detail.

    Records whose answer does not fit its published types are quarantined as ``invalid_output``, records
    still holding PII after scrubbing as ``residual_pii`` (per record, with the field path), ids holding
    PII become keyed pseudonyms (see :func:`pipeline_hub.stages.scrub.scrub_topic`). Streams: one answers
    object (a prompt chunk) at a time through one :class:`Scrubber`, appended to
    ``scrubbed/<topic>/rows.jsonl`` and ``quarantine.jsonl``; then writes ``_summary.json`` (counts only:
    ``rows``, ``quarantined``, ``pii_found``, ``pii_left``, ``pii_found_quarantine``, ``pii_found_ids``,
    ``ids_pseudonymized``, ``quarantined_here``, ``residual_pii``, ``strings_scanned``) and returns the
    summary.
    """
    plan = RunPlan.load(plan_uri)
    tp, topic = plan_topic(plan, topic_name)
    out = storage.join(plan.staging, "scrubbed", topic.name)
    summary = None
    with Scrubber() as scrubber:
        with (
            storage.JsonlWriter(out / "rows.jsonl") as rows_out,
            storage.JsonlWriter(out / "quarantine.jsonl") as q_out,
        ):
            for rows, quarantine, origins in _staged_answers(plan, tp, topic):
                if not rows and not quarantine:
                    continue
                scrubbed, held, part = scrub_topic(topic, rows, quarantine, scrubber, origins)
                rows_out.write(scrubbed)
                q_out.write(held)
                summary = add_summaries(summary, part)
        if summary is None:  # nothing staged for the topic: the summary of no records
            summary = scrub_topic(topic, [], [], scrubber)[2]
    storage.write_json(out / "_summary.json", summary, atomic=False)
    log.info("scrub %s: %s", topic.name, summary)
    return summary
