"""``BedrockLLMHook``: the prompt stage's chat interface over Amazon Bedrock's Converse API.

It extends the amazon provider's ``BedrockRuntimeHook`` (an ``aws`` connection: keys, role or profile,
``region_name``, optional ``endpoint_url``), and offers the same interface as
:class:`~pipeline_hub.providers.hook.LLMHook` (``model``, ``provider``, ``session``, ``acomplete``,
``is_retryable``), so the connection alone decides the provider. Extras read from the connection, besides
the amazon provider's own: ``model`` (a Bedrock model or inference-profile id, required),
``max_concurrency``, ``requests_per_minute``, ``tokens_per_minute``, ``rate_limit_headroom``, ``timeout``,
``max_retries``, ``retry_backoff_s``, ``retry_backoff_max_s`` and the circuit breaker's ``breaker_*``
(as for ``LLMHook``).

A request that still fails after the retries raises :class:`~pipeline_hub.providers.errors.CallFailed`
naming the connection, the model and the last failure: ``HTTP <status> <error code>`` (e.g. ``HTTP 429
ThrottlingException``, ``HTTP 500 InternalServerException``), ``timeout after <N>s`` (read), ``connect
timeout after <N>s``, ``connection refused`` (nothing listening at the endpoint) or ``connection error
(<botocore error>)``. Missing credentials or region are a :class:`ProviderError` at once.

Structured output uses Converse tool use: the output schema becomes the one tool's ``inputSchema`` and
``toolChoice`` forces the model to call it, so the answer is the tool call's ``input``. A model that
answers in text instead is passed through as text, and our validation and repair retry handle it.

boto3 is synchronous: calls run on a thread pool sized to ``max_concurrency`` with botocore's own
retries off, so the tenacity policy (backoff with full jitter) is the only one, as with ``LLMHook``.

Sources: Amazon Bedrock API reference, "Converse" (messages, ``system``, ``inferenceConfig``,
``toolConfig``, errors); Bedrock user guide, "Call a tool with the Converse API"; botocore "Retries"
guide (``total_max_attempts`` counts the first attempt; ``max_attempts`` does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.bedrock import BedrockRuntimeHook
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline_hub.providers.errors import CallFailed, ProviderError, network_failure
from pipeline_hub.providers.hook import ChatHookMixin
from pipeline_hub.providers.session import Completion

RETRYABLE_CODES = {
    "ThrottlingException",
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelNotReadyException",
    "ModelTimeoutException",
}
FATAL_STATUS = {401, 403, 404}


def _status(exc: BaseException) -> int | None:
    return (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(exc: BaseException) -> str:
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")


def _boto_retry_after(exc: BaseException | None) -> float | None:
    headers = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def converse_messages(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Chat ``messages`` (``{"role", "content"}``) as Converse ``(system, messages)`` blocks."""
    system = [{"text": m["content"]} for m in messages if m["role"] == "system"]
    turns = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in messages if m["role"] != "system"]
    return system, turns


def inference_config(params: dict[str, Any]) -> dict[str, Any]:
    """OpenAI-style generation ``params`` as Converse ``inferenceConfig`` (maxTokens, temperature, topP)."""
    names = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP", "stop": "stopSequences"}
    return {names[k]: v for k, v in params.items() if k in names and v is not None}


