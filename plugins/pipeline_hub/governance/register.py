"""The register of erased data subjects: the erasure audit log, and keeping erased subjects out of later
publications.

Every erasure (:func:`pipeline_hub.governance.erasure.erase_subject`) writes one JSON Lines object under
``<sanitized root>/_audit/erasure/`` (:func:`write_audit`, an append-only log as immutable objects). The
raw zone may still hold an erased subject until retention expires it, so the publish stage reads the
pseudonyms of every audit record (:func:`erased_pseudonyms`) and moves rows holding one to the
quarantine as ``erased_subject`` (:func:`suppress_erased`).

Imports: base modules, ``quality`` and ``pii`` only: the publish stage (a lower layer than the rest of
``governance``) reads this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pipeline_hub import reasons, storage

AUDIT_PREFIX = ("_audit", "erasure")


def pseudonym_pattern(pseudonyms: Iterable[str]) -> str:
    """RE2 pattern matching any of ``pseudonyms`` as a whole token inside a string."""
    alternatives = "|".join(sorted(re.escape(p) for p in pseudonyms))
    return f"(?:{alternatives})(?:[^0-9a-f]|$)"


def write_audit(sanitized_root: str, record: dict[str, Any]):
    """Write ``record`` as a new one-line JSON Lines object under ``_audit/erasure/``; returns its path."""
    stamp = datetime.fromisoformat(record["erased_at"]).strftime("%Y%m%dT%H%M%S%fZ")
    path = storage.join(sanitized_root, *AUDIT_PREFIX, f"{stamp}-{record['erasure_id']}.jsonl")
    storage.write_bytes_atomic(path, (json.dumps(record, sort_keys=True) + "\n").encode())
    return path


def read_audit(sanitized_root: str) -> list[dict[str, Any]]:
    """Every erasure audit record under ``sanitized_root``, oldest first."""
    root = storage.join(sanitized_root, *AUDIT_PREFIX)
    return [rec for f in storage.list_files(root) if f.name.endswith(".jsonl") for rec in storage.read_jsonl(f)]


ERASED_REASON = reasons.ERASED_SUBJECT


def erased_pseudonyms(sanitized_root: str) -> set[str]:
    """Every pseudonym named by an erasure audit record under ``sanitized_root`` (dry runs write none).

    This is the suppression list: the raw zone may still hold an erased subject until retention expires
    it, so a later run (a backfill, a new prompt version) must not publish them again.
    """
    return {p["pseudonym"] for record in read_audit(sanitized_root) for p in record.get("pseudonyms", [])}


def suppress_erased(
    rows: list[dict[str, Any]], quarantine: list[dict[str, Any]], pseudonyms: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Move rows holding an erased subject's pseudonym out of ``rows`` before publishing.

    ``rows`` are scrubbed answer rows (dicts, nested values allowed), ``quarantine`` the quarantine rows
    (``record_id``, ``reason``, ``detail``, …, ``raw_answer``). A row matches as in :func:`matching_rows`
    (a pseudonym as a whole token in any string leaf, ``record_id`` included: ids holding PII are
    published as pseudonyms). Matching rows become quarantine rows with reason
    ``erased_subject`` (no values kept); a matching quarantine row keeps its place but loses its
    ``raw_answer``. Returns ``(rows kept, quarantine, rows suppressed)``; counts stay conserved.
    """
    from pipeline_hub.quality.checks import string_leaves

    if not pseudonyms:
        return rows, quarantine, 0
    token = re.compile(pseudonym_pattern(pseudonyms))

    def holds(value: Any) -> bool:
        return any(token.search(s) for s in string_leaves(value))

    kept, moved = [], []
    for row in rows:
        (moved if holds(row) else kept).append(row)
    quarantine = [
        {**q, "raw_answer": None} if q.get("raw_answer") and holds(q["raw_answer"]) else q for q in quarantine
    ]
    quarantine += [
        {
            "record_id": r["record_id"],
            "reason": ERASED_REASON,
            # Made after the scrub stage (published as is): our own words, no outside text.
            "detail": reasons.detail("holds the pseudonym of a data subject erased earlier (see _audit/erasure/)"),
            "source_uri": None,
            "position": None,
        }
        for r in moved
    ]
    return kept, quarantine, len(moved)
