"""The chunk stage: read raw objects, normalise records, drop exact duplicates, write chunks.

Each record gets a stable, never empty ``record_id``: its own ``id`` field when it is a non-blank
string or a number, else (missing, ``null``, blank) the first 32 hex characters of the SHA-256 of its
canonical JSON; an ``id`` that is a list, object or boolean is the reject ``invalid_id``. Exact
duplicates (same content) are dropped and counted; a second record with an already seen ``id`` but
different content (``duplicate_id``), and records the readers flag (``unparseable``,
``invalid_encoding``, ``oversize_*``, ``too_deep``), become *rejects* that every topic reading the
source quarantines. An object the readers cannot read is rejected whole (listed, none of its records
counted: they are not in ``records_in`` of any topic). Chunks (JSON Lines,
gzip) go to ``<staging>/chunks/<source>/``; only their URIs travel through XCom.
"""

from __future__ import annotations

import gzip
import json
import logging
import numbers
from collections import Counter
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.hashing import content_hash
from pipeline_hub.readers import Limits, ObjectError, RecordError, detect_format, iter_records
from pipeline_hub.stages.plan import (
    READ,
    REJECTED,
    SKIPPED,
    RunPlan,
    batch_manifest,
    batch_manifest_path,
    object_counts,
)

log = logging.getLogger(__name__)
# What a record's 1-based position counts, per format (for details).
POSITION_NAMES = {"jsonl": "line", "csv": "line", "json": "element", "parquet": "row"}


def normalise(source_uri: str, position: int, raw: dict[str, Any]) -> dict[str, Any] | RecordError:
    """Staged record ``{"record_id", "source_uri", "position", "fields"}`` (fields = the raw record).

    ``record_id`` is the record's ``id`` (a string or a number, stripped) when present and not blank,
    else the first 32 hex characters of the SHA-256 of the record's canonical JSON: never empty.
    An ``id`` that is a list, an object or a boolean gives a :class:`RecordError` ``invalid_id``.
    """
    given = raw.get("id")
    if isinstance(given, bool) or not (given is None or isinstance(given, str | numbers.Number)):
        where = POSITION_NAMES.get(detect_format(source_uri)[0] or "", "record")
        kind = {list: "an array", dict: "an object", bool: "a boolean"}.get(type(given), type(given).__name__)
        return RecordError(
            position,
            reasons.INVALID_ID,
            reasons.detail(
                "{obj} " + where + " {pos}: field {field} is {kind}, expected a string or a number",
                obj=source_uri,
                pos=position,
                field="id",
                kind=kind,
            ),
            field="id",
        )
    text = "" if given is None else str(given).strip()
    record_id = text or content_hash(raw)[:32]
    return {"record_id": record_id, "source_uri": source_uri, "position": position, "fields": raw}


def read_object(obj: dict[str, Any], limits: Limits, max_items: int | None = None) -> tuple[list, ObjectError | None]:
    """Items of one raw object (``(position, record)`` or :class:`RecordError`), at most ``max_items``.

    Streams ``obj["uri"]``. Returns ``(items, None)``, or ``(items read before the fault, error)``
    when the object is unreadable: the caller then rejects the object with all its records (the rule
    of :mod:`pipeline_hub.readers`).
    """
    items: list = []
    try:
        with storage.to_path(obj["uri"]).open("rb") as fh:
            for item in iter_records(obj["public_uri"], fh, limits):
                if isinstance(item, ObjectError):
                    return items, item
                items.append(item)
                if max_items is not None and len(items) >= max_items:
                    break
    except OSError as exc:
        return items, ObjectError(
            reasons.UNREADABLE_OBJECT,
            reasons.detail(
                "{obj}: the store could not return its bytes ({err})", obj=obj["public_uri"], err=type(exc).__name__
            ),
        )
    return items, None


