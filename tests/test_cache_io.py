"""CacheIO: response-cache writes on a worker thread, grouped, never lost to a cancelled task."""

from __future__ import annotations

import asyncio
import threading

from pipeline_hub.providers.cache import DiskCache
from pipeline_hub.providers.cache_io import CacheIO


class GatedCache:
    """A cache whose first ``set_many`` waits for ``release``; records each batch it stores."""

    local_reads = False

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}
        self.batches: list[list[str]] = []
        self.started, self.release = threading.Event(), threading.Event()
        self.threads: set[str] = set()

    def get(self, key):
        self.threads.add(threading.current_thread().name)
        return self.data.get(key)

    def set_many(self, items):
        self.threads.add(threading.current_thread().name)
        self.started.set()
        if not self.batches:
            self.release.wait(5)
        self.batches.append([k for k, _ in items])
        self.data.update(items)


def test_writes_queued_while_the_thread_is_busy_are_stored_together_in_order():
    cache = GatedCache()
    io = CacheIO(cache)

    async def main():
        first = io.write("k0", {"v": 0})
        await asyncio.to_thread(cache.started.wait, 5)  # the thread now holds the first batch
        rest = [io.write(f"k{i}", {"v": i}) for i in range(1, 6)]
        cache.release.set()
        await asyncio.gather(first, *rest)
        return await io.read("k3")

    assert asyncio.run(main()) == {"v": 3}
    io.close()
    assert cache.batches == [["k0"], ["k1", "k2", "k3", "k4", "k5"]]
    assert cache.threads and not any(name == threading.main_thread().name for name in cache.threads)


def test_a_write_whose_task_is_cancelled_is_still_stored(tmp_path):
    cache = GatedCache()
    io = CacheIO(cache)

    async def main():
        task = asyncio.create_task(_write_and_wait(io))
        await asyncio.to_thread(cache.started.wait, 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        cache.release.set()

    asyncio.run(main())
    io.close()  # waits for the queued write
    assert cache.data == {"paid": {"answer": 1}}


async def _write_and_wait(io: CacheIO) -> None:
    await io.write("paid", {"answer": 1})


def test_disk_cache_set_many_stores_every_item(tmp_path):
    cache = DiskCache(str(tmp_path / "c"))
    cache.set_many([("a", {"x": 1}), ("b", {"x": 2})])
    assert cache.get("a") == {"x": 1} and cache.get("b") == {"x": 2}
    assert sorted(cache.keys()) == ["a", "b"]
