"""A fake WeChat / WeCom API server (stdlib http.server on 127.0.0.1, OS-chosen port) that records
gettoken / token / message-send / media calls and answers scripted errcodes."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeWxApi:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.scripted: dict[str, list[tuple[int, dict]]] = {}  # path -> [(http status, json body)]
        self.media = b"\xff\xd8\xff\xe0fake-jpeg"
        self.sent = threading.Condition()
        self.tokens_issued = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: dict | bytes, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw.decode("utf-8")) if raw else None
                with api.sent:
                    api.calls.append({"method": method, "path": url.path, "query": query, "json": body})
                    api.sent.notify_all()
                script = api.scripted.get(url.path)
                if script:
                    status, answer = script.pop(0)
                    return self._answer(status, answer)
                if url.path in ("/cgi-bin/gettoken", "/cgi-bin/token"):
                    api.tokens_issued += 1
                    return self._answer(200, {"errcode": 0, "access_token": f"TOKEN{api.tokens_issued}",
                                              "expires_in": 7200})
                if url.path == "/cgi-bin/media/get":
                    return self._answer(200, api.media, "image/jpeg")
                return self._answer(200, {"errcode": 0, "errmsg": "ok"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeWxApi":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        with self.sent:
            return [c["path"] for c in self.calls]

    def wait_for(self, path: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        """Calls to `path` once there are at least `count` (bounded wait, no fixed sleep)."""
        with self.sent:
            self.sent.wait_for(lambda: sum(c["path"] == path for c in self.calls) >= count, timeout=timeout)
            return [c for c in self.calls if c["path"] == path]
