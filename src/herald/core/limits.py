"""What a request may carry, checked at the edge before any feature code runs.

- **Size.** :class:`BodyLimit`, an ASGI middleware, refuses a body past
  ``HERALD_MAX_REQUEST_BYTES`` (1 MiB) with 413 problem+json: at once when
  ``Content-Length`` says so, otherwise as soon as the bytes streamed in (chunked) pass
  the limit, so nothing past it is ever held in memory. ``POST /api/v1/media`` has
  ``HERALD_MEDIA_MAX_BYTES`` (plus the multipart envelope) instead.
- **NUL characters.** :func:`refuse_nul_characters`, a dependency of every route, answers
  422 when a path, a query parameter, a JSON body or a form field holds U+0000: PostgreSQL
  cannot store it in text (a 500 there), and no field of Herald's means anything by it.
- **Shape.** :data:`herald.core.documents.BoundedDocument` caps a free-form JSON object
  (channel credentials and settings): keys, nesting, list and string lengths (a module of
  its own: the schemas that use it must load without FastAPI, for the command line).

:func:`install_limits` puts the first two on the app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.core.errors import ContentTooLarge, InvalidInput, problem_response
from herald.core.settings import Settings, get_settings

# Room for the multipart envelope around an image: boundaries, part headers, alt_text.
MULTIPART_ALLOWANCE = 64 * 1024


def _media_limit(settings: Settings) -> tuple[int, str]:
    return settings.media_max_bytes + MULTIPART_ALLOWANCE, "HERALD_MEDIA_MAX_BYTES"


# Routes whose bodies have a limit of their own: (method, path) → (bytes, setting named).
OWN_LIMITS: dict[tuple[str, str], Callable[[Settings], tuple[int, str]]] = {
    ("POST", "/api/v1/media"): _media_limit,
}


def body_limit(scope: Scope) -> tuple[int, str]:
    """The largest body this request may send, and the setting that says so."""
    settings = get_settings()
    own = OWN_LIMITS.get((scope.get("method", ""), scope.get("path", "")))
    return own(settings) if own else (settings.max_request_bytes, "HERALD_MAX_REQUEST_BYTES")


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server refuses a malformed Content-Length before we see it


class BodyLimit:
    """ASGI middleware: a request body past its limit is a 413 problem+json.

    The count happens in ``receive``, so it holds for every reader (JSON, forms, uploads,
    a handler reading the stream itself). Past the limit ``receive`` raises
    :class:`ContentTooLarge`; FastAPI lets an HTTPException raised while it reads the
    body through to the error handlers, and one that escapes the app is answered here.
    """

    def __init__(
        self, app: ASGIApp, *, limit_for: Callable[[Scope], tuple[int, str]] = body_limit
    ) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            # Refused before a byte of the body is read; the server closes the connection.
            await _answer(ContentTooLarge(limit, setting), scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ContentTooLarge(limit, setting)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except ContentTooLarge as exc:
            if started:
                raise
            await _answer(exc, scope, receive, send)


async def _answer(exc: ContentTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(
        exc.status_code,
        str(exc.detail),
        slug=exc.slug,
        instance=scope.get("path"),
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)


# --- NUL characters ----------------------------------------------------------------------

# A JSON string escape of U+0000: "\u0000" after an even number of backslashes (an odd
# number would make the first backslash of it a literal one: "\\u0000" is six characters).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def _nul_problem(loc: list[Any]) -> InvalidInput:
    where = ".".join(str(part) for part in loc if part != "body") or "body"
    message = (
        f"{where}: contains a NUL character (U+0000, '\\u0000'), which Herald does not "
        "accept in any text; remove it and send again."
    )
    return InvalidInput(message, errors=[{"loc": loc, "msg": message, "type": "string_nul"}])


def _nul_path(value: Any, loc: list[Any]) -> list[Any] | None:
    """Where in a parsed JSON document the first string (key or value) with NUL is."""
    if isinstance(value, str):
        return loc if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return [*loc, key.replace("\x00", "\\u0000")]
            found = _nul_path(item, [*loc, key])
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, [*loc, index])
            if found is not None:
                return found
    return None


async def refuse_nul_characters(request: Request) -> None:
    """422 when the path, a query parameter, the JSON body or a form field holds U+0000."""
    if "\x00" in request.scope.get("path", ""):
        raise _nul_problem(["path"])
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise _nul_problem(["query", name.replace("\x00", "\\u0000")])
    if request.headers.get("content-type", "").lower().startswith(_FORMS):
        form = await request.form()  # FastAPI parsed it already; this is its cached copy
        for name, field in form.multi_items():
            text = field if isinstance(field, str) else field.filename or ""
            if "\x00" in name or "\x00" in text:
                raise _nul_problem(["body", name.replace("\x00", "\\u0000")])
        return
    body = await request.body()
    # The plain search is a memchr-speed scan; the regex (which reads the backslashes
    # before it) runs only on a body that has the six characters at all.
    if b"\\u0000" in body and _JSON_NUL.search(body):
        try:
            where = _nul_path(json.loads(body), ["body"])
        except ValueError:
            where = None
        raise _nul_problem(where or ["body"])


def install_limits(app: FastAPI) -> None:
    """The body limit and the NUL check on every route of ``app``; call it before any
    router is included (a route takes the app's dependencies when it is added)."""
    app.add_middleware(BodyLimit)
    app.router.dependencies.append(Depends(refuse_nul_characters))
