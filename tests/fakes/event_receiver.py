"""A receiver of Herald's event webhooks that behaves as docs/webhooks.md tells one to:
it checks ``Herald-Signature`` against its secret, and keeps each
event once by ``Herald-Event-Id`` (a redelivered event is answered 200 and counted as a
duplicate). It can be made to answer a status (503, 410...) with a Retry-After, or be
stopped (connections refused) and started again on the same port."""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from herald.webhooks.signing import verify
from tests.fakes.loopback import LoopbackServer, TrackedHandler


class EventReceiver(LoopbackServer):
    def __init__(self, secret: str = "whsec_receiver-test-secret-0123456789") -> None:  # noqa: S107
        super().__init__()
        self.secret = secret
        self.guard = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every request: headers and body
        self.events: dict[str, dict[str, Any]] = {}  # by event id, the first copy
        self.duplicates = 0
        self.bad_signatures = 0
        self.answer_status: int | None = None  # answer this instead of 200, while set
        self.retry_after: str | None = None
        self.script: deque[int] = deque()  # statuses to answer first, one per request
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port or self.port}/events"

    def start(self, port: int = 0) -> EventReceiver:
        super().start(port or self._port)
        self._port = self.port
        return self

    def _handler(self) -> type[TrackedHandler]:
        receiver = self

        class Handler(TrackedHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.guard:
                    receiver.requests.append({"headers": headers, "body": raw})
                    status = receiver.script.popleft() if receiver.script else None
                    status = status or receiver.answer_status
                if status is not None:
                    extra = {"Retry-After": receiver.retry_after} if receiver.retry_after else {}
                    self._answer(status, {"error": f"receiver says {status}"}, extra)
                    return
                # The timestamp's age is not checked: tests move Herald's clock.
                timestamp = headers.get("herald-timestamp", "")
                if not verify(receiver.secret, timestamp, raw, headers.get("herald-signature", "")):
                    with receiver.guard:
                        receiver.bad_signatures += 1
                    self._answer(401, {"error": "bad signature"})
                    return
                event = json.loads(raw)
                with receiver.guard:
                    if event["id"] in receiver.events:
                        receiver.duplicates += 1
                    else:
                        receiver.events[event["id"]] = event
                self._answer(200, {"ok": True})

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
