"""A local Matrix homeserver: just the Client-Server API calls Herald makes.

- Auth as the spec says: ``Authorization: Bearer <token>``; none → 401
  ``M_MISSING_TOKEN``, unknown → 401 ``M_UNKNOWN_TOKEN`` (with ``soft_logout``).
- ``PUT /rooms/<room>/send/m.room.message/<txnId>``: the sender must have joined the room
  (else 403 ``M_FORBIDDEN``); the content is validated against the event schema of its
  msgtype (``properties.content`` of ``m.room.message$<msgtype>.yaml``, its relative
  ``$ref``s resolved from the spec folder); ``format`` and ``formatted_body`` come
  together; an ``m.image`` points at media uploaded here; an event over 65,536 bytes is
  413 ``M_TOO_LARGE``. Transactions are idempotent per access token: the same txnId
  again answers the first event's id and sends nothing.
- ``POST /_matrix/media/v3/upload``: raw bytes with ``Content-Type`` and ``?filename=``,
  answering ``{"content_uri": "mxc://…"}``.
- ``GET /account/whoami``, ``/joined_rooms``, ``/directory/room/<alias>``.
- Rooms of any version: ``room_version=12`` gives room IDs with no server part (the
  create event's hash), as Synapse 1.163 makes by default.
- Errors ``{"errcode", "error"}``; 429 is ``M_LIMIT_EXCEEDED`` with ``retry_after_ms``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, FakePlatform, endpoint
from tests.fakes.specs import spec_path

CLIENT = "/_matrix/client/v3"
MAX_EVENT_BYTES = 65_536
SERVER = "fake.example"
_ERRCODES = {
    400: "M_BAD_JSON",
    401: "M_UNKNOWN_TOKEN",
    403: "M_FORBIDDEN",
    404: "M_NOT_FOUND",
    413: "M_TOO_LARGE",
    429: "M_LIMIT_EXCEEDED",
}


# -- the published event schemas ---------------------------------------------------------


def _retrieve(uri: str) -> Resource[Any]:
    """Load a spec YAML file by its ``file://`` URI (relative ``$ref``s land here)."""
    path = Path(unquote(urlsplit(uri).path))
    return DRAFT202012.create_resource(yaml.safe_load(path.read_text()))


@lru_cache(maxsize=8)
def content_validator(msgtype: str) -> jsonschema.Draft202012Validator | None:
    """Validator for the ``content`` of an ``m.room.message`` of this msgtype."""
    folder = spec_path("matrix/data/event-schemas/schema")
    if folder is None:
        return None
    path = folder / f"m.room.message${msgtype}.yaml"
    if not path.is_file():
        raise LookupError(f"no event schema for {msgtype}")
    # retrieve= is referencing's documented way in; mypy's attrs plugin does not see it
    # through referencing's own class decorator.
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]  # see above
    return jsonschema.Draft202012Validator(
        {"$ref": f"{path.as_uri()}#/properties/content"}, registry=registry
    )


def content_errors(content: Any) -> list[str]:
    if not isinstance(content, dict):
        return ["(content): not an object"]
    msgtype = content.get("msgtype")
    if msgtype not in ("m.text", "m.notice", "m.image"):
        return [f"msgtype: {msgtype!r} is not one this fake knows"]
    validator = content_validator(str(msgtype))
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(content)'}: {e.message}"
        for e in (validator.iter_errors(content) if validator else [])
    ]
    # Said in the schema's prose: "required if `formatted_body` is specified", and back.
    if ("format" in content) != ("formatted_body" in content):
        errors.append("format and formatted_body: each is required with the other")
    if "format" in content and content["format"] != "org.matrix.custom.html":
        errors.append("format: only org.matrix.custom.html is supported")
    return errors


# -- the fake ----------------------------------------------------------------------------


def room_id(name: str, room_version: int) -> str:
    """A room ID as a homeserver makes one: ``!<opaque>:<server>`` up to room version 11;
    from version 12 (Synapse 1.163 creates these by default) the create event's reference
    hash, URL-safe unpadded base64 of its SHA-256, with no server part."""
    if room_version < 12:
        return f"!{name}:{SERVER}"
    create_event = json.dumps({"type": "m.room.create", "content": {"name": name}}).encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(create_event).digest())
    return "!" + digest.decode().rstrip("=")


@dataclass
class Event:
    event_id: str
    room_id: str
    sender: str
    content: dict[str, Any]
    txn_id: str


@dataclass
class Media:
    uri: str
    content_type: str
    filename: str | None
    data: bytes


