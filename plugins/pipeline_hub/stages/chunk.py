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
from collections.abc import Iterator
from typing import Any

from pipeline_hub import reasons, storage
from pipeline_hub.hashing import content_hash
from pipeline_hub.readers import Item, Limits, ObjectError, RecordError, detect_format, iter_records
from pipeline_hub.stages.plan import (
    READ,
    REJECTED,
    SKIPPED,
    RunPlan,
    batch_manifest,
    batch_manifest_path,
    object_counts,
)
from pipeline_hub.stages.spool import LineSpool, local_dir, write_chunks

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


def iter_object(obj: dict[str, Any], limits: Limits, max_items: int | None = None) -> Iterator[Item]:
    """Stream the items of one raw object: ``(position, record)`` or :class:`RecordError`, at most
    ``max_items``, then the :class:`ObjectError` (always last) when the object is unreadable.

    Reads ``obj["uri"]`` as a stream (:func:`pipeline_hub.readers.iter_records`); a store that cannot
    return its bytes is ``ObjectError(unreadable_object)``. After an ``ObjectError`` the caller rejects
    the object with every item it yielded (the rule of :mod:`pipeline_hub.readers`).
    """
    n = 0
    try:
        with storage.to_path(obj["uri"]).open("rb") as fh:
            for item in iter_records(obj["public_uri"], fh, limits):
                yield item
                if isinstance(item, ObjectError):
                    return
                n += 1
                if max_items is not None and n >= max_items:
                    return
    except OSError as exc:
        yield ObjectError(
            reasons.UNREADABLE_OBJECT,
            reasons.detail(
                "{obj}: the store could not return its bytes ({err})", obj=obj["public_uri"], err=type(exc).__name__
            ),
        )


def read_object(obj: dict[str, Any], limits: Limits, max_items: int | None = None) -> tuple[list, ObjectError | None]:
    """Items of one raw object as a list (:func:`iter_object` collected: O(object) memory, for small
    objects and tests). Returns ``(items, None)``, or ``(items read before the fault, error)``."""
    items: list = []
    for item in iter_object(obj, limits, max_items):
        if isinstance(item, ObjectError):
            return items, item
        items.append(item)
    return items, None


def _line(row: dict[str, Any]) -> bytes:
    """One JSON Lines line as the chunk and ``_rejects.jsonl`` files hold it (sorted keys)."""
    return (json.dumps(row, sort_keys=True, default=str) + "\n").encode()


