"""A local webhook receiver for the adapter contract suite, with a control surface.

It behaves like a careful real receiver: the hook lives at a secret path, it checks the
HMAC signature, and it deduplicates deliveries by ``Idempotency-Key`` (a repeat answers
200 with the first delivery's id). Each scripted fault applies to the next request that
passes the signature check:

- ``fail_next(status, message, headers)``: answer that status with ``{"error": message}``;
  nothing is stored.
- ``hang_next()``: store the delivery, then never answer (a timeout after sending).
- ``drop_next()``: store the delivery, then close the connection without an answer.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from herald.adapters.webhook import verify_signature


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    raw_headers: bytes
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class _Fault:
    status: int | None = None
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False
    drop: bool = False


class FakeWebhook:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or "whsec-" + secrets.token_hex(16)
        self.token = "tok" + secrets.token_hex(12)  # the hook's secret path segment
        self.requests: list[ReceivedRequest] = []
        self.posts: dict[str, dict[str, Any]] = {}  # by Idempotency-Key, in arrival order
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- control surface ---------------------------------------------------------------

    def fail_next(
        self, status: int, message: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        self._faults.append(_Fault(status=status, message=message, headers=dict(headers or {})))

    def hang_next(self) -> None:
        self._faults.append(_Fault(hang=True))

    def drop_next(self) -> None:
        self._faults.append(_Fault(drop=True))

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/{self.token}"

    def credentials(self) -> dict[str, str]:
        return {"url": self.url, "secret": self.secret}

    def deliveries(self) -> list[ReceivedRequest]:
        """Signed requests for ``post.published`` (including repeats)."""
        return [r for r in self.requests if r.json().get("event") == "post.published"]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeWebhook:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._release.set()  # let held requests finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeWebhook:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the receiver ------------------------------------------------------------------

    def _store(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if key not in self.posts:
                number = len(self.posts) + 1
                self.posts[key] = {
                    "id": f"wh_{number}",
                    "url": f"https://receiver.example/posts/{number}",
                    "payload": payload,
                }
            return self.posts[key]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = ReceivedRequest(self.path, headers, bytes(self.headers), raw)
                with fake._lock:
                    fake.requests.append(request)
                if self.path != f"/hooks/{fake.token}":
                    self._answer(404, {"error": "no such hook"})
                    return
                if not verify_signature(
                    fake.secret,
                    headers.get("x-herald-timestamp", ""),
                    raw,
                    headers.get("x-herald-signature", ""),
                ):
                    self._answer(401, {"error": "invalid signature"})
                    return
                with fake._lock:
                    fault = fake._faults.popleft() if fake._faults else _Fault()
                if fault.status is not None:
                    self._answer(fault.status, {"error": fault.message}, fault.headers)
                    return
                payload = json.loads(raw)
                stored: dict[str, Any] = {"ok": True}
                if payload.get("event") == "post.published":
                    stored = fake._store(headers.get("idempotency-key", ""), payload)
                if fault.hang:
                    fake._release.wait(timeout=30)
                    return  # the client gave up long ago; close without a word
                if fault.drop:
                    return  # HTTP/1.0 handler: returning closes the connection unanswered
                self._answer(200, {k: v for k, v in stored.items() if k != "payload"})

            def _answer(
                self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
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

        return Handler
