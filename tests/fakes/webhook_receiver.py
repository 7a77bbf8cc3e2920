"""A local webhook receiver that behaves like a careful real one: it checks the HMAC
signature, deduplicates by Idempotency-Key, and answers from a script (503, 503, 200...),
optionally holding a request before answering. It listens on loopback unless given
another local address (``host``: the many-machines test's host side of a link)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from herald.adapters.webhook import verify_signature


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    peer: str = ""  # the sender's address


@dataclass
class Receiver:
    secret: str = "receiver-shared-secret-0123456789"
    script: deque[int] = field(default_factory=deque)  # statuses to answer, then 200
    hold_seconds: float = 0.0
    host: str = "127.0.0.1"
    received: list[Received] = field(default_factory=list)
    delivered: dict[str, Received] = field(default_factory=dict)  # by Idempotency-Key
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host = self.server.server_address[0]
        assert isinstance(host, str)  # an IPv4 server's address, never bytes
        return f"http://{host}:{self.server.server_port}/hook"

    def credentials(self) -> dict[str, str]:
        return {"url": self.url, "secret": self.secret}

    def posts(self) -> list[Received]:
        return [r for r in self.received if r.body.get("event") == "post.published"]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if not verify_signature(
                    receiver.secret,
                    headers.get("x-herald-timestamp", ""),
                    raw,
                    headers.get("x-herald-signature", ""),
                ):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(401, {"error": "bad signature"})
                    return
                item = Received(headers, json.loads(raw), time.time(), self.client_address[0])
                with receiver.lock:
                    receiver.received.append(item)
                    status = receiver.script.popleft() if receiver.script else 200
                if receiver.hold_seconds:
                    time.sleep(receiver.hold_seconds)
                key = headers.get("idempotency-key", "")
                if status == 200 and item.body.get("event") == "post.published":
                    with receiver.lock:
                        first = receiver.delivered.setdefault(key, item)
                    self._answer(
                        200,
                        {
                            "id": f"ext-{key[-8:]}",
                            "url": f"https://example.test/{key}",
                            "duplicate": first is not item,
                        },
                    )
                    return
                if status == 200:
                    self._answer(200, {"ok": True})
                elif status == 429:
                    self._answer(429, {"error": "slow down"}, {"Retry-After": "1"})
                else:
                    self._answer(status, {"message": f"receiver says {status}"})

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
