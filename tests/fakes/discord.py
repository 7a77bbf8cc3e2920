"""A local Discord that knows channel webhooks: get the webhook, execute it.

- ``GET /api/v10/webhooks/<id>/<token>``: the webhook object (no token checks beyond the
  URL, as on Discord).
- ``POST /api/v10/webhooks/<id>/<token>?wait=true``: a JSON body, or multipart with
  ``payload_json`` and ``files[n]`` parts. The body (or ``payload_json``) is validated
  against Discord's published OpenAPI document (``discord/openapi.json``, operation
  ``execute_webhook``): content at most 2,000 characters, embed title 256, description
  4,096, attachments' ids and descriptions. Besides the schema, it checks what Discord
  checks in code: a message is not empty (50006), every ``attachments[].id`` names an
  uploaded ``files[n]`` part, a file is at most 10 MiB (40005), embeds total at most
  6,000 characters.
- Errors in Discord's shape ``{"message", "code", "errors"?}``: an unknown webhook 404
  ``Unknown Webhook`` (10015), a wrong token 401 ``Invalid Webhook Token`` (50027),
  429 ``{"message": "You are being rate limited.", "retry_after", "global"}`` with
  ``Retry-After``, ``X-RateLimit-Reset-After`` and ``X-RateLimit-Scope`` headers.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, FakeLimit, FakePlatform, LimitState, endpoint
from tests.fakes.specs import openapi

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_EMBEDS_TOTAL = 6000
SPEC_PATH = "/webhooks/{webhook_id}/{webhook_token}"
EXECUTE_SCHEMA = {"$ref": "#/components/schemas/IncomingWebhookRequestPartial"}
_CODES = {400: 50035, 401: 50027, 403: 50013, 404: 10015, 413: 40005}


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Attachment:
    id: str
    filename: str
    size: int
    content_type: str
    description: str | None


@dataclass
class Message:
    id: str
    channel_id: str
    content: str
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    username: str | None = None


class FakeDiscord(FakePlatform):
    name = "discord"

    def __init__(self) -> None:
        super().__init__()
        self.webhook_id = "1234567890123456789"
        self.webhook_token = "fakeWebhookToken-0123456789abcdefghijklmnopqrstuvwxyz"
        self.guild_id = "111111111111111111"
        self.channel_id = "222222222222222222"
        self.messages: list[Message] = []
        self._ids = itertools.count(1)
        self._store_lock = threading.Lock()
        self.rate_limit_body: float | None = None  # next 429's retry_after, when set
        # The execute route's bucket: Discord names it with an opaque id in
        # X-RateLimit-Bucket and gives its size in X-RateLimit-Limit (5 per 2 s).
        self.route_bucket = "41f4d9b0ab6e7c2e"
        self.route_capacity = 5

    @property
    def webhook_url(self) -> str:
        """What a user copies from Discord (no API version in it)."""
        return f"{self.base_url}/api/webhooks/{self.webhook_id}/{self.webhook_token}"

    def rate_limits(self) -> list[FakeLimit]:
        # Discord publishes no fixed numbers; a webhook's route bucket answers 5 per 2 s
        # (X-RateLimit-Bucket), and a channel takes 30 webhook messages a minute.
        return [
            FakeLimit("route", self.route_capacity, 2, ("/webhooks/",)),
            FakeLimit("channel", 30, 60, ("/webhooks/",)),
        ]

    def limit_headers(self, state: LimitState) -> dict[str, str]:
        # The X-RateLimit-* headers always describe the route's bucket, as Discord's do
        # (discord.com/developers/docs/topics/rate-limits, "Header Format"). The channel's
        # 30 a minute is a per-resource limit: a 429 for it says X-RateLimit-Scope: shared
        # and its own Retry-After.
        route = state if state.limit.name == "route" else self._route_state(state.now)
        reset_after = route.retry_after or route.reset_in
        headers = {
            "X-RateLimit-Limit": str(route.limit.capacity),
            "X-RateLimit-Remaining": str(max(0, math.floor(route.remaining))),
            "X-RateLimit-Reset": f"{route.now + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.route_bucket,
        }
        if state.retry_after > 0 and route is not state:
            headers["X-RateLimit-Scope"] = "shared"
            headers["Retry-After"] = str(max(1, math.ceil(state.retry_after)))
        return headers

    def _route_state(self, now: float) -> LimitState:
        """The route bucket as it stands after this request (the base class charged it)."""
        limit = self.rate_limits()[0]
        period = limit.period / self.rate_scale
        with self._lock:
            tokens, at = self._buckets.get((limit.name, ""), (float(limit.capacity), now))
        tokens = min(limit.capacity, tokens + max(0.0, now - at) * limit.capacity / period)
        return LimitState(limit, tokens, self._full_in(limit, tokens), 0.0, now)

    def routes(self) -> list[BaseRoute]:
        path = "/api/v10/webhooks/{webhook_id}/{webhook_token}"
        return [
            Route(path, self.get_webhook, methods=["GET"]),
            Route(path, self.execute_webhook, methods=["POST"]),
        ]

    # -- Discord's error shapes -----------------------------------------------------------

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        headers = dict(headers or {})
        body: dict[str, Any] = {"message": message, "code": _CODES.get(status, 0)}
        if status == 429:
            retry_after = self.rate_limit_body
            self.rate_limit_body = None
            if retry_after is None and headers.get("X-RateLimit-Scope") == "shared":
                retry_after = _seconds(headers.get("Retry-After"))
            if retry_after is None:
                retry_after = _seconds(headers.get("X-RateLimit-Reset-After"))
            body = {"message": message or "You are being rate limited.", "global": False}
            if retry_after is not None:
                body["retry_after"] = retry_after
            headers.setdefault("X-RateLimit-Scope", "user")
        return JSONResponse(body, status_code=status, headers=headers)

    def _invalid_form(self, problems: list[str]) -> Response:
        errors: dict[str, Any] = {}
        for problem in problems:
            where, _, text = problem.partition(": ")
            node = errors
            for part in where.split("/"):
                node = node.setdefault(part, {})
            node.setdefault("_errors", []).append({"code": "INVALID", "message": text})
        body = {"message": "Invalid Form Body", "code": 50035, "errors": errors}
        return JSONResponse(body, status_code=400)

    async def refused(self, request: Request) -> Response | None:
        if request.path_params["webhook_id"] != self.webhook_id:
            return self.error(404, "Unknown Webhook")
        if request.path_params["webhook_token"] != self.webhook_token:
            return self.error(401, "Invalid Webhook Token")
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset": f"{time.time() + 2:.3f}",
            "X-RateLimit-Reset-After": "2.000",
            "X-RateLimit-Bucket": "fake-webhook-bucket",
        }

    # -- endpoints ----------------------------------------------------------------------------

    async def get_webhook(self, request: Request) -> Response:
        if (refused := await self.refused(request)) is not None:
            return refused
        return JSONResponse(
            {
                "application_id": None,
                "avatar": None,
                "channel_id": self.channel_id,
                "guild_id": self.guild_id,
                "id": self.webhook_id,
                "name": "Herald",
                "type": 1,
                "token": self.webhook_token,
                "url": self.webhook_url,
            },
            headers=self._rate_headers(),
        )

    @endpoint()
    async def execute_webhook(self, request: Request, fault: FakeFault | None) -> Response:
        kind = request.headers.get("content-type", "")
        files: dict[str, Upload] = {}
        if kind.startswith("multipart/form-data"):
            async with request.form() as form:
                raw = form.get("payload_json")
                for name, value in form.items():
                    if isinstance(value, UploadFile):
                        files[name] = Upload(
                            value.filename or "", value.content_type or "", await value.read()
                        )
            try:
                payload = json.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                payload = None
            media_type = "multipart/form-data"
        elif kind.startswith("application/json"):
            try:
                payload = json.loads(await request.body())
            except ValueError:
                payload = None
            media_type = "application/json"
        else:
            return self.error(400, "Cannot send an empty message")
        if not isinstance(payload, dict):
            return self._invalid_form(["body: The request body contains invalid JSON."])
        spec = openapi("discord/openapi.json")
        problems = spec.errors("POST", SPEC_PATH, payload, media_type) if spec else []
        if spec is not None and problems:
            # The body is anyOf(execute request, update request), the second a subset of
            # the first: the first one's errors say which field is wrong.
            problems = spec.errors_for(EXECUTE_SCHEMA, payload) or problems
            self.check(problems, "execute_webhook")
            return self._invalid_form(problems)
        if (problem := self._problems(payload, files)) is not None:
            return problem
        message = self._store(payload, files)
        if request.query_params.get("wait") != "true":
            return await self.finish(fault, Response(status_code=204))
        body = {
            "id": message.id,
            "type": 0,
            "channel_id": message.channel_id,
            "content": message.content,
            "embeds": message.embeds,
            "attachments": [
                {
                    "id": a.id,
                    "filename": a.filename,
                    "size": a.size,
                    "content_type": a.content_type,
                    "description": a.description,
                    "url": f"https://cdn.example/attachments/{a.id}/{a.filename}",
                }
                for a in message.attachments
            ],
            "webhook_id": self.webhook_id,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
        return await self.finish(fault, JSONResponse(body, headers=self._rate_headers()))

    def _problems(self, payload: dict[str, Any], files: dict[str, Upload]) -> Response | None:
        """What Discord refuses in code rather than in the schema."""
        attachments = payload.get("attachments") or []
        if not (payload.get("content") or payload.get("embeds") or attachments or files):
            return self.error(400, "Cannot send an empty message")
        uploaded = {name.removeprefix("files[").removesuffix("]") for name in files}
        for attachment in attachments:
            if str(attachment.get("id")) not in uploaded:
                return self._invalid_form([f"attachments/{attachment.get('id')}: unknown file"])
        if any(len(upload.data) > MAX_FILE_BYTES for upload in files.values()):
            return self.error(413, "Request entity too large")
        embeds = payload.get("embeds") or []
        total = sum(len(str(e.get(k) or "")) for e in embeds for k in ("title", "description"))
        if total > MAX_EMBEDS_TOTAL:
            return self._invalid_form(["embeds: Embed size exceeds maximum size of 6000"])
        return None

    def _store(self, payload: dict[str, Any], files: dict[str, Upload]) -> Message:
        described = {str(a.get("id")): a for a in payload.get("attachments") or []}
        stored: list[Attachment] = []
        for name, upload in files.items():
            number = name.removeprefix("files[").removesuffix("]")
            meta = described.get(number, {})
            stored.append(
                Attachment(
                    id=str(next(self._ids) + 900_000_000_000_000_000),
                    filename=str(meta.get("filename") or upload.filename),
                    size=len(upload.data),
                    content_type=upload.content_type or "application/octet-stream",
                    description=meta.get("description"),
                )
            )
        with self._store_lock:
            message = Message(
                id=str(next(self._ids) + 1_000_000_000_000_000_000),
                channel_id=self.channel_id,
                content=payload.get("content") or "",
                embeds=list(payload.get("embeds") or []),
                attachments=stored,
                allowed_mentions=payload.get("allowed_mentions"),
                username=payload.get("username"),
            )
            self.messages.append(message)
        return message


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None
