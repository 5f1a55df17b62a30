"""``LLMHook``: the OpenAI-compatible chat hook used by the prompt stage.

It extends the Airflow OpenAI provider's ``OpenAIHook`` (connection type ``openai``: host = base URL,
password = API key), so the same connection form serves OpenAI, Azure OpenAI and any OpenAI-compatible
server (vLLM, llama.cpp, Ollama). Extras understood on the connection:

``model`` (required)
    Model name sent with every request (llama.cpp: the server's ``--model_alias``).
``structured_output``
    How to ask for schema-constrained JSON, the dialect of the server:
    ``json_schema`` (OpenAI Structured Outputs, ``{"type": "json_schema", "json_schema": {...}}``, default),
    ``json_object_schema`` (llama.cpp server: ``{"type": "json_object", "schema": {...}}``; it rejects the
    OpenAI form), or ``json_object`` (JSON mode only; the schema is enforced by our validation).
``max_concurrency`` (default 4)
    Requests in flight at once inside one task.
``requests_per_minute``, ``tokens_per_minute`` (default: unlimited)
    Proactive client-side rate limits (``aiolimiter`` leaky buckets) so we do not provoke 429s. They
    apply per task; an Airflow pool per connection bounds how many tasks run at once, so the account
    limit is respected when ``pool slots × limit per task ≤ account limit``. Requests are paced evenly
    at ``rate_limit_headroom`` (default 0.95) of the limit, never sent in bursts.
``timeout`` (seconds, default 120), ``max_retries`` (default 4)
    Per-request timeout and retries on 429/5xx/timeouts/connection errors.
``retry_backoff_s`` (default 0.5), ``retry_backoff_max_s`` (default 30)
    Backoff between retries: exponential with full jitter, ``uniform(0, retry_backoff_s × 2^n)`` capped
    at ``retry_backoff_max_s``, and never shorter than the server's ``Retry-After``.
``breaker_consecutive`` (default 10), ``breaker_window`` (default 20), ``breaker_ratio`` (default 0.5)
    The circuit breaker of a prompt task (:class:`CircuitBreaker`): the task stops sending and fails with
    :class:`ProviderUnavailable` after ``breaker_consecutive`` records in a row, or ``breaker_ratio`` of
    the last ``breaker_window`` records sent, ended as provider errors. 0 disables a rule.
``api_version`` (Azure OpenAI, deployment-style endpoints)
    When set, the client is ``AsyncAzureOpenAI``: host = the resource endpoint
    (``https://<resource>.openai.azure.com``), password = its API key (sent as ``api-key``), ``model`` =
    the deployment name, requests go to ``/openai/deployments/<model>/chat/completions?api-version=…``.
    Azure's v1 endpoint (host ``https://<resource>.openai.azure.com/openai/v1``) needs no ``api_version``:
    it is OpenAI-compatible and uses the plain client.

A request that still fails after the retries raises :class:`CallFailed`, whose message names the
connection, the model and the last failure, told apart as ``HTTP <status>`` (429, 5xx, other 4xx),
``timeout after <N>s``, ``connection refused`` (nothing listening), ``host name not resolved`` or
``connection error (<kind>)``; the prompt stage quarantines that record as ``provider_error``.

Sources: OpenAI Chat Completions API reference (``response_format``); llama.cpp server README
(``response_format`` with ``schema``); Azure OpenAI REST reference (deployments, ``api-version``) and
openai-python's ``AzureOpenAI`` client; Airflow OpenAI provider ``OpenAIHook``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx
import openai
from airflow.providers.openai.hooks.openai import OpenAIHook
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from pipeline_hub.exceptions import ProviderError

DIALECTS = ("json_schema", "json_object_schema", "json_object")
RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


class BudgetExhausted(ProviderError):
    """A call was not sent because the caller's spending gate said no (the budget cap is reached)."""


