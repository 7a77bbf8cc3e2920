"""Run a request once more when the database connection was lost before it committed.

A PostgreSQL restart, a failover or a killed backend breaks the pooled connections in
use; SQLAlchemy then drops the pool, and the next try gets a fresh connection. A request
that failed that way before its commit saved nothing and sent nothing (messages leave
after commit), so running it again is safe: the error handler marks its 503 answer
with :data:`~herald.core.errors.REPLAYABLE_HEADER`, and this middleware discards that
answer and runs the request once more with the same body. A second loss, or a loss
during the commit itself (unknown outcome), reaches the client as 503 + ``Retry-After``.

Each run of a request is its own unit of work (:func:`herald.core.db.unit_of_work`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.core.db import unit_of_work
from herald.core.errors import REPLAYABLE_HEADER
from herald.core.settings import get_settings

_MARK = REPLAYABLE_HEADER.encode()


class ReplayOnLostConnection:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        streamed = b"transfer-encoding" in headers
        if streamed or not length.isdigit() or int(length) > get_settings().max_request_bytes:
            # Only a body of known, small size is kept in memory to be sent again.
            with unit_of_work():
                await self.app(scope, receive, _unmarked(send))
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        if await self._attempt(scope, body, receive, send, last=False):
            await self._attempt(scope, body, receive, send, last=True)

    async def _attempt(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, *, last: bool
    ) -> bool:
        """Run the request; True when its answer was discarded to run it again."""
        body_sent = False
        discarded = False

        async def replay_receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def guarded_send(message: Message) -> None:
            nonlocal discarded
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                marked = any(name == _MARK for name, _ in headers)
                if marked and not last:
                    discarded = True
                    return
                message = {**message, "headers": [h for h in headers if h[0] != _MARK]}
            if not discarded:
                await send(message)

        with unit_of_work():
            await self.app(scope, replay_receive, guarded_send)
        return discarded


def _unmarked(send: Send) -> Send:
    async def strip(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            message = {**message, "headers": [h for h in headers if h[0] != _MARK]}
        await send(message)

    return strip


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
