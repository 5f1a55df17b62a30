"""A small OpenAI-compatible chat-completions server for tests and benchmarks, over real HTTP.

It answers ``POST /v1/chat/completions`` (non-streaming) with a schema-valid JSON instance generated
from the request's structured-output schema, in either dialect: OpenAI's
``{"type": "json_schema", "json_schema": {"schema": …}}`` or llama.cpp's
``{"type": "json_object", "schema": …}``. Faults (429 with ``Retry-After``, 500, malformed JSON,
timeouts, a fixed status such as 401) and latency are injected on demand so the provider layer is
tested against real HTTP behaviour, never by patching the client.

Sources: OpenAI API reference, "Create chat completion" (request/response and error shapes);
llama.cpp ``tools/server/README.md`` (``response_format`` with ``schema``).

Run standalone: ``python -m pipeline_hub.testing.stub_llm --port 8765 --latency 0.2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], "str | dict | None"]


@dataclass
class FaultPlan:
    """Which calls fail and how. ``sequence`` (e.g. ``["429", "500", "ok", "malformed", "timeout", "401"]``)
    fixes the outcome of the first calls; afterwards the rates apply (seeded, reproducible).
    ``always_status`` (e.g. 401) answers every call with that HTTP status."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_malformed: float = 0.0
    rate_timeout: float = 0.0
    retry_after_s: float | None = None
    timeout_sleep_s: float = 30.0
    sequence: list[str] | None = None
    always_status: int | None = None
    seed: int = 0


def _pick(options: list[Any], key: str) -> Any:
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def instance_for(schema: dict[str, Any], key: str = "", root: dict[str, Any] | None = None) -> Any:
    """A deterministic instance valid against ``schema`` (JSON Schema subset used by structured output).

    ``key`` (e.g. the last user message) varies ``enum`` choices between records, reproducibly.
    """
    root = root or schema
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return instance_for((root.get("$defs") or root.get("definitions") or {})[ref], key, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return _pick([v for v in schema["enum"] if v is not None] or [None], key)
    for comb in ("anyOf", "oneOf"):
        if comb in schema:
            return instance_for(schema[comb][0], key, root)
    types = schema.get("type", "object")
    if isinstance(types, list):
        types = next((t for t in types if t != "null"), "null")
    if types == "object":
        props = schema.get("properties", {})
        return {name: instance_for(sub, f"{key}/{name}", root) for name, sub in props.items()}
    if types == "array":
        count = max(1, schema.get("minItems", 1))
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        return [instance_for(schema.get("items", {"type": "string"}), f"{key}[{i}]", root) for i in range(count)]
    if types in ("number", "integer"):
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 1 if types == "number" else 10)
        value = (lo + hi) / 2
        return int(value) if types == "integer" else round(value, 3)
    if types == "boolean":
        return True
    if types == "null":
        return None
    text = "stub"
    if schema.get("minLength", 0) > len(text):
        text = text * (schema["minLength"] // len(text) + 1)
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The output schema of a chat request in either structured-output dialect, or None."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    if fmt.get("type") == "json_object":
        return fmt.get("schema")
    return None


class StubLLMServer:
    """OpenAI-compatible stub on ``host:port`` (port 0 picks a free one); see the module docstring.

    Attributes for assertions: ``calls`` (chat requests received), ``calls_by_status`` (Counter of
    HTTP statuses sent), ``requests`` (parsed request bodies). ``responder`` may override answers:
    ``responder(body) -> str | dict | None`` (None falls back to the schema-generated instance).
    ``rpm_limit`` answers 429 beyond that many requests in any 60 s window.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_s: float = 0.0,
        fault_plan: FaultPlan | None = None,
        responder: Responder | None = None,
        rpm_limit: int | None = None,
        model: str = "stub-model",
    ) -> None:
        self.host, self.port = host, port
        self.latency_s = latency_s
        self.fault_plan = fault_plan or FaultPlan()
        self.responder = responder
        self.rpm_limit = rpm_limit
        self.model = model
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Zero the counters, drop recorded requests, clear responder and faults."""
        with self._lock:
            self.calls = 0
            self.calls_by_status: Counter = Counter()
            self.requests: list[dict[str, Any]] = []
            self._window: deque[float] = deque()
            self._rng = random.Random(self.fault_plan.seed)
        self.responder = None
        self.fault_plan = FaultPlan()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> StubLLMServer:
        handler = type("Handler", (_Handler,), {"stub": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
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

    def _outcome(self) -> str:
        """Decide this call's outcome: ok | 429 | 500 | malformed | timeout | rate_limited | status."""
        plan = self.fault_plan
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
            if plan.always_status:
                return "status"
            if plan.sequence and index < len(plan.sequence):
                return plan.sequence[index]
            roll = self._rng.random()
        for name, rate in (
            ("429", plan.rate_429),
            ("500", plan.rate_500),
            ("malformed", plan.rate_malformed),
            ("timeout", plan.rate_timeout),
        ):
            if roll < rate:
                return name
            roll -= rate
        return "ok"

    def answer(self, body: dict[str, Any]) -> str:
        """The assistant content for ``body``: responder override, else a schema instance, else ``{}``."""
        if self.responder is not None:
            custom = self.responder(body)
            if custom is not None:
                return custom if isinstance(custom, str) else json.dumps(custom)
        schema = schema_of(body)
        messages = body.get("messages") or [{}]
        return json.dumps(instance_for(schema, str(messages[-1].get("content", ""))) if schema else {})


class _Handler(BaseHTTPRequestHandler):
    stub: StubLLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        with self.stub._lock:
            self.stub.calls_by_status[status] += 1

    def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": str(status)}}, headers)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.stub.model, "object": "model"}]})
        else:
            self._error(404, "not found", "not_found_error")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, "not found", "not_found_error")
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._error(400, "invalid JSON body", "invalid_request_error")
            return
        stub = self.stub
        with stub._lock:
            stub.requests.append(body)
        outcome = stub._outcome()
        if stub.latency_s:
            time.sleep(stub.latency_s)
        plan = stub.fault_plan
        retry = {"Retry-After": f"{plan.retry_after_s:g}"} if plan.retry_after_s is not None else {}
        if outcome == "status":
            self._error(plan.always_status, "refused by stub", "authentication_error")
            return
        if outcome in ("429", "rate_limited"):
            headers = retry or ({"Retry-After": "1"} if outcome == "rate_limited" else {})
            self._error(429, "rate limit reached", "rate_limit_error", headers)
            return
        if outcome == "500":
            self._error(500, "internal error", "server_error")
            return
        if outcome.isdigit():  # any other status named in a sequence, e.g. "401"
            self._error(int(outcome), "refused by stub", "invalid_request_error")
            return
        if outcome == "timeout":
            time.sleep(plan.timeout_sleep_s)
        content = stub.answer(body)
        if outcome == "malformed":
            content = content[: max(1, len(content) // 2)]
        prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        usage = {"prompt_tokens": len(prompt_text) // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send(
            200,
            {
                "id": f"chatcmpl-stub-{stub.calls}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", stub.model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute before 429")
    args = parser.parse_args()
    server = StubLLMServer(args.host, args.port, latency_s=args.latency, rpm_limit=args.rpm).start()
    print(f"stub LLM on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
