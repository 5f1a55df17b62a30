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

Run standalone: ``python -m pipeline_hub.testing.stub_llm --port 8765 --latency 0.2``.
"""

from __future__ import annotations

import argparse
import email.policy
import hashlib
import json
import random
import re
import socket
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], "str | dict | None"]
Reply = tuple[int, dict[str, Any], dict[str, str]]  # HTTP status, JSON payload, extra headers
CONVERSE_PATH = re.compile(r"/model/([^/]+)/converse")
BATCH_PATH = re.compile(r"/v1/batches/([^/]+)(/cancel)?")
FILE_CONTENT_PATH = re.compile(r"/v1/files/([^/]+)/content")
AZURE_CHAT_PATH = re.compile(r"/openai/deployments/([^/]+)/chat/completions")


@dataclass
class FaultPlan:
    """Which calls fail and how. ``sequence`` (e.g. ``["429", "500", "ok", "malformed", "wrong_schema",
    "timeout", "401"]``) fixes the outcome of the first calls; afterwards the rates apply (shares of
    calls in [0, 1], drawn from ``random.Random(seed)``: reproducible for a given call order).
    ``always_status`` (e.g. 401) answers every call with that HTTP status. ``retry_after_s`` is sent as
    ``Retry-After`` with 429s; ``timeout_sleep_s`` is how long a ``timeout`` call stalls before answering."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_malformed: float = 0.0
    rate_timeout: float = 0.0
    rate_wrong_schema: float = 0.0
    retry_after_s: float | None = None
    timeout_sleep_s: float = 30.0
    sequence: list[str] | None = None
    always_status: int | None = None
    seed: int = 0


OUTCOMES = ("ok", "429", "500", "malformed", "wrong_schema", "timeout")  # besides any HTTP status, e.g. "401"


def closed_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
        self._server: ThreadingHTTPServer | None = None
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
        handler = type("Handler", (_Handler,), {"stub": self})
        self._server = _Server((self.host, self.port), handler)
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
            return _openai_error(status, message, kind, headers)
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


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops SYNs when a client opens dozens of connections at once,
    # which then wait a 1 s retransmit: a stall real providers do not have.
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (cancelled or timed out) is normal here; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    stub: StubLLMServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms Nagle / delayed-ACK stall

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None, count: bool = True
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        if count:
            with self.stub._lock:
                self.stub.calls_by_status[status] += 1

    def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": str(status)}}, headers)

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        batches = self.stub.batches
        if path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"}, count=False)
        elif path == "/stats":  # counters, for a client in another process (benchmarks)
            with self.stub._lock:
                by_status = {str(k): v for k, v in self.stub.calls_by_status.items()}
                stats = {"calls": self.stub.calls, "by_status": by_status}
            self._send(200, stats, count=False)
        elif path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.stub.model, "object": "model"}]})
        elif path == "/v1/batches":
            self._send(200, {"object": "list", "data": list(batches.jobs.values())[::-1], "has_more": False})
        elif (match := BATCH_PATH.fullmatch(path)) and not match.group(2) and match.group(1) in batches.jobs:
            self._send(200, batches.jobs[match.group(1)])
        elif (match := FILE_CONTENT_PATH.fullmatch(path)) and match.group(1) in batches.files:
            self._send_bytes(200, batches.files[match.group(1)]["content"], "application/jsonl")
        else:
            self._error(404, "not found", "not_found_error")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _azure_chat(self, deployment: str, body: dict[str, Any]) -> None:
        """Azure OpenAI's deployment route: needs ``api-version`` (query) and ``api-key`` (header); the
        deployment, not the body's ``model``, names the model. Source: Azure OpenAI REST reference,
        "Chat completions" (data-plane inference)."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if not self.headers.get("api-key"):
            self._error(401, "missing api-key header", "authentication_error")
            return
        if "api-version" not in query:
            self._error(404, "Resource not found (no api-version)", "not_found_error")
            return
        with self.stub._lock:
            self.stub.azure_calls.append({"deployment": deployment, "api_version": query["api-version"][0]})
        self._send(*self.stub.chat({**body, "model": deployment}))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/files":
            self._send(200, self.stub.batches.upload(self.headers.get("Content-Type", ""), raw))
            return
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            self._error(400, "invalid JSON body", "invalid_request_error")
            return
        if path == "/v1/chat/completions":
            self._send(*self.stub.chat(body))
        elif match := AZURE_CHAT_PATH.fullmatch(path):
            self._azure_chat(urllib.parse.unquote(match.group(1)), body)
        elif match := CONVERSE_PATH.fullmatch(path):
            self._send(*self.stub.converse(urllib.parse.unquote(match.group(1)), body))
        elif path == "/v1/batches":
            self._send(200, self.stub.batches.create(body))
        elif (match := BATCH_PATH.fullmatch(path)) and match.group(2) == "/cancel":
            self._send(*self.stub.batches.cancel(match.group(1)))
        else:
            self._error(404, "not found", "not_found_error")


def _openai_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Reply:
    return status, {"error": {"message": message, "type": kind, "code": str(status)}}, headers or {}


class StubBatches:
    """The OpenAI Batch API surface the ``LLMBatchOperator`` uses: upload a JSONL file, create a batch,
    poll it, download its output file, list and cancel. A batch completes as soon as it is created:
    every line goes through the stub's chat answer (faults included; a failed call becomes an error
    line), so tests and benchmarks see the provider's shapes without waiting.

    Source: OpenAI API reference, "Batch" and "Files" (object shapes, output/error line format).
    """

    def __init__(self, stub: StubLLMServer) -> None:
        self.stub = stub
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    def _file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-stub-{len(self.files) + 1}"
        meta = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[file_id] = {"meta": meta, "content": content}
        return meta

    def upload(self, content_type: str, raw: bytes) -> dict[str, Any]:
        """``POST /v1/files`` (multipart/form-data with ``file`` and ``purpose``)."""
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        filename, content = fields["file"]
        return self._file(content, filename or "input.jsonl", (fields.get("purpose") or (None, b"batch"))[1].decode())

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/batches``: run every request line now; the batch is ``completed`` on return."""
        lines = self.files[body["input_file_id"]]["content"].decode().splitlines()
        out, failed = [], 0
        for n, line in enumerate(filter(None, lines)):
            request = json.loads(line)
            status, payload, _ = self.stub.chat(request["body"])
            failed += status != 200
            out.append(
                {
                    "id": f"batch_req_{n}",
                    "custom_id": request["custom_id"],
                    "response": {"status_code": status, "request_id": f"req_{n}", "body": payload},
                    "error": None,
                }
            )
        output = self._file("".join(json.dumps(o) + "\n" for o in out).encode(), "output.jsonl", "batch_output")
        batch_id = f"batch_stub_{len(self.jobs) + 1}"
        now = int(time.time())
        job = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "completed",
            "output_file_id": output["id"],
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "completed_at": now,
            "finalizing_at": now,
            "request_counts": {"total": len(out), "completed": len(out) - failed, "failed": failed},
            "metadata": body.get("metadata"),
        }
        self.jobs[batch_id] = job
        return job

    def cancel(self, batch_id: str) -> Reply:
        if batch_id not in self.jobs:
            return _openai_error(404, "no such batch", "not_found_error")
        return 200, self.jobs[batch_id], {}


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
