"""Progress of a prompt chunk: a log line every ``PIPELINE_HUB_PROGRESS_INTERVAL_S`` seconds (default 10).

The prompt stage (:func:`pipeline_hub.stages.prompt.aprompt_records`) runs a :class:`ProgressReporter`
while its workers prompt records concurrently. Each line gives records done/total, the rate
(records/s), the ETA (s), records quarantined so far and LLM calls in flight, and one last line says
the chunk is done::

    prompt use_cases chunk 0: 120/500 records (24%), 11.8 records/s, ETA 32s, 3 quarantined, 8 calls in flight

Only counts and names: never record text. In Airflow the lines land in the prompt task's log. Listeners
(:func:`listening`) receive a :class:`Snapshot` after every record, e.g. the progress bar of
``pipeline-hub run`` on a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pipeline_hub.config import get_settings

log = logging.getLogger(__name__)

Listener = Callable[["Snapshot"], None]
_listeners: list[Listener] = []


@dataclass(frozen=True)
class Snapshot:
    """Where one chunk stands: records ``done`` of ``total``, ``quarantined`` so far, calls ``in_flight``.

    ``topic_total`` is the topic's record count over all its chunks (None when unknown); ``elapsed_s``
    the seconds since the chunk started; ``final`` is True for the snapshot of the finished chunk.
    """

    topic: str
    chunk_index: int | None
    done: int
    total: int
    quarantined: int
    in_flight: int
    elapsed_s: float
    topic_total: int | None = None
    final: bool = False

    @property
    def rate(self) -> float:
        """Records per second since the chunk started (0.0 before the first record)."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate; None while no record is done yet."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def line(self) -> str:
        """The log line of this snapshot (counts and names only)."""
        where = self.topic if self.chunk_index is None else f"{self.topic} chunk {self.chunk_index}"
        pct = 100 * self.done // self.total if self.total else 100
        eta = "done" if self.final else "ETA ?" if self.eta_s is None else f"ETA {self.eta_s:.0f}s"
        return (
            f"prompt {where}: {self.done}/{self.total} records ({pct}%), {self.rate:.1f} records/s, {eta}, "
            f"{self.quarantined} quarantined, {self.in_flight} calls in flight"
        )


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener(snapshot)`` after every record of every chunk prompted inside the ``with`` block.

    A listener that raises is dropped from that chunk with a warning; the run goes on.
    """
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


class ProgressReporter:
    """Counts one chunk's records and logs its progress every ``interval_s`` seconds while running.

    ``in_flight`` returns the LLM calls currently holding a concurrency slot
    (:attr:`pipeline_hub.providers.routing.RoutedSession.in_flight`). ``interval_s`` None: the setting
    ``PIPELINE_HUB_PROGRESS_INTERVAL_S``. Use ``async with reporter: …`` around the workers, and
    :meth:`advance` once per finished record.
    """

    def __init__(
        self,
        topic: str,
        total: int,
        *,
        chunk_index: int | None = None,
        topic_total: int | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.topic, self.total, self.chunk_index, self.topic_total = topic, total, chunk_index, topic_total
        self.interval_s = get_settings().progress_interval_s if interval_s is None else interval_s
        self.done = 0
        self.quarantined = 0
        self.lines = 0  # periodic lines logged so far
        self.in_flight: Callable[[], int] = lambda: 0
        self._started = time.monotonic()
        self._task: asyncio.Task | None = None
        self._listeners = list(_listeners)

    def snapshot(self, *, final: bool = False) -> Snapshot:
        """The chunk's counters now."""
        return Snapshot(
            topic=self.topic,
            chunk_index=self.chunk_index,
            done=self.done,
            total=self.total,
            quarantined=self.quarantined,
            in_flight=self.in_flight(),
            elapsed_s=time.monotonic() - self._started,
            topic_total=self.topic_total,
            final=final,
        )

    def advance(self, quarantined: bool = False) -> None:
        """Count one finished record (``quarantined`` when it did not end ``ok``) and tell the listeners."""
        self.done += 1
        self.quarantined += bool(quarantined)
        self._notify(self.snapshot())

    def _notify(self, snap: Snapshot) -> None:
        for listener in list(self._listeners):
            try:
                listener(snap)
            except Exception as exc:  # a display must never break a run
                log.warning("progress listener %r failed (%s): dropped", listener, type(exc).__name__)
                self._listeners.remove(listener)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            log.info(self.snapshot().line())
            self.lines += 1

    async def __aenter__(self) -> ProgressReporter:
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if exc[0] is None:
            final = self.snapshot(final=True)
            log.info(final.line())
            self._notify(final)
