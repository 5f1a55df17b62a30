"""The chunk stage: read raw objects, normalise records, drop exact duplicates, write chunks.

Each record gets a stable ``record_id``: its own ``id`` field when present, else the first 32 hex
characters of the SHA-256 of its canonical JSON. Exact duplicates (same content) are dropped and
counted; a second record with an already seen ``id`` but different content, and records that cannot
be parsed, become *rejects* that every topic reading the source quarantines. Chunks (JSON Lines,
gzip) go to ``<staging>/chunks/<source>/``; only their URIs travel through XCom.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from pipeline_hub import storage
from pipeline_hub.hashing import content_hash
from pipeline_hub.plan import RunPlan
from pipeline_hub.readers import RecordError, iter_records


def normalise(source_uri: str, position: int, raw: dict[str, Any]) -> dict[str, Any]:
    """Staged record: ``{"record_id", "source_uri", "position", "fields"}`` (fields = the raw record)."""
    given = raw.get("id")
    record_id = str(given).strip() if given not in (None, "") else content_hash(raw)[:32]
    return {"record_id": record_id, "source_uri": source_uri, "position": position, "fields": raw}


def chunk_source(plan: RunPlan, source: str, chunk_size: int, max_chunks: int | None = None) -> dict[str, Any]:
    """Chunk one source of ``plan``; returns ``{"source", "chunks": [{"uri", "index", "records"}], "counts"}``.

    ``counts``: ``rows_read`` (records and unparseable entries read, at most ``row_limit``),
    ``duplicates_dropped``, ``rejected`` (by reason) and ``staged``; ``rows_read = staged + rejected +
    duplicates_dropped``. ``chunk_size`` grows when needed so there are at most ``max_chunks`` chunks.
    Rejects are written to ``_rejects.jsonl`` with reason and a detail naming the object and record
    position, never record text.
    """
    info = plan.sources[source]
    out_dir = storage.join(plan.staging, "chunks", source)
    seen_content: set[str] = set()
    seen_ids: dict[str, str] = {}
    staged: list[dict] = []
    rejects: list[dict] = []
    counts = {"rows_read": 0, "duplicates_dropped": 0, "rejected": {}, "staged": 0}
    limit = plan.row_limit
    for obj in info["objects"]:
        if limit is not None and counts["rows_read"] >= limit:
            break
        data = storage.to_path(obj["uri"]).read_bytes()
        for item in iter_records(obj["public_uri"], data):
            if limit is not None and counts["rows_read"] >= limit:
                break
            counts["rows_read"] += 1
            if isinstance(item, RecordError):
                rid = f"{obj['sha256'][:16]}:{item.position}"
                rejects.append(
                    {
                        "record_id": rid,
                        "source_uri": obj["public_uri"],
                        "position": item.position,
                        "reason": item.reason,
                        "detail": item.detail,
                    }
                )
                continue
            position, raw = item
            record = normalise(obj["public_uri"], position, raw)
            digest = content_hash(raw)
            if digest in seen_content:
                counts["duplicates_dropped"] += 1
                continue
            seen_content.add(digest)
            if record["record_id"] in seen_ids:
                rejects.append(
                    {
                        "record_id": f"{record['record_id']}#{obj['sha256'][:8]}:{position}",
                        "source_uri": obj["public_uri"],
                        "position": position,
                        "reason": "duplicate_id",
                        "detail": f"{obj['public_uri']} record {position}: field 'id' repeats an earlier "
                        "record with different content",
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
    storage.write_jsonl(out_dir / "_rejects.jsonl", rejects)
    storage.write_json(out_dir / "_counts.json", counts, atomic=False)
    return {"source": source, "chunks": chunks, "counts": counts}


def read_chunk(uri: str) -> list[dict[str, Any]]:
    """Records of a chunk written by :func:`chunk_source`."""
    return [json.loads(line) for line in gzip.decompress(storage.to_path(uri).read_bytes()).decode().splitlines()]
