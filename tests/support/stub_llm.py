"""A small OpenAI-compatible chat-completions server for tests and benchmarks, over real HTTP.

It answers ``POST /v1/chat/completions`` (non-streaming) with a schema-valid JSON instance generated
from the request's structured-output schema, in either dialect: OpenAI's
``{"type": "json_schema", "json_schema": {"schema": …}}`` or llama.cpp's
``{"type": "json_object", "schema": …}``. Faults (429 with ``Retry-After``, 500, malformed JSON,
timeouts, a fixed status such as 401) and latency are injected on demand so the provider layer is
tested against real HTTP behaviour, never by patching the client: at seeded rates (``FaultPlan``), as
a fixed sequence of first outcomes, or per request (``fault_for``, e.g. keyed on a record's content).
Malformed answers come in two kinds: ``malformed`` (not JSON: the answer cut in half) and
``wrong_schema`` (valid JSON that fails the output schema). A refused connection needs no stub: use
:func:`closed_port` (a port on 127.0.0.1 nothing listens on).

Azure OpenAI's deployment-style route is served too (``POST /openai/deployments/{deployment}/chat/completions
?api-version=…`` with an ``api-key`` header), recorded in ``azure_calls``.

It also speaks two neighbouring dialects with the same answers and faults: Amazon Bedrock's Converse
API (``POST /model/{modelId}/converse``, for the Bedrock hook) and OpenAI's Batch API (``/v1/files``,
``/v1/batches``, for the common-ai ``LLMBatchOperator``).

Sources: OpenAI API reference, "Create chat completion" (request/response and error shapes);
llama.cpp ``tools/server/README.md`` (``response_format`` with ``schema``).

Run standalone: ``PYTHONPATH=tests python -m support.stub_llm --port 8765 --latency 0.2``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from .stub_answers import instance_for, schema_of
from .stub_faults import OUTCOMES, FaultPlan, closed_port
from .stub_http import Reply, StubBatches, StubHandler, StubHTTPServer, openai_error

__all__ = ["OUTCOMES", "FaultPlan", "Reply", "StubBatches", "StubLLMServer", "closed_port", "instance_for", "schema_of"]

Responder = Callable[[dict[str, Any]], "str | dict | None"]


class StubLLMServer:
    """OpenAI-compatible stub on ``host:port`` (port 0 picks a free one); see the module docstring.

    Attributes for assertions: ``calls`` (chat requests received), ``calls_by_status`` (Counter of
    HTTP statuses sent), ``requests`` (parsed request bodies). ``responder`` may override answers:
    ``responder(body) -> str | dict | None`` (None falls back to the schema-generated instance).
    ``rpm_limit`` answers 429 beyond that many requests in any 60 s window. ``fault_for(body) -> str |
    None`` picks the outcome of one request (one of :data:`OUTCOMES` or an HTTP status such as ``"500"``)
    before the fault plan is consulted, e.g. ``lambda b: "500" if "ACME" in str(b["messages"]) else None``
    makes every call about one record fail.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_s: float = 0.0,
        fault_plan: FaultPlan | None = None,
        responder: Responder | None = None,
        fault_for: Callable[[dict[str, Any]], str | None] | None = None,
        rpm_limit: int | None = None,
        model: str = "stub-model",
    ) -> None:
        self.host, self.port = host, port
        self.latency_s = latency_s
        self.rpm_limit = rpm_limit
        self.model = model
        self._lock = threading.Lock()
        self._server: StubHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()
        self.fault_plan = fault_plan or FaultPlan()
        self.responder = responder
        self.fault_for = fault_for

    def reset(self) -> None:
        """Zero the counters, drop recorded requests, clear responder, ``fault_for`` and faults."""
        with self._lock:
            self.calls = 0
            self.calls_by_status: Counter = Counter()
            self.requests: list[dict[str, Any]] = []
            self.azure_calls: list[dict[str, str]] = []
            self._window: deque[float] = deque()
            self.batches = StubBatches(self)
        self.responder = None
        self.fault_for = None
        self.fault_plan = FaultPlan()

    @property
    def fault_plan(self) -> FaultPlan:
        return self._fault_plan

    @fault_plan.setter
    def fault_plan(self, plan: FaultPlan) -> None:
        """Setting a plan also reseeds its random draws, so a run is reproducible from ``plan.seed``."""
        self._fault_plan = plan
        self._rng = random.Random(plan.seed)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> StubLLMServer:
        handler = type("Handler", (StubHandler,), {"stub": self})
        self._server = StubHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _outcome(self, body: dict[str, Any]) -> str:
        """Decide this call's outcome: one of :data:`OUTCOMES`, ``rate_limited``, ``status`` or an HTTP status."""
        plan = self.fault_plan
        chosen = self.fault_for(body) if self.fault_for is not None else None
        with self._lock:
            index = self.calls
            self.calls += 1
            now = time.monotonic()
            if self.rpm_limit is not None:
                while self._window and now - self._window[0] >= 60:
                    self._window.popleft()
                if len(self._window) >= self.rpm_limit:
                    return "rate_limited"
                self._window.append(now)
            if chosen is not None:
                return chosen
            if plan.always_status:
                return "status"
            if plan.sequence and index < len(plan.sequence):
                return plan.sequence[index]
            roll = self._rng.random()
        for name, rate in (
            ("429", plan.rate_429),
            ("500", plan.rate_500),
            ("malformed", plan.rate_malformed),
            ("wrong_schema", plan.rate_wrong_schema),
            ("timeout", plan.rate_timeout),
        ):
            if roll < rate:
                return name
            roll -= rate
        return "ok"

    def _fault(self, outcome: str) -> tuple[int, str, str, dict[str, str]] | None:
        """``(status, message, kind, headers)`` of an injected failure, None when the call goes ahead."""
        plan = self.fault_plan
        retry = {"Retry-After": f"{plan.retry_after_s:g}"} if plan.retry_after_s is not None else {}
        if outcome == "status":
            return plan.always_status, "refused by stub", "authentication_error", {}
        if outcome in ("429", "rate_limited"):
            headers = retry or ({"Retry-After": "1"} if outcome == "rate_limited" else {})
            return 429, "rate limit reached", "rate_limit_error", headers
        if outcome == "500":
            return 500, "internal error", "server_error", {}
        if outcome.isdigit():  # any other status named in a sequence, e.g. "401"
            return int(outcome), "refused by stub", "invalid_request_error", {}
        return None

    def _begin(self, body: dict[str, Any]) -> str:
        """Record the request, pick its outcome, wait the latency (and the timeout, if injected)."""
        with self._lock:
            self.requests.append(body)
        outcome = self._outcome(body)
        if self.latency_s:
            time.sleep(self.latency_s)
        if outcome == "timeout":
            time.sleep(self.fault_plan.timeout_sleep_s)
        return outcome

    def chat(self, body: dict[str, Any]) -> Reply:
        """``POST /v1/chat/completions``: ``(status, payload, headers)`` in OpenAI's shapes."""
        outcome = self._begin(body)
        if fault := self._fault(outcome):
            status, message, kind, headers = fault
            return openai_error(status, message, kind, headers)
        content = self.answer(body, outcome)
        prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        usage = {"prompt_tokens": len(prompt_text) // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        payload = {
            "id": f"chatcmpl-stub-{self.calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage,
        }
        return 200, payload, {}

    def converse(self, model: str, body: dict[str, Any]) -> Reply:
        """``POST /model/{modelId}/converse`` (Amazon Bedrock Converse API): the answer comes back as the
        forced tool's ``toolUse.input``; a malformed answer comes back as a plain text block instead.
        Errors carry ``x-amzn-ErrorType`` as Bedrock's do (ThrottlingException, InternalServerException,
        AccessDeniedException, ValidationException).

        Source: Amazon Bedrock API reference, "Converse" (request/response, errors).
        """
        texts = [
            {"role": m["role"], "content": "".join(c.get("text", "") for c in m.get("content", []))}
            for m in body.get("messages", [])
        ]
        tools = (body.get("toolConfig") or {}).get("tools") or [{}]
        spec = tools[0].get("toolSpec") or {}
        schema = (spec.get("inputSchema") or {}).get("json")
        chat_like = {"model": model, "messages": texts}
        if schema:
            chat_like["response_format"] = {"type": "json_object", "schema": schema}
        outcome = self._begin(chat_like)
        if fault := self._fault(outcome):
            status, message, _, headers = fault
            kind = {
                429: "ThrottlingException",
                500: "InternalServerException",
                401: "UnrecognizedClientException",
                403: "AccessDeniedException",
                404: "ResourceNotFoundException",
            }.get(status, "ValidationException")
            return status, {"message": message}, {**headers, "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/"}
        content = self.answer(chat_like, outcome)
        if outcome == "malformed" or not schema:
            block = {"text": content}
        else:
            block = {
                "toolUse": {
                    "toolUseId": f"tooluse_{self.calls}",
                    "name": spec.get("name"),
                    "input": json.loads(content),
                }
            }
        prompt_chars = sum(len(m["content"]) for m in texts)
        usage = {"inputTokens": prompt_chars // 4 + 1, "outputTokens": len(content) // 4 + 1}
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        payload = {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": "tool_use" if "toolUse" in block else "end_turn",
            "usage": usage,
            "metrics": {"latencyMs": int(self.latency_s * 1000)},
        }
        return 200, payload, {}

    def answer(self, body: dict[str, Any], outcome: str = "ok") -> str:
        """The assistant content for ``body``: responder override, else a schema instance, else ``{}``.

        ``outcome`` ``malformed`` cuts the content in half (not JSON); ``wrong_schema`` answers a JSON
        object with none of the schema's properties (``{"unexpected": "stub"}``).
        """
        if outcome == "wrong_schema":
            return json.dumps({"unexpected": "stub"})
        content = self._answer(body)
        return content[: max(1, len(content) // 2)] if outcome == "malformed" else content

    def _answer(self, body: dict[str, Any]) -> str:
        if self.responder is not None:
            custom = self.responder(body)
            if custom is not None:
                return custom if isinstance(custom, str) else json.dumps(custom)
        schema = schema_of(body)
        messages = body.get("messages") or [{}]
        return json.dumps(instance_for(schema, str(messages[-1].get("content", ""))) if schema else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute before 429")
    parser.add_argument("--rate-429", type=float, default=0.0, help="share of calls answered 429")
    parser.add_argument("--rate-500", type=float, default=0.0, help="share of calls answered 500")
    parser.add_argument("--rate-malformed", type=float, default=0.0, help="share of answers cut in half")
    parser.add_argument("--rate-wrong-schema", type=float, default=0.0, help="share of JSON answers off-schema")
    parser.add_argument("--rate-timeout", type=float, default=0.0, help="share of calls stalling --timeout-sleep s")
    parser.add_argument("--timeout-sleep", type=float, default=30.0)
    parser.add_argument("--retry-after", type=float, default=None, help="Retry-After (s) sent with 429s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    server = StubLLMServer(args.host, args.port, latency_s=args.latency, rpm_limit=args.rpm).start()
    server.fault_plan = FaultPlan(
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        rate_malformed=args.rate_malformed,
        rate_wrong_schema=args.rate_wrong_schema,
        rate_timeout=args.rate_timeout,
        timeout_sleep_s=args.timeout_sleep,
        retry_after_s=args.retry_after,
        seed=args.seed,
    )
    print(f"stub LLM on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
