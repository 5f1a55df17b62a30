"""SHA-256 of raw objects and of batches (FIPS 180-4 via ``hashlib``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from airflow.sdk import ObjectStoragePath

BLOCK_SIZE = 1 << 20  # 1 MiB read blocks: constant memory for objects of any size


def sha256_object(path: ObjectStoragePath) -> tuple[str, int]:
    """Stream ``path`` and return ``(sha256 hex, size in bytes)``."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(BLOCK_SIZE):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def batch_hash(object_hashes: Iterable[str]) -> str:
    """SHA-256 of the sorted object hashes joined by newlines: the identity of a batch's bytes.

    Independent of object names and listing order, so the same bytes re-uploaded under other names
    are recognised as the same batch.
    """
    return hashlib.sha256("\n".join(sorted(object_hashes)).encode()).hexdigest()


def content_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``record`` (sorted keys, compact): used for ids and duplicates."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