class _Seen:
    """Content digests (first 128 bits of the SHA-256, as bytes) and record ids seen so far in a source,
    plus those of the object being read (kept apart until the object is known readable)."""

    def __init__(self) -> None:
        self.content: set[bytes] = set()
        self.ids: set[str] = set()
        self.new_content: set[bytes] = set()
        self.new_ids: set[str] = set()

    def has_content(self, digest: bytes) -> bool:
        return digest in self.content or digest in self.new_content

    def has_id(self, record_id: str) -> bool:
        return record_id in self.ids or record_id in self.new_ids

    def commit(self) -> None:
        self.content |= self.new_content
        self.ids |= self.new_ids
        self.rollback()

    def rollback(self) -> None:
        self.new_content, self.new_ids = set(), set()


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

    Memory: records are streamed from each object into a :class:`~pipeline_hub.stages.spool.LineSpool`
    (an anonymous temporary file in the local staging directory, else in ``<state dir>/spool``) and cut into chunks
    once the source's count is known; only the content digests and ids of the source's records (for
    duplicates) and the object listing stay in memory.
    """
    info = plan.sources[source]
    limits = Limits(**(plan.settings.get("limits") or {}))
    out_dir = storage.join(plan.staging, "chunks", source)
    listing = [dict(o) for o in info.get("listing") or []]
    entries = {o["public_uri"]: o for o in listing}
    seen = _Seen()
    counts: dict[str, Any] = {"rows_read": 0, "duplicates_dropped": 0, "rejected": {}, "staged": 0}
    limit = plan.row_limit
    spool_dir = local_dir(out_dir)
    with LineSpool(spool_dir) as staged, LineSpool(spool_dir) as rejects:
        for obj in info["objects"]:
            entry = entries.setdefault(obj["public_uri"], {"public_uri": obj["public_uri"], "status": READ})
            if limit is not None and counts["rows_read"] >= limit:
                entry.update(status=SKIPPED, reason=reasons.ROW_LIMIT, records=0)
                entry["detail"] = reasons.plain(
                    reasons.detail(
                        "{obj}: not read, the run's row_limit {n} was reached", obj=obj["public_uri"], n=limit
                    )
                )
                continue
            max_items = None if limit is None else limit - counts["rows_read"]
            marks = staged.mark(), rejects.mark()
            found = _chunk_object(obj, iter_object(obj, limits, max_items), seen, staged, rejects)
            if (error := found["error"]) is not None:  # void every item of the object (readers' rule)
                staged.rollback(marks[0])
                rejects.rollback(marks[1])
                seen.rollback()
                entry.update(status=REJECTED, reason=error.reason, detail=reasons.plain(error.detail))
                entry["records"] = found["items"]
                log.warning("raw object rejected with its %d records read: %s", entry["records"], entry["detail"])
                continue
            seen.commit()
            entry["records"] = found["items"]
            counts["rows_read"] += found["items"]
            counts["duplicates_dropped"] += found["duplicates"]
            for reason, n in found["rejected"].items():
                counts["rejected"][reason] = counts["rejected"].get(reason, 0) + n
        counts["staged"] = staged.lines
        if max_chunks:
            chunk_size = max(chunk_size, -(-staged.lines // max_chunks))
        counts["chunk_size"] = chunk_size
        chunks = write_chunks(staged, out_dir, chunk_size)
        counts["objects"] = object_counts(listing)
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "_rejects.jsonl").open("wb") as fh:
            for line in rejects:
                fh.write(line)
    storage.write_json(out_dir / "_objects.json", listing, atomic=False)
    storage.write_json(out_dir / "_counts.json", counts, atomic=False)
    if info.get("batch_hash"):
        info["listing"] = listing
        storage.write_json(
            batch_manifest_path(plan.settings["sanitized_root"], source, info["batch_hash"]),
            batch_manifest(plan, source),
        )
    return {"source": source, "chunks": chunks, "counts": counts}


def _chunk_object(
    obj: dict[str, Any], items: Iterator[Item], seen: _Seen, staged: LineSpool, rejects: LineSpool
) -> dict[str, Any]:
    """Normalise, de-duplicate and spool the items of one object (staged records to ``staged``, reject
    rows to ``rejects``, digests and ids to ``seen``'s pending sets).

    Returns ``{"items": items read, "duplicates": exact duplicates dropped, "rejected": {reason: n},
    "error": the ObjectError or None}``; on an error the caller rolls the spools and ``seen`` back.
    """
    found: dict[str, Any] = {"items": 0, "duplicates": 0, "rejected": {}, "error": None}

    def reject(row: dict[str, Any]) -> None:
        rejects.write(_line(row))
        found["rejected"][row["reason"]] = found["rejected"].get(row["reason"], 0) + 1

    for item in items:
        if isinstance(item, ObjectError):
            found["error"] = item
            break
        found["items"] += 1
        if isinstance(item, RecordError):
            reject(_reject_row(obj, item))
            continue
        position, raw = item
        record = normalise(obj["public_uri"], position, raw)
        if isinstance(record, RecordError):
            reject(_reject_row(obj, record))
            continue
        digest = bytes.fromhex(content_hash(raw)[:32])
        if seen.has_content(digest):
            found["duplicates"] += 1
            continue
        seen.new_content.add(digest)
        if seen.has_id(record["record_id"]):
            where = POSITION_NAMES.get(detect_format(obj["public_uri"])[0] or "", "record")
            reject(
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
        seen.new_ids.add(record["record_id"])
        staged.write(_line(record))
    return found


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

    Per source: ``min(settings.max_chunks, max_map_length // pending topics)``, where
    ``max_map_length`` is Airflow's ``[core] max_map_length`` (default 1024): the DAG's ``prompt`` is
    one task mapped over every pending topic's chunks, so their sum must stay within it, whatever
    sources the topics read. The chunk size grows beyond its default when a source is larger than
    ``max_chunks × chunk_size`` records.
    """
    try:
        from airflow.configuration import conf

        max_map_length = conf.getint("core", "max_map_length", fallback=1024)
    except Exception:  # outside an Airflow installation's configuration
        max_map_length = 1024
    share = max_map_length // max(1, len(plan.pending))
    return {tp.source: max(1, min(int(plan.settings["max_chunks"]), share)) for tp in plan.pending}
