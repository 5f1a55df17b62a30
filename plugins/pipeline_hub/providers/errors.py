"""Provider errors and how a failed request is described: one line naming the connection, never the request.

:class:`ProviderError` (refused or misconfigured: fix the connection), :class:`ProviderUnavailable`
(the circuit breaker tripped), :class:`CallFailed` (one request failed after its retries: a per-record
outcome), :class:`BudgetExhausted` (not sent: the spending gate said no). :func:`describe_failure` and
:func:`network_failure` put the last error in our own words (``HTTP 429``, ``timeout after 5s``,
``connection refused``, ``host name not resolved``, ``connection error (<kind>)``).
"""

from __future__ import annotations

import errno
import socket

import openai

from pipeline_hub.exceptions import ProviderError


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
