"""HTTP side of the stub LLM: the request handler (routes), the server class and the Batch API store.

Routes: ``GET /health``, ``/stats``, ``/v1/models``, ``/v1/batches[/{id}]``, ``/v1/files/{id}/content``;
``POST /v1/chat/completions``, ``/openai/deployments/{deployment}/chat/completions``,
``/model/{modelId}/converse``, ``/v1/files``, ``/v1/batches[/{id}/cancel]``.
"""

from __future__ import annotations

import email.policy
import json
import re
import time
import urllib.parse
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stub_llm import StubLLMServer

Reply = tuple[int, dict[str, Any], dict[str, str]]  # HTTP status, JSON payload, extra headers
CONVERSE_PATH = re.compile(r"/model/([^/]+)/converse")
BATCH_PATH = re.compile(r"/v1/batches/([^/]+)(/cancel)?")
FILE_CONTENT_PATH = re.compile(r"/v1/files/([^/]+)/content")
AZURE_CHAT_PATH = re.compile(r"/openai/deployments/([^/]+)/chat/completions")


class StubHTTPServer(ThreadingHTTPServer):
    # The default listen backlog (5) drops SYNs when a client opens dozens of connections at once,
    # which then wait a 1 s retransmit: a stall real providers do not have.
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (cancelled or timed out) is normal here; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            super().handle_error(request, client_address)


class StubHandler(BaseHTTPRequestHandler):
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


def openai_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Reply:
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
            return openai_error(404, "no such batch", "not_found_error")
        return 200, self.jobs[batch_id], {}
