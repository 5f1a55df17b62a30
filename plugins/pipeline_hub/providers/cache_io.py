"""Response-cache I/O off the event loop: :class:`CacheIO`, one worker thread for one call session.

A disk-cache write is a SQLite transaction (about 125 us, spikes of 15-20 ms under disk contention), an
object-store write or read a network request. Done on the prompt stage's event loop, each one delays
every answer waiting to be read and every request waiting to be sent (benchmarks/RESULTS.md, fan-out).
Here they run on one thread (``concurrent.futures.ThreadPoolExecutor``); writes queued while the thread is
busy go to the cache together (the disk cache: one transaction, about 30 us an answer).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class CacheIO:
    """``cache``'s ``get`` and ``set`` for coroutines of one event loop, on one worker thread.

    :meth:`write` queues a write at once and returns what to await for it to be stored; a queued write is
    never cancelled (the awaiting task may be: the write still completes), and :meth:`close` waits for
    the queued ones. Writes queued while the thread is busy are stored together through the cache's
    ``set_many(items)`` when it has one (else ``set`` each), in queue order. :meth:`read` is ``cache.get``,
    on the loop itself when the cache says ``local_reads`` (microseconds: less than a trip to the thread).
    The cache must accept calls from another thread (``diskcache.Cache`` does, as do object stores).
    """

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="llm-cache")
        self._lock = threading.Lock()  # guards the open batch between the loop and the thread
        self._batch: list[tuple[str, dict[str, Any]]] | None = None  # queued, not yet taken by the thread
        self._batch_done: asyncio.Future | None = None

    async def read(self, key: str) -> dict[str, Any] | None:
        """``cache.get(key)``: the stored value or None."""
        if getattr(self.cache, "local_reads", False):
            return self.cache.get(key)
        return await asyncio.wrap_future(self._pool.submit(self.cache.get, key))

    def write(self, key: str, value: dict[str, Any]) -> Awaitable[None]:
        """Queue ``cache.set(key, value)``; await the result to know it is stored (it re-raises the cache's
        error). Call from a coroutine of the loop."""
        with self._lock:
            if self._batch is None:  # nothing waiting for the thread: open a batch and submit it
                self._batch = []
                self._batch_done = asyncio.wrap_future(self._pool.submit(self._store, self._batch))
            self._batch.append((key, value))
            done = self._batch_done
        return asyncio.shield(done)

    def _store(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """On the thread: close ``batch`` to new writes, then store it."""
        with self._lock:
            if self._batch is batch:
                self._batch = None
        set_many = getattr(self.cache, "set_many", None)
        if set_many is not None:
            set_many(batch)
        else:
            for key, value in batch:
                self.cache.set(key, value)

    def close(self) -> None:
        """Wait for every queued write, then stop the thread."""
        self._pool.shutdown(wait=True)