class FakeMatrix(FakePlatform):
    name = "matrix"

    def __init__(self, *, max_upload: int = 50_000_000, room_version: int = 11) -> None:
        super().__init__()
        self.user_id = f"@herald:{SERVER}"
        self.access_token = "syt_aGVyYWxk_fakeAccessToken0123456789"
        self.room_version = room_version
        self.room_id = room_id("news", room_version)
        self.alias = f"#news:{SERVER}"
        # Exists; the bot has not joined it.
        self.other_room = room_id("elsewhere", room_version)
        self.joined = {self.room_id}
        self.events: list[Event] = []
        self.media: dict[str, Media] = {}
        self.max_upload = max_upload
        self.rate_limit_ms: int | None = None  # next 429's retry_after_ms, when set
        self._transactions: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        self._store_lock = threading.Lock()

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{CLIENT}/account/whoami", self.whoami, methods=["GET"]),
            Route(f"{CLIENT}/joined_rooms", self.joined_rooms, methods=["GET"]),
            Route(f"{CLIENT}/directory/room/{{alias}}", self.resolve_alias, methods=["GET"]),
            Route(
                f"{CLIENT}/rooms/{{room_id}}/send/{{event_type}}/{{txn_id}}",
                self.send_event,
                methods=["PUT"],
            ),
            Route("/_matrix/media/v3/upload", self.upload, methods=["POST"]),
        ]

    # -- what tests look at --------------------------------------------------------------

    def messages(self, msgtype: str | None = None) -> list[Event]:
        return [e for e in self.events if msgtype is None or e.content["msgtype"] == msgtype]

    # -- Matrix's error shape --------------------------------------------------------------

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        body: dict[str, Any] = {"errcode": _ERRCODES.get(status, "M_UNKNOWN"), "error": message}
        if status == 401:
            body["soft_logout"] = False
        if status == 429:
            wait_ms, self.rate_limit_ms = self.rate_limit_ms, None
            header = (headers or {}).get("Retry-After", "")
            if wait_ms is None and header.isdigit():
                wait_ms = int(header) * 1000
            if wait_ms is not None:
                body["retry_after_ms"] = wait_ms
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def _refuse(self, status: int, errcode: str, message: str) -> Response:
        return JSONResponse({"errcode": errcode, "error": message}, status_code=status)

    async def refused(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return self._refuse(401, "M_MISSING_TOKEN", "Missing access token.")
        if header.removeprefix("Bearer ") != self.access_token:
            body = {
                "errcode": "M_UNKNOWN_TOKEN",
                "error": "Unknown access token.",
                "soft_logout": False,
            }
            return JSONResponse(body, status_code=401)
        return None

    # -- endpoints ----------------------------------------------------------------------------

    async def whoami(self, request: Request) -> Response:
        if (refused := await self.refused(request)) is not None:
            return refused
        return JSONResponse({"user_id": self.user_id, "device_id": "HERALDDEV", "is_guest": False})

    async def joined_rooms(self, request: Request) -> Response:
        if (refused := await self.refused(request)) is not None:
            return refused
        return JSONResponse({"joined_rooms": sorted(self.joined)})

    @endpoint()
    async def resolve_alias(self, request: Request, fault: FakeFault | None) -> Response:
        alias = request.path_params["alias"]
        if not alias.startswith("#"):
            return self._refuse(400, "M_INVALID_PARAM", "Room alias invalid")
        if alias != self.alias:
            return self._refuse(404, "M_NOT_FOUND", f"Room alias {alias} not found.")
        return await self.finish(
            fault, JSONResponse({"room_id": self.room_id, "servers": [SERVER]})
        )

    @endpoint()
    async def upload(self, request: Request, fault: FakeFault | None) -> Response:
        data = await request.body()
        if len(data) > self.max_upload:
            return self._refuse(413, "M_TOO_LARGE", "Cannot upload files larger than the limit")
        content_type = request.headers.get("content-type", "application/octet-stream")
        if not content_type.startswith("image/"):
            self.check([f"Content-Type: {content_type!r} for an image upload"], "upload")
        uri = f"mxc://{SERVER}/media{next(self._ids)}"
        with self._store_lock:
            self.media[uri] = Media(uri, content_type, request.query_params.get("filename"), data)
        return await self.finish(fault, JSONResponse({"content_uri": uri}))

    async def send_event(self, request: Request) -> Response:
        if (refused := await self.refused(request)) is not None:
            return refused
        params = request.path_params
        room_id, txn_id = params["room_id"], params["txn_id"]
        if room_id not in self.joined:
            return self._refuse(403, "M_FORBIDDEN", f"User {self.user_id} not in room {room_id}")
        fault = self.take_fault()
        if (answer := self.fault_response(fault)) is not None:
            return answer
        # Transactions are scoped to the access token (and the endpoint, in the path).
        transaction = (self.access_token, request.url.path)
        with self._store_lock:
            seen = self._transactions.get(transaction)
        if seen is not None:
            return await self.finish(fault, JSONResponse({"event_id": seen}))
        if params["event_type"] != "m.room.message":
            self.check([f"event type {params['event_type']} is not one Herald sends"], "send")
        raw = await request.body()
        try:
            content = json.loads(raw)
        except ValueError:
            return self._refuse(400, "M_NOT_JSON", "Content not JSON.")
        if (refused := self.check(content_errors(content), "m.room.message")) is not None:
            return refused
        if content["msgtype"] == "m.image" and content.get("url") not in self.media:
            return self._refuse(400, "M_INVALID_PARAM", "url is not media of this server")
        if len(raw) > MAX_EVENT_BYTES:
            return self._refuse(413, "M_TOO_LARGE", "event too large")
        with self._store_lock:
            event = Event(f"${next(self._ids)}fakeevent", room_id, self.user_id, content, txn_id)
            self.events.append(event)
            self._transactions[transaction] = event.event_id
        return await self.finish(fault, JSONResponse({"event_id": event.event_id}))
