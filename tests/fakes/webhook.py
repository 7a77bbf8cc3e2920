"""A local webhook receiver for the adapter contract suite, on :class:`FakePlatform`.

It behaves like a careful real receiver: the hook lives at a secret path, it checks the
HMAC signature, and it deduplicates deliveries by ``Idempotency-Key`` (a repeat answers
200 with the first delivery's id). A scripted fault (``fail_next``, ``hang_next``,
``drop_next``, see ``tests/fakes/base.py``) applies to the next request that passes the
signature check: a status answers at once and nothing is stored; a hang or a drop stores
the delivery first (a timeout after sending).
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from herald.adapters.webhook import verify_signature
from tests.fakes.base import FakeFault, FakePlatform, Seen, endpoint, json_body


class FakeWebhook(FakePlatform):
    name = "webhook"

    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret or "whsec-" + secrets.token_hex(16)
        self.token = "tok" + secrets.token_hex(12)  # the hook's secret path segment
        self.posts: dict[str, dict[str, Any]] = {}  # by Idempotency-Key, in arrival order
        self._posts_lock = threading.Lock()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/hooks/{token}", self.hook, methods=["POST"]),
            Route("/{path:path}", self.nowhere, methods=["POST"]),
        ]

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/{self.token}"

    def credentials(self) -> dict[str, str]:
        return {"url": self.url, "secret": self.secret}

    def deliveries(self) -> list[Seen]:
        """Signed requests for ``post.published`` (including repeats)."""
        return [r for r in self.requests if r.json().get("event") == "post.published"]

    # -- the receiver ------------------------------------------------------------------

    def _store(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._posts_lock:
            if key not in self.posts:
                number = len(self.posts) + 1
                self.posts[key] = {
                    "id": f"wh_{number}",
                    "url": f"https://receiver.example/posts/{number}",
                    "payload": payload,
                }
            return self.posts[key]

    async def nowhere(self, request: Request) -> Response:
        return self.error(404, "no such hook")

    async def refused(self, request: Request) -> Response | None:
        """404 for another hook's token, 401 for a body not signed with the secret."""
        if request.path_params["token"] != self.token:
            return self.error(404, "no such hook")
        signed = verify_signature(
            self.secret,
            request.headers.get("x-herald-timestamp", ""),
            await request.body(),
            request.headers.get("x-herald-signature", ""),
        )
        return None if signed else self.error(401, "invalid signature")

    @endpoint()
    async def hook(self, request: Request, fault: FakeFault | None) -> Response:
        payload = await json_body(request)
        stored: dict[str, Any] = {"ok": True}
        if isinstance(payload, dict) and payload.get("event") == "post.published":
            stored = self._store(request.headers.get("idempotency-key", ""), payload)
        shown = {k: v for k, v in stored.items() if k != "payload"}
        return await self.finish(fault, JSONResponse(shown))