class ProviderUnavailable(ProviderError):
    """The circuit breaker tripped: most records of a chunk failed after their retries (the provider is down).

    One line naming the connection, the model, the counts and the last failure; raised by the prompt task
    so that Airflow's task retries (and the response cache, for the answers finished before) resume it.
    Attributes: ``conn_id``, ``model``, ``failed``, ``sent`` (records sent, in the breaker's count),
    ``last_failure``.
    """

    def __init__(self, conn_id: str, model: str, *, failed: int, sent: int, last_failure: str, kind: str = "LLM"):
        self.conn_id, self.model, self.failed, self.sent, self.last_failure = conn_id, model, failed, sent, last_failure
        super().__init__(
            f"{kind} connection '{conn_id}' (model {model}) looks unavailable: {failed} of the last {sent} records "
            f"sent failed after their retries (last failure: {last_failure}); stopped the chunk. Check the "
            "provider, then retry the task: answers received before the stop are cached and not paid again"
        )


class CallFailed(ProviderError):
    """One request still failed after the retry policy (a per-record outcome, not a task failure).

    ``failure`` is a short description of the last error, our own words, never the server's message
    nor the request (``HTTP 500``, ``HTTP 429``, ``HTTP 400``, ``timeout after 5s``, ``connection
    refused``, ``host name not resolved``, ``connection error (ServerDisconnectedError)``);
    ``retryable`` says whether the last error was one worth retrying (then a fallback route is tried).
    Attributes: ``conn_id``, ``model``, ``failure``, ``attempts``, ``retryable``, ``kind``.
    """

    def __init__(
        self, conn_id: str, model: str, failure: str, *, attempts: int, retryable: bool = True, kind: str = "LLM"
    ) -> None:
        self.conn_id, self.model, self.failure = conn_id, model, failure
        self.attempts, self.retryable, self.kind = attempts, retryable, kind
        super().__init__(
            f"{kind} connection '{conn_id}' model {model}: {failure} ({attempts} attempt{'s' if attempts != 1 else ''})"
        )


def causes(exc: BaseException | None):
    """``exc`` and every exception it was raised from or during (``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def network_failure(exc: BaseException, timeout_s: float) -> str | None:
    """The network-level cause of ``exc`` in our words, or None when none is found in its chain.

    Looks through the whole chain, because clients wrap socket errors: openai-python's aiohttp
    transport maps aiohttp's ``ClientConnectorError`` (also a refused connection) to
    ``httpx.ConnectTimeout`` and so to ``APITimeoutError``; botocore wraps urllib3's
    ``NewConnectionError`` in ``EndpointConnectionError``. The socket error underneath decides.
    """
    chain = list(causes(exc))
    for e in chain:
        if isinstance(e, ConnectionRefusedError) or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED):
            return "connection refused"
    for e in chain:
        if isinstance(e, socket.gaierror) or type(e).__name__ == "ClientConnectorDNSError":
            return "host name not resolved"
    for e in chain:
        if isinstance(e, ConnectionResetError | BrokenPipeError) or type(e).__name__ == "ServerDisconnectedError":
            return "connection closed by the server"
    for e in chain:
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:  # httpx2, aiohttp, openai, botocore
            return f"timeout after {timeout_s:g}s"
    return None


def describe_failure(exc: BaseException, timeout_s: float) -> str:
    """``exc`` (an openai-python error) as ``HTTP <status>``, a network failure or ``<error type>``."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    found = network_failure(exc, timeout_s)
    if found:
        return found
    deepest = list(causes(exc))[-1]
    return f"connection error ({type(deepest).__name__})"


