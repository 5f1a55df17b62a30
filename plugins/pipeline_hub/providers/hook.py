"""``LLMHook``: the OpenAI-compatible chat hook used by the prompt stage.

It extends the Airflow OpenAI provider's ``OpenAIHook`` (connection type ``openai``: host = base URL,
password = API key), so the same connection form serves OpenAI, Azure OpenAI's v1 endpoint and any
OpenAI-compatible server (vLLM, llama.cpp, Ollama). Extras understood on the connection:

``model`` (required)
    Model name sent with every request (llama.cpp: the server's ``--model_alias``).
``structured_output``
    How to ask for schema-constrained JSON, the dialect of the server:
    ``json_schema`` (OpenAI Structured Outputs, ``{"type": "json_schema", "json_schema": {...}}``, default),
    ``json_object_schema`` (llama.cpp server: ``{"type": "json_object", "schema": {...}}``; it rejects the
    OpenAI form), or ``json_object`` (JSON mode only; the schema is enforced by our validation).
``max_concurrency`` (default 4)
    Requests in flight at once inside one task.
``timeout`` (seconds, default 120), ``max_retries`` (default 4)
    Per-request timeout and retries on 429/5xx/timeouts/connection errors.

Sources: OpenAI Chat Completions API reference (``response_format``); llama.cpp server README
(``response_format`` with ``schema``); Airflow OpenAI provider ``OpenAIHook``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import openai
from airflow.providers.openai.hooks.openai import OpenAIHook
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

DIALECTS = ("json_schema", "json_object_schema", "json_object")
RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


class ProviderError(RuntimeError):
    """The provider refused in a way retrying cannot fix (401, 403, 404) or is misconfigured.

    The message names the Airflow connection, never the request content.
    """


@dataclass
class Completion:
    """One successful chat completion: raw ``content`` text, token usage, latency (s), attempts made."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int


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


class LLMHook(OpenAIHook):
    """Chat completions with structured JSON output over an ``openai`` connection (see module docstring)."""

    default_conn_name = "llm_default"
    hook_name = "LLM (OpenAI-compatible)"

    def __init__(self, conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, **kwargs)

    @cached_property
    def connection(self):
        return self.get_connection(self.conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        return dict(self.connection.extra_dejson or {})

    @property
    def model(self) -> str:
        model = self.extras.get("model")
        if not model:
            raise ProviderError(f"LLM connection '{self.conn_id}': set the model in the connection extra 'model'")
        return str(model)

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

    @property
    def max_concurrency(self) -> int:
        return max(1, int(self.extras.get("max_concurrency", 4)))

    @property
    def timeout(self) -> float:
        return float(self.extras.get("timeout", 120))

    @property
    def max_retries(self) -> int:
        return int(self.extras.get("max_retries", 4))

    def response_format(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        """The ``response_format`` request field for ``schema`` in this connection's dialect."""
        if self.dialect == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        if self.dialect == "json_object_schema":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_object"}

    def get_async_client(self) -> openai.AsyncOpenAI:
        """An ``AsyncOpenAI`` client for this connection; retries are ours (tenacity), so the client's are 0."""
        conn = self.connection
        client_kwargs = dict(self.extras.get("openai_client_kwargs", {}))
        base_url = client_kwargs.pop("base_url", None) or conn.host or None
        api_key = client_kwargs.pop("api_key", None) or conn.password or "no-key"
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
    ) -> Completion:
        """Send one chat completion asking for JSON matching ``schema``.

        Retries 429, 5xx, timeouts and connection errors with exponential backoff and full jitter
        (AWS Architecture Blog, "Exponential Backoff and Jitter"), waiting at least ``Retry-After``
        when the server sends it. Raises :class:`ProviderError` at once on 401/403/404, and
        ``openai.BadRequestError`` on other 4xx (the request itself cannot succeed); re-raises the
        last error when retries are exhausted.
        """
        params = dict(params or {})
        jitter = wait_random_exponential(multiplier=0.5, max=30)

        def wait(retry_state) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            return max(jitter(retry_state), _retry_after(exc) or 0.0)

        started = time.monotonic()
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_is_retryable),
                wait=wait,
                stop=stop_after_attempt(self.max_retries + 1),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    response = await client.chat.completions.create(
                        model=self.model,
                        messages=messages,
                        response_format=self.response_format(schema, schema_name),
                        **params,
                    )
        except FATAL as exc:
            raise ProviderError(
                f"LLM connection '{self.conn_id}' was refused with HTTP {exc.status_code} "
                f"({type(exc).__name__}); check its key, model and base URL"
            ) from None
        usage = response.usage
        content = response.choices[0].message.content or ""
        return Completion(
            content=content,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=time.monotonic() - started,
            attempts=attempts,
        )