class BedrockLLMHook(ChatHookMixin, BedrockRuntimeHook):
    """Chat completions with structured JSON output over an ``aws`` connection (see module docstring)."""

    kind = "Bedrock"

    def __init__(self, conn_id: str = "aws_default", model: str | None = None, **kwargs: Any) -> None:
        self.conn_id = conn_id
        self.model_override = model
        super().__init__(aws_conn_id=conn_id, **kwargs)

    @cached_property
    def extras(self) -> dict[str, Any]:
        """The connection's extras (``model``, ``region_name``, ``endpoint_url``, limits; see module docstring)."""
        return dict(self.get_connection(self.conn_id).extra_dejson or {})

    @property
    def provider(self) -> str:
        """Where calls go, for cache keys and manifests: the endpoint URL, else ``bedrock:<region>``."""
        return self.extras.get("endpoint_url") or f"bedrock:{self.extras.get('region_name', 'default')}"

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        """Throttling, 5xx, model timeouts, read timeouts and connection errors."""
        if isinstance(exc, CallFailed):
            return exc.retryable
        if isinstance(exc, (ReadTimeoutError, BotoConnectionError)):
            return True
        if isinstance(exc, ClientError):
            status = _status(exc) or 0
            return _code(exc) in RETRYABLE_CODES or status == 429 or status >= 500
        return False

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for a connection: the request timeout, at most 10."""
        return min(10.0, self.timeout)

    def describe_failure(self, exc: BaseException) -> str:
        """``exc`` (a botocore error) in our words; see the module docstring for the forms."""
        if isinstance(exc, ClientError):
            return f"HTTP {_status(exc) or '?'} {_code(exc)}".rstrip()
        if isinstance(exc, ConnectTimeoutError):
            return f"connect timeout after {self.connect_timeout:g}s"
        if isinstance(exc, ReadTimeoutError):
            return f"timeout after {self.timeout:g}s"
        return network_failure(exc, self.timeout) or f"connection error ({type(exc).__name__})"

    def get_async_client(self):
        """``(boto3 bedrock-runtime client, executor)``; botocore's retries are off (ours are tenacity's)."""
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            read_timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            max_pool_connections=self.max_concurrency,
        )
        client = self.get_client_type(region_name=self.extras.get("region_name"), config=config)
        return client, ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="bedrock")

    async def aclose(self, client) -> None:
        """Close a client from :meth:`get_async_client`."""
        boto_client, executor = client
        executor.shutdown(wait=False)
        boto_client.close()

    async def acomplete(
        self,
        client,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any],
        schema_name: str,
        params: dict[str, Any] | None = None,
        slot: Callable[[], Any] = contextlib.nullcontext,
    ) -> Completion:
        """Send one Converse request forcing the tool ``schema_name`` whose input schema is ``schema``.

        ``slot()`` is entered around each attempt (the session's concurrency and rate limits).

        Retries as :meth:`is_retryable` says, with exponential backoff and full jitter; raises
        :class:`ProviderError` naming the connection on 401/403/404 and on missing credentials or region,
        and :class:`~pipeline_hub.providers.errors.CallFailed` when the retries are exhausted or at once on
        other 4xx (e.g. ``ValidationException``: the request itself cannot succeed).
        """
        boto_client, executor = client
        schema = {k: v for k, v in schema.items() if k not in ("$schema", "title")}
        system, turns = converse_messages(messages)
        request: dict[str, Any] = {
            "modelId": self.model,
            "messages": turns,
            "inferenceConfig": inference_config(dict(params or {})),
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": schema_name,
                            "description": "Record the answer. Call this tool exactly once.",
                            "inputSchema": {"json": schema},
                        }
                    }
                ],
                "toolChoice": {"tool": {"name": schema_name}},
            },
        }
        if system:
            request["system"] = system
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        attempts = 0
        try:
            async for attempt in self.retrying(_boto_retry_after):
                with attempt:
                    attempts += 1
                    async with slot():
                        response = await loop.run_in_executor(executor, lambda: boto_client.converse(**request))
        except ClientError as exc:
            if _status(exc) in FATAL_STATUS:
                raise ProviderError(
                    f"Bedrock connection '{self.conn_id}' was refused with HTTP {_status(exc)} ({_code(exc)}); "
                    "check its credentials, region, model access and model id"
                ) from None
            raise self.call_failed(exc, attempts) from exc
        except (NoCredentialsError, PartialCredentialsError, NoRegionError) as exc:
            raise ProviderError(
                f"Bedrock connection '{self.conn_id}': {type(exc).__name__}; set its keys, role or profile and "
                "the extra 'region_name'"
            ) from None
        except BotoCoreError as exc:
            raise self.call_failed(exc, attempts) from exc
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        tool = next((b["toolUse"] for b in blocks if "toolUse" in b), None)
        content = json.dumps(tool["input"]) if tool else "".join(b.get("text", "") for b in blocks)
        usage = response.get("usage", {})
        return Completion(
            content=content,
            prompt_tokens=int(usage.get("inputTokens", 0)),
            completion_tokens=int(usage.get("outputTokens", 0)),
            latency_s=time.monotonic() - started,
            attempts=attempts,
            model=self.model,
        )
