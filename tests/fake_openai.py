"""A tiny fake OpenAI-compatible HTTP server for tests (stdlib only, 127.0.0.1, OS-assigned port).

Implements POST /v1/chat/completions (non-streaming) and POST /v1/embeddings. Replies are scripted:

    with FakeOpenAI() as fake:
        fake.reply("答案[1]")                         # queued chat reply
        fake.reply(Reply(status=500))                 # queued HTTP error
        fake.reply(Reply("慢", delay=2.0))            # queued slow reply (for timeout tests)
        fake.responder = lambda body: "按请求决定"     # or a callable(request_json) -> str | Reply
        settings = LLMSettings(base_url=fake.base_url, ...)
        ...
        fake.requests[-1].body["messages"]            # what the client sent

When the queue is empty the callable `responder` is used, else `default`. Delayed handlers wait on an
event that is set on close, so teardown never waits for a sleeping request.
Tests can use the `fake_openai` fixture: `from tests.fake_openai import fake_openai  # noqa: F401`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering
    finish_reason: str = "stop"


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # names lowercased
    body: Any

    @property
    def text(self) -> str:
        """All message contents of a chat request joined, for 'the prompt contains X' assertions."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return "\n".join(str(m.get("content", "")) for m in self.body["messages"])
        return json.dumps(self.body, ensure_ascii=False)


def fake_vector(text: str, dim: int) -> list[float]:
    """Deterministic unit vector derived from a hash of the text."""
    raw = b""
    counter = 0
    while len(raw) < dim * 4:
        raw += hashlib.sha256(f"{counter}\x1f{text}".encode("utf-8")).digest()
        counter += 1
    values = [(v / 2**31) - 1.0 for v in struct.unpack(f"<{dim}I", raw[: dim * 4])]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


@dataclass
class FakeOpenAI:
    default: str = "好的[1]"
    responder: Callable[[Any], str | Reply] | None = None
    embedding_dim: int = 16
    model: str = "fake-model"
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: deque[str | Reply] = deque()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ scripting

    def reply(self, *replies: str | Reply) -> "FakeOpenAI":
        self._queue.extend(replies)
        return self

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _next_reply(self, body: Any) -> Reply:
        with self._lock:
            item = self._queue.popleft() if self._queue else None
        if item is None:
            item = self.responder(body) if self.responder else self.default
        return item if isinstance(item, Reply) else Reply(str(item))

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append(Request(self.path, headers, body))
                if self.path.rstrip("/").endswith("/chat/completions"):
                    reply = fake._next_reply(body)
                    if reply.delay and fake._closing.wait(reply.delay):
                        return  # server is closing: drop the request
                    if reply.status != 200:
                        err = {"error": {"message": "fake error", "type": "fake_error", "code": reply.status}}
                        return self._send(reply.status, err)
                    return self._send(200, fake._chat_payload(body, reply))
                if self.path.rstrip("/").endswith("/embeddings"):
                    return self._send(200, fake._embedding_payload(body))
                self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ payloads

    def _chat_payload(self, body: Any, reply: Reply) -> dict:
        prompt_chars = len(Request("", {}, body).text)
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": (body.get("model") if isinstance(body, dict) else None) or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_chars,
                "completion_tokens": len(reply.content),
                "total_tokens": prompt_chars + len(reply.content),
            },
        }

    def _embedding_payload(self, body: Any) -> dict:
        inputs = body.get("input", []) if isinstance(body, dict) else []
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dim = self.embedding_dim
        if isinstance(body, dict) and body.get("dimensions"):
            dim = int(body["dimensions"])
        as_base64 = isinstance(body, dict) and body.get("encoding_format") == "base64"
        data = []
        for i, item in enumerate(inputs):
            vector = fake_vector(item if isinstance(item, str) else json.dumps(item), dim)
            embedding: Any = vector
            if as_base64:  # the openai client asks for base64 float32 by default
                embedding = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = sum(len(str(x)) for x in inputs)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", self.model) if isinstance(body, dict) else self.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@pytest.fixture
def fake_openai():
    with FakeOpenAI() as fake:
        yield fake