class CircuitBreaker:
    """Counts the records of one prompt task that reached the provider, and trips when it looks down.

    ``record(failure)`` is called once per record sent (``failure`` None when it got an answer, else
    the :class:`CallFailed` it ended with); it raises :class:`ProviderUnavailable` when

    - the last ``consecutive`` records sent all ended as provider errors, or
    - at least ``ratio`` of the last ``window`` records sent did (checked once ``window`` were sent).

    Defaults (10, 20, 0.5) never trip on scattered failures (under 20 % failed attempts and 3 retries,
    a record fails with probability 0.2⁴ ≈ 0.2 %) and trip within a few seconds when every call fails.
    Records answered from the cache, or never sent (missing fields, budget), are not counted. 0 for
    ``consecutive`` or ``window`` disables that rule.
    """

    def __init__(self, consecutive: int = 10, window: int = 20, ratio: float = 0.5) -> None:
        self.consecutive, self.window, self.ratio = consecutive, window, ratio
        self.recent: collections.deque[bool] = collections.deque(maxlen=max(1, window))
        self.run = 0  # provider errors in a row
        self.tripped: ProviderUnavailable | None = None

    @classmethod
    def for_hook(cls, hook) -> CircuitBreaker:
        """A breaker with ``hook``'s thresholds (connection extras ``breaker_*``, see the module docstring)."""
        return cls(hook.breaker_consecutive, hook.breaker_window, hook.breaker_ratio)

    def record(self, failure: CallFailed | None) -> None:
        """Count one record sent; raise :class:`ProviderUnavailable` once tripped (also on later calls)."""
        if self.tripped is not None:
            raise self.tripped
        self.recent.append(failure is not None)
        self.run = self.run + 1 if failure is not None else 0
        if failure is None:
            return
        failed = sum(self.recent)
        by_run = self.consecutive > 0 and self.run >= self.consecutive
        by_ratio = self.window > 0 and len(self.recent) >= self.window and failed >= self.ratio * self.window
        if by_run or by_ratio:
            failed, sent = (failed, len(self.recent)) if by_ratio else (self.run, self.run)
            self.tripped = ProviderUnavailable(
                failure.conn_id,
                failure.model,
                failed=failed,
                sent=sent,
                last_failure=failure.failure,
                kind=failure.kind,
            )
            raise self.tripped


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

    def cacheable(self) -> dict[str, Any]:
        """What the response cache stores: the answer and its usage, not how this call got it."""
        return {k: v for k, v in self.__dict__.items() if k not in ("attempts", "cache_hit", "route")}


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE) or (isinstance(exc, openai.APIStatusError) and exc.status_code >= 500)


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a ``Retry-After`` header (RFC 9110 §10.2.3, delta-seconds form), if present."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class ChatHookMixin:
    """What every chat hook shares: model and limits from the connection's extras, the call session and
    the retry policy. A hook provides ``conn_id``, ``extras``, ``provider``, ``is_retryable``,
    ``get_async_client``, ``aclose`` and ``acomplete``; :class:`CallSession` needs nothing else.
    """

    kind = "LLM"  # how error messages name the connection
    model_override: str | None = None

    @property
    def model(self) -> str:
        """The topic's model override, else the connection's ``model`` extra."""
        model = self.model_override or self.extras.get("model")
        if not model:
            raise ProviderError(
                f"{self.kind} connection '{self.conn_id}': set the model in the connection extra 'model'"
            )
        return str(model)

    @property
    def max_concurrency(self) -> int:
        return max(1, int(self.extras.get("max_concurrency", 4)))

    @property
    def timeout(self) -> float:
        return float(self.extras.get("timeout", 120))

    @property
    def max_retries(self) -> int:
        return int(self.extras.get("max_retries", 4))

    @property
    def retry_backoff_s(self) -> float:
        """Base of the exponential backoff (s): retry n waits ``uniform(0, base × 2^n)``."""
        return float(self.extras.get("retry_backoff_s", 0.5))

    @property
    def retry_backoff_max_s(self) -> float:
        return float(self.extras.get("retry_backoff_max_s", 30))

    @property
    def breaker_consecutive(self) -> int:
        return int(self.extras.get("breaker_consecutive", 10))

    @property
    def breaker_window(self) -> int:
        return int(self.extras.get("breaker_window", 20))

    @property
    def breaker_ratio(self) -> float:
        return float(self.extras.get("breaker_ratio", 0.5))

    def call_failed(self, exc: BaseException, attempts: int, failure: str | None = None) -> CallFailed:
        """The :class:`CallFailed` for ``exc``, the last error of a request after ``attempts`` attempts."""
        return CallFailed(
            self.conn_id,
            self.model,
            failure or self.describe_failure(exc),
            attempts=attempts,
            retryable=self.is_retryable(exc),
            kind=self.kind,
        )

    def session(self, cache=None) -> CallSession:
        """A :class:`CallSession` for one task (one event loop); close it with ``async with``."""
        return CallSession(self, cache)

    def retrying(self, retry_after: Callable[[BaseException | None], float | None]) -> AsyncRetrying:
        """The retry policy: ``is_retryable`` errors, up to ``max_retries`` times, exponential backoff with full
        jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"), waiting at least ``retry_after(exc)``
        (the server's ``Retry-After``); the last error is re-raised when retries are exhausted. The base and
        cap of the backoff are the extras ``retry_backoff_s`` and ``retry_backoff_max_s``."""
        jitter = wait_random_exponential(multiplier=self.retry_backoff_s, max=self.retry_backoff_max_s)

        def wait(retry_state) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            return max(jitter(retry_state), retry_after(exc) or 0.0)

        return AsyncRetrying(
            retry=retry_if_exception(self.is_retryable),
            wait=wait,
            stop=stop_after_attempt(self.max_retries + 1),
            reraise=True,
        )


