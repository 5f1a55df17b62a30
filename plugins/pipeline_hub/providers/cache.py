"""Response cache: never pay twice for the same request.

The key is the SHA-256 of the canonical JSON of everything that determines an answer: provider (base
URL), model, generation params, the rendered messages and the output schema. A changed template,
model or schema therefore misses; the same request hits — in a rerun, a backfill, a retried task
(each response is stored as soon as it arrives, so a task that dies half-way resumes where it was) or
a prompt-scoring run.

Backends, chosen by ``PIPELINE_HUB_LLM_CACHE``:

``disk:<dir>`` (default ``disk:<repo>/.local/cache/llm``)
    ``diskcache`` (SQLite-backed, safe across processes on one machine).
``s3://<conn>@<bucket>/<prefix>`` (or any ``ObjectStoragePath`` URI)
    one JSON object per key, shared by every worker of a multi-worker deployment.
``off``
    no cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any, Protocol

from pipeline_hub.config import get_settings, local_dir
from pipeline_hub.exceptions import ConfigError


def cache_key(*, provider: str, model: str, params: dict[str, Any], messages: list[dict], schema: dict) -> str:
    """SHA-256 hex of the canonical JSON of the request's answer-determining parts."""
    payload = {"provider": provider, "model": model, "params": params, "messages": messages, "schema": schema}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache(Protocol):
    """``get(key) -> dict | None`` and ``set(key, value: dict)``; values are small JSON documents.

    Both may be called from a worker thread (the prompt stage writes off its event loop). A backend may set
    ``local_reads = True`` when ``get`` takes microseconds, so it is worth no thread trip.
    """

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value of ``key``, or None."""

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` (a small JSON document) under ``key``."""


class PurgeableCache(ResponseCache, Protocol):
    """A cache that can also enumerate and delete entries (GDPR erasure, :mod:`pipeline_hub.governance.erasure`)."""

    def keys(self) -> Iterator[str]:
        """Every stored key."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was present."""


class NoCache:
    """The ``off`` backend."""

    local_reads = True

    def get(self, key: str) -> dict[str, Any] | None:
        """Always None: nothing is stored."""
        return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store nothing."""
        return None

    def keys(self) -> Iterator[str]:
        """No keys."""
        return iter(())

    def delete(self, key: str) -> bool:
        """False: nothing is stored."""
        return False


class DiskCache:
    """Local ``diskcache.Cache`` under ``directory`` (created)."""

    # A read is one indexed SQLite lookup (~10 us): callers may do it on the event loop. A write is a
    # transaction (~125 us, more under disk contention): the prompt stage does it on a thread, several at
    # once (:mod:`pipeline_hub.providers.cache_io`).
    local_reads = True

    def __init__(self, directory: str) -> None:
        import diskcache

        self.directory = directory
        self._cache = diskcache.Cache(directory)

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value of ``key``, or None."""
        return self._cache.get(key)

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key``."""
        self._cache.set(key, value)

    def set_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Store every ``(key, value)`` of ``items`` in one transaction (``diskcache.Cache.transact``)."""
        with self._cache.transact():
            for key, value in items:
                self._cache.set(key, value)

    def keys(self) -> Iterator[str]:
        """Every stored key (a snapshot: safe to delete while iterating)."""
        return iter(list(self._cache.iterkeys()))

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was present."""
        return bool(self._cache.delete(key))


class ObjectStoreCache:
    """One JSON object per key under an ``ObjectStoragePath`` prefix (``<prefix>/<k[:2]>/<k>.json``)."""

    def __init__(self, uri: str) -> None:
        from pipeline_hub import storage

        self._storage = storage
        self.root = storage.to_path(uri)

    def _path(self, key: str):
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The JSON object of ``key``, or None when there is none."""
        path = self._path(key)
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Write ``value`` as the JSON object of ``key`` (not atomic: a concurrent writer of the key may win)."""
        self._storage.write_json(self._path(key), value, atomic=False)

    def keys(self) -> Iterator[str]:
        """Every stored key, from the ``<k[:2]>/<k>.json`` layout (a snapshot of one listing)."""
        if not self.root.exists():
            return iter(())
        found = [
            f.name[: -len(".json")]
            for d in self.root.iterdir()
            if d.is_dir() and len(d.name) == 2
            for f in d.iterdir()
            if f.name.endswith(".json") and f.name.startswith(d.name)
        ]
        return iter(sorted(found))

    def delete(self, key: str) -> bool:
        """Remove ``key``'s object; True when it was present."""
        path = self._path(key)
        if not path.exists():
            return False
        path.unlink()
        return True


def open_cache(spec: str | None = None) -> ResponseCache:
    """The backend named by ``spec`` (default ``PIPELINE_HUB_LLM_CACHE``, see module docstring).

    Raises ``ConfigError`` (a ``ValueError``) for an unknown spec.
    """
    spec = spec or get_settings().llm_cache or f"disk:{local_dir() / 'cache' / 'llm'}"
    if spec == "off":
        return NoCache()
    if spec.startswith("disk:"):
        return DiskCache(spec[len("disk:") :])
    if "://" in spec:
        return ObjectStoreCache(spec)
    raise ConfigError(f"PIPELINE_HUB_LLM_CACHE={spec!r}: expected 'disk:<dir>', an object-store URI or 'off'")