def _reject_row(obj: dict[str, Any], error: RecordError) -> dict[str, Any]:
    return {
        "record_id": f"{obj['sha256'][:16]}:{error.position}",
        "source_uri": obj["public_uri"],
        "position": error.position,
        "reason": error.reason,
        "detail": error.detail,
    }


def chunk_source(plan: RunPlan, source: str, chunk_size: int, max_chunks: int | None = None) -> dict[str, Any]:
    """Chunk one source of ``plan``; returns ``{"source", "chunks": [{"uri", "index", "records"}], "counts"}``.

    ``counts``: ``rows_read`` (records and unparseable entries read from objects not rejected, at most
    ``row_limit``), ``duplicates_dropped``, ``rejected`` (by reason) and ``staged``; ``rows_read =
    staged + rejected + duplicates_dropped``; ``objects`` = ``{"seen", "read", "skipped", "rejected"}``.
    ``chunk_size`` grows when needed so there are at most ``max_chunks`` chunks.
    Rejects are written to ``_rejects.jsonl`` with reason and a detail naming the object and record
    position, never record text. An object that cannot be read (:class:`ObjectError`) is rejected
    whole: none of its records counts, it is listed ``rejected`` with its reason in ``_objects.json``
    (staging) and in the batch manifest, which is rewritten with each object's final status and
    record count. Objects not reached because of ``row_limit`` are listed ``skipped`` / ``row_limit``.
    """
    info = plan.sources[source]
    limits = Limits(**(plan.settings.get("limits") or {}))
    out_dir = storage.join(plan.staging, "chunks", source)
    listing = [dict(o) for o in info.get("listing") or []]
    entries = {o["public_uri"]: o for o in listing}
    seen_content: set[str] = set()
    seen_ids: dict[str, str] = {}
    staged: list[dict] = []
    rejects: list[dict] = []
    counts = {"rows_read": 0, "duplicates_dropped": 0, "rejected": {}, "staged": 0}
    limit = plan.row_limit
    for obj in info["objects"]:
        entry = entries.setdefault(obj["public_uri"], {"public_uri": obj["public_uri"], "status": READ})
        if limit is not None and counts["rows_read"] >= limit:
            entry.update(status=SKIPPED, reason=reasons.ROW_LIMIT, records=0)
            entry["detail"] = reasons.plain(
                reasons.detail("{obj}: not read, the run's row_limit {n} was reached", obj=obj["public_uri"], n=limit)
            )
            continue
        items, error = read_object(obj, limits, None if limit is None else limit - counts["rows_read"])
        if error is not None:
            entry.update(status=REJECTED, reason=error.reason, detail=reasons.plain(error.detail), records=len(items))
            log.warning("raw object rejected with its %d records read: %s", len(items), entry["detail"])
            continue
        entry["records"] = len(items)
        for item in items:
            counts["rows_read"] += 1
            if isinstance(item, RecordError):
                rejects.append(_reject_row(obj, item))
                continue
            position, raw = item
            record = normalise(obj["public_uri"], position, raw)
            if isinstance(record, RecordError):
                rejects.append(_reject_row(obj, record))
                continue
            digest = content_hash(raw)
            if digest in seen_content:
                counts["duplicates_dropped"] += 1
                continue
            seen_content.add(digest)
            if record["record_id"] in seen_ids:
                where = POSITION_NAMES.get(detect_format(obj["public_uri"])[0] or "", "record")
                rejects.append(
                    {
                        "record_id": f"{record['record_id']}#{obj['sha256'][:8]}:{position}",
                        "source_uri": obj["public_uri"],
                        "position": position,
                        "reason": reasons.DUPLICATE_ID,
                        "detail": reasons.detail(
                            "{obj} " + where + " {pos}: field {field} repeats an earlier record with different content",
                            obj=obj["public_uri"],
                            pos=position,
                            field="id",
                        ),
                    }
                )
                continue
            seen_ids[record["record_id"]] = digest
            staged.append(record)
    for r in rejects:
        counts["rejected"][r["reason"]] = counts["rejected"].get(r["reason"], 0) + 1
    counts["staged"] = len(staged)
    if max_chunks:
        chunk_size = max(chunk_size, -(-len(staged) // max_chunks))
    counts["chunk_size"] = chunk_size
    chunks = []
    for index, start in enumerate(range(0, len(staged), chunk_size)):
        part = staged[start : start + chunk_size]
        path = out_dir / f"chunk-{index:05d}.jsonl.gz"
        payload = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in part)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(payload.encode(), mtime=0))
        chunks.append({"uri": str(path), "index": index, "records": len(part)})
    counts["objects"] = object_counts(listing)
    storage.write_jsonl(out_dir / "_rejects.jsonl", rejects)
    storage.write_json(out_dir / "_objects.json", listing, atomic=False)
    storage.write_json(out_dir / "_counts.json", counts, atomic=False)
    if info.get("batch_hash"):
        info["listing"] = listing
        storage.write_json(
            batch_manifest_path(plan.settings["sanitized_root"], source, info["batch_hash"]),
            batch_manifest(plan, source),
        )
    return {"source": source, "chunks": chunks, "counts": counts}


