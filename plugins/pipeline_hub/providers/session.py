"""One task's calls to a chat hook: :class:`CallSession` (client, concurrency, rate limits, response cache,
in-flight dedup) and the :class:`Completion` it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline_hub.providers.errors import BudgetExhausted

if TYPE_CHECKING:
    from pipeline_hub.providers.hook import LLMHook


@dataclass
class Completion:
    """One successful chat completion: raw ``content`` text, token usage, latency (s), attempts made."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int
    cache_hit: bool = False
    model: str = ""
    route: str = "primary"  # set by the router: primary | long_input | fallback
    cost_usd: float | None = None  # what the caller charged for it on arrival (``paid``), None: not charged yet

    def cacheable(self) -> dict[str, Any]:
        """What the response cache stores: the answer and its usage, not how this call got it."""
        return {k: v for k, v in self.__dict__.items() if k not in ("attempts", "cache_hit", "route", "cost_usd")}


class CallSession:
    """One task's view of a connection: client, concurrency, rate limits, cache and in-flight dedup.

    Use ``async with hook.session(cache) as session: await session.complete(...)``. Identical requests
    (same cache key) issued concurrently are sent once; answers are written to ``cache`` as they
    arrive, so a retried task does not pay again for what it already finished.

    Cache writes, and the reads of a cache without ``local_reads`` (an object store), run on the session's
    cache thread (:class:`~pipeline_hub.providers.cache_io.CacheIO`), not on the event loop: while one
    answer is stored, the loop already reads the next and sends the next request. :meth:`complete` still
    returns only once its answer is stored, and leaving the session waits for every queued write.
    """

    def __init__(self, hook: LLMHook, cache=None) -> None:
        from aiolimiter import AsyncLimiter

        from pipeline_hub.providers.cache import NoCache
        from pipeline_hub.providers.cache_io import CacheIO

        self.hook = hook
        self.cache = cache or NoCache()
        self.client = hook.get_async_client()
        self.semaphore = asyncio.Semaphore(hook.max_concurrency)
        headroom = float(hook.extras.get("rate_limit_headroom", 0.95))
        rpm = hook.extras.get("requests_per_minute")
        tpm = hook.extras.get("tokens_per_minute")
        # Requests are paced one at a time (bucket capacity 1), never in bursts: a provider counting
        # requests in a sliding 60 s window then never sees more than the limit, even right after
        # start-up when a full bucket would otherwise let a burst through on top of the steady rate.
        # ``headroom`` (default 95 %) absorbs network jitter between our clock and theirs.
        self.rpm = AsyncLimiter(1, 60.0 / (float(rpm) * headroom)) if rpm else None
        # Tokens: a bucket holding one second's worth, refilled continuously.
        self.tpm = AsyncLimiter(float(tpm) * headroom / 60.0, 1.0) if tpm else None
        self._inflight: dict[str, asyncio.Future] = {}
        self.in_flight = 0  # attempts holding a concurrency slot right now (progress lines)
        self._io = None if isinstance(self.cache, NoCache) else CacheIO(self.cache)

    async def __aenter__(self) -> CallSession:
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self.hook.aclose(self.client)
        finally:
            if self._io is not None:
                self._io.close()  # every answer queued for the cache is in it

    def key(self, messages: list[dict[str, str]], *, schema: dict[str, Any], params: dict[str, Any]) -> str:
        """The response-cache key of this request on this session's provider and model."""
        from pipeline_hub.providers.cache import cache_key

        return cache_key(
            provider=self.hook.provider, model=self.hook.model, params=params, messages=messages, schema=schema
        )

    async def store(
        self, messages: list[dict[str, str]], completion: Completion, *, schema: dict[str, Any], params: dict[str, Any]
    ) -> None:
        """Cache ``completion`` (e.g. a batch job's answer) under this request's key; returns once it is stored."""
        if self._io is not None:
            await self._io.write(self.key(messages, schema=schema, params=params), completion.cacheable())

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any],
        schema_name: str,
        params: dict[str, Any],
        gate: Callable[[], bool] | None = None,
        paid: Callable[[Completion], Any] | None = None,
    ) -> Completion:
        """A :class:`Completion` from the cache, from an identical in-flight request, or from the provider.

        Every attempt (first call and retries) waits for a concurrency slot and the rate limits, and
        gives its slot back while it backs off. ``gate`` is asked right before the first paid attempt;
        when it returns False, :class:`BudgetExhausted` is raised instead of calling. ``paid`` is called
        with a provider's answer as soon as it arrives, before the cache write lets other requests run
        (the budget charges it there, so the next request's ``gate`` already counts it).
        """
        hook = self.hook
        key = self.key(messages, schema=schema, params=params)
        if self._io is not None and (hit := await self._io.read(key)) is not None:
            return Completion(**{"model": hook.model, **hit, "attempts": 0, "cache_hit": True})
        if key in self._inflight:
            shared = await asyncio.shield(self._inflight[key])
            return Completion(**{**shared.cacheable(), "attempts": 0, "cache_hit": True})
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        first = True

        @contextlib.asynccontextmanager
        async def slot():
            # Held for one attempt only: a request backing off between retries frees its slot.
            nonlocal first
            async with self.semaphore:
                if first and gate is not None and not gate():
                    raise BudgetExhausted("spending gate closed")
                first = False
                if self.rpm:
                    await self.rpm.acquire()
                if self.tpm:
                    chars = sum(len(m.get("content") or "") for m in messages)
                    estimate = chars / 4 + float(params.get("max_tokens") or 256)
                    await self.tpm.acquire(min(estimate, self.tpm.max_rate))
                self.in_flight += 1
                try:
                    yield
                finally:
                    self.in_flight -= 1

        try:
            completion = await hook.acomplete(
                self.client, messages, schema=schema, schema_name=schema_name, params=params, slot=slot
            )
        except BaseException as exc:
            self._inflight.pop(key, None)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        # The key stays in flight until the answer is stored: an identical request meanwhile shares it.
        try:
            stored = self._io.write(key, completion.cacheable()) if self._io is not None else None
            if paid is not None:  # before anything else runs: the next request's gate sees the charge
                paid(completion)
            if stored is not None:
                await stored
        finally:  # waiters get the answer even if this task is cancelled while it is stored
            self._inflight.pop(key, None)
            future.set_result(completion)
        return completion
