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

import contextlib
import time
from collections.abc import Callable
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

from pipeline_hub.providers.errors import CallFailed, ProviderError, describe_failure
from pipeline_hub.providers.session import CallSession, Completion
from pipeline_hub.providers.structured import DIALECTS, response_format

RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


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
        """Requests in flight at once inside one task (extra ``max_concurrency``, default 4, at least 1)."""
        return max(1, int(self.extras.get("max_concurrency", 4)))

    @property
    def timeout(self) -> float:
        """Per-request timeout in seconds (extra ``timeout``, default 120)."""
        return float(self.extras.get("timeout", 120))

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt on retryable errors (extra ``max_retries``, default 4)."""
        return int(self.extras.get("max_retries", 4))

    @property
    def retry_backoff_s(self) -> float:
        """Base of the exponential backoff (s): retry n waits ``uniform(0, base × 2^n)``."""
        return float(self.extras.get("retry_backoff_s", 0.5))

    @property
    def retry_backoff_max_s(self) -> float:
        """Cap of one backoff wait in seconds (extra ``retry_backoff_max_s``, default 30)."""
        return float(self.extras.get("retry_backoff_max_s", 30))

    @property
    def breaker_consecutive(self) -> int:
        """Provider errors in a row that trip the circuit breaker (extra ``breaker_consecutive``, default 10; 0 off)."""
        return int(self.extras.get("breaker_consecutive", 10))

    @property
    def breaker_window(self) -> int:
        """Records sent over which the breaker's failure ratio is measured (extra ``breaker_window``, default
        20; 0 off)."""
        return int(self.extras.get("breaker_window", 20))

    @property
    def breaker_ratio(self) -> float:
        """Share of the window's records ending as provider errors that trips the breaker (extra ``breaker_ratio``,
        default 0.5)."""
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
        """The Airflow connection ``conn_id`` (looked up once)."""
        return self.get_connection(self.conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        """The connection's extras as a dict (see the module docstring for the keys understood)."""
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
        """The structured-output dialect (extra ``structured_output``, default ``json_schema``); raises
        :class:`~pipeline_hub.providers.errors.ProviderError` for a value outside
        :data:`~pipeline_hub.providers.structured.DIALECTS`."""
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
        return response_format(schema, name, self.dialect)

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