def object_listing(plan: RunPlan, source: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``(objects, counts)`` for a publication manifest: every raw object of ``source``'s ``ds`` prefix.

    ``objects``: ``[{"public_uri", "key", "size", "sha256", "status", "reason", "detail", "records"}]``
    as of the chunk stage (``_objects.json`` in staging; the plan's listing when the source was not
    chunked); ``counts``: ``{"seen", "read", "skipped", "rejected"}`` with seen = read + skipped +
    rejected. Records of rejected objects are not in the topic's ``counts.in``.
    """
    path = storage.join(plan.staging, "chunks", source, "_objects.json")
    listing = storage.read_json(path) if path.exists() else plan.sources[source].get("listing") or []
    return listing, object_counts(listing)


def read_chunk(uri: str) -> list[dict[str, Any]]:
    """Records of a chunk written by :func:`chunk_source`."""
    return [json.loads(line) for line in gzip.decompress(storage.to_path(uri).read_bytes()).decode().splitlines()]


def run_chunk(plan_uri: str) -> list[dict[str, Any]]:
    """Task ``chunk``: chunk every source a pending topic reads; one work item per (topic, chunk)."""
    plan = RunPlan.load(plan_uri)
    chunk_size = int(plan.settings["chunk_size"])
    max_chunks = max_chunks_per_source(plan)
    by_source = {}
    for tp in plan.pending:
        if tp.source not in by_source:
            by_source[tp.source] = chunk_source(plan, tp.source, chunk_size, max_chunks[tp.source])
            counts = by_source[tp.source]["counts"]
            log.info("source %s: %s", tp.source, counts)
    return [
        {
            "plan_uri": plan_uri,
            "topic": tp.topic,
            "chunk_uri": c["uri"],
            "chunk_index": c["index"],
            "chunk_records": c["records"],
            "topic_records": by_source[tp.source]["counts"]["staged"],
            "mode": tp.mode,
        }
        for tp in plan.pending
        for c in by_source[tp.source]["chunks"]
    ]


def max_chunks_per_source(plan: RunPlan) -> dict[str, int]:
    """Most chunks a source may be cut into, so the mapped prompt tasks stay within bounds.

    Per source: ``min(settings.max_chunks, max_map_length // topics reading it)``, where
    ``max_map_length`` is Airflow's ``[core] max_map_length`` (default 1024). The chunk size grows
    beyond its default when a source is larger than ``max_chunks × chunk_size`` records.
    """
    try:
        from airflow.configuration import conf

        max_map_length = conf.getint("core", "max_map_length", fallback=1024)
    except Exception:  # outside an Airflow installation's configuration
        max_map_length = 1024
    readers = Counter(tp.source for tp in plan.pending)
    return {src: max(1, min(int(plan.settings["max_chunks"]), max_map_length // n)) for src, n in readers.items()}