class LLMHook(ChatHookMixin, OpenAIHook):
    """Chat completions with structured JSON output over an ``openai`` connection (see module docstring)."""

    default_conn_name = "llm_default"
    hook_name = "LLM (OpenAI-compatible)"

    def __init__(self, conn_id: str = default_conn_name, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.model_override = model

    @cached_property
    def connection(self):
        return self.get_connection(self.conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        return dict(self.connection.extra_dejson or {})

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        """True for errors worth retrying (and, once retries are exhausted, worth a fallback)."""
        if isinstance(exc, CallFailed):
            return exc.retryable
        return _is_retryable(exc)

    def describe_failure(self, exc: BaseException) -> str:
        """``exc`` in our words: ``HTTP <status>``, ``timeout after <timeout>s``, ``connection refused``, …"""
        return describe_failure(exc, self.timeout)

    @property
    def dialect(self) -> str:
        dialect = self.extras.get("structured_output", "json_schema")
        if dialect not in DIALECTS:
            raise ProviderError(f"LLM connection '{self.conn_id}': extra 'structured_output' must be one of {DIALECTS}")
        return dialect

    @property
    def provider(self) -> str:
        """Where the connection points: its base URL without credentials (for manifests)."""
        return self.connection.host or "https://api.openai.com/v1"

    def response_format(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        """The ``response_format`` request field for ``schema`` in this connection's dialect.

        Annotation keywords (``$schema``, ``title``) are dropped: they are not part of what Structured
        Outputs constrains and some servers reject them.
        """
        schema = {k: v for k, v in schema.items() if k not in ("$schema", "title")}
        if self.dialect == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        if self.dialect == "json_object_schema":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_object"}

    def get_async_client(self) -> openai.AsyncOpenAI:
        """An ``AsyncOpenAI`` client for this connection (``AsyncAzureOpenAI`` when the extra ``api_version``
        is set); retries are ours (tenacity), so the client's are 0.

        Raises :class:`ProviderError` when ``api_version`` is set without a host (the Azure endpoint).
        """
        conn = self.connection
        client_kwargs = dict(self.extras.get("openai_client_kwargs", {}))
        base_url = client_kwargs.pop("base_url", None) or conn.host or None
        api_key = client_kwargs.pop("api_key", None) or conn.password or "no-key"
        # aiohttp as transport: openai-python's option "for improved concurrency performance"
        # (README, "With aiohttp"); on 2 cores it costs ~0.75 ms less CPU a request (benchmarks/RESULTS.md).
        client_kwargs.setdefault("http_client", openai.DefaultAioHttpClient(timeout=self.timeout))
        if api_version := self.extras.get("api_version"):
            if not base_url:
                raise ProviderError(
                    f"LLM connection '{self.conn_id}': extra 'api_version' (Azure OpenAI) needs the resource "
                    "endpoint as the connection host"
                )
            # The client routes chat completions to /openai/deployments/<model>/… and sends the key as api-key.
            return openai.AsyncAzureOpenAI(
                azure_endpoint=base_url,
                api_version=str(api_version),
                api_key=api_key,
                max_retries=0,
                timeout=self.timeout,
                **client_kwargs,
            )
        return openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=self.timeout, **client_kwargs
        )

    async def acomplete(
        self,
        client: openai.AsyncOpenAI,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any],
        schema_name: str,
        params: dict[str, Any] | None = None,
        slot: Callable[[], Any] = contextlib.nullcontext,
    ) -> Completion:
        """Send one chat completion asking for JSON matching ``schema``.

        ``slot()`` is entered around each attempt (the session's concurrency and rate limits).

        Retries 429, 5xx, timeouts and connection errors (:meth:`ChatHookMixin.retrying`), waiting at
        least ``Retry-After`` when the server sends it. Raises :class:`ProviderError` at once on
        401/403/404; :class:`CallFailed` (from the last error) when the retries are exhausted, and at
        once on other 4xx (the request itself cannot succeed, ``retryable`` False).
        """
        # The request goes through the client's raw ``post`` (openai-python README, "Undocumented
        # endpoints"): same URL, headers, auth, Azure routing and typed errors as
        # ``chat.completions.create``, without its per-call walk of the parameters' type annotations
        # over the whole request (messages and JSON Schema), about 3 ms of CPU a request, which capped
        # one task well below 160 requests/s on a 2-core worker (benchmarks/fanout.py).
        body = {
            **dict(params or {}),
            "model": self.model,
            "messages": messages,
            "response_format": self.response_format(schema, schema_name),
        }
        started = time.monotonic()
        attempts = 0
        try:
            async for attempt in self.retrying(_retry_after):
                with attempt:
                    attempts += 1
                    async with slot():
                        response = await client.post("/chat/completions", body=body, cast_to=httpx.Response)
        except FATAL as exc:
            raise ProviderError(
                f"LLM connection '{self.conn_id}' was refused with HTTP {exc.status_code} "
                f"({type(exc).__name__}); check its key, model and base URL"
            ) from None
        except openai.APIError as exc:
            raise self.call_failed(exc, attempts) from exc
        try:
            data = response.json()
        except ValueError:  # a 200 whose body is not JSON: an invalid answer, for validation to reject
            data = {"choices": [{"message": {"content": response.text}}]}
        usage = data.get("usage") or {}
        choices = data.get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content") or ""
        return Completion(
            content=content,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=time.monotonic() - started,
            attempts=attempts,
            model=self.model,
        )

    async def aclose(self, client: openai.AsyncOpenAI) -> None:
        """Close a client from :meth:`get_async_client`."""
        await client.close()


class CallSession:
    """One task's view of a connection: client, concurrency, rate limits, cache and in-flight dedup.

    Use ``async with hook.session(cache) as session: await session.complete(...)``. Identical requests
    (same cache key) issued concurrently are sent once; answers are written to ``cache`` as they
    arrive, so a retried task does not pay again for what it already finished.
    """

    def __init__(self, hook: LLMHook, cache=None) -> None:
        from aiolimiter import AsyncLimiter

        from pipeline_hub.providers.cache import NoCache

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

    async def __aenter__(self) -> CallSession:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.hook.aclose(self.client)

    def key(self, messages: list[dict[str, str]], *, schema: dict[str, Any], params: dict[str, Any]) -> str:
        """The response-cache key of this request on this session's provider and model."""
        from pipeline_hub.providers.cache import cache_key

        return cache_key(
            provider=self.hook.provider, model=self.hook.model, params=params, messages=messages, schema=schema
        )

    def store(
        self, messages: list[dict[str, str]], completion: Completion, *, schema: dict[str, Any], params: dict[str, Any]
    ) -> None:
        """Cache ``completion`` (e.g. a batch job's answer) under this request's key."""
        self.cache.set(self.key(messages, schema=schema, params=params), completion.cacheable())

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any],
        schema_name: str,
        params: dict[str, Any],
        gate: Callable[[], bool] | None = None,
    ) -> Completion:
        """A :class:`Completion` from the cache, from an identical in-flight request, or from the provider.

        Every attempt (first call and retries) waits for a concurrency slot and the rate limits, and
        gives its slot back while it backs off. ``gate`` is asked right before the first paid attempt;
        when it returns False, :class:`BudgetExhausted` is raised instead of calling.
        """
        hook = self.hook
        key = self.key(messages, schema=schema, params=params)
        if (hit := self.cache.get(key)) is not None:
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
                yield

        try:
            completion = await hook.acomplete(
                self.client, messages, schema=schema, schema_name=schema_name, params=params, slot=slot
            )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        self.cache.set(key, completion.cacheable())
        future.set_result(completion)
        return completion
