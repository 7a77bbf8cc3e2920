"""A local Slack: incoming webhooks and the few Web API methods Herald calls.

- Incoming webhooks at ``/services/<team>/<hook>/<secret>``: an unknown hook answers
  404 ``no_service``, a wrong secret 403 ``invalid_token``, a body that is not JSON 400
  ``invalid_payload``, no text 400 ``no_text``, an archived channel 410
  ``channel_is_archived``; success is a plain-text ``ok``.
- Web API at ``/api/<method>``: ``Authorization: Bearer xoxb-…``; errors are HTTP 200
  ``{"ok": false, "error": code}`` as Slack sends them (``not_authed``, ``invalid_auth``,
  ``token_revoked``, ``channel_not_found``, ``not_in_channel``, ``no_text``,
  ``msg_too_long``, ``thread_not_found``, ``missing_scope``), with ``X-OAuth-Scopes`` on
  every answer. Rate limits are HTTP 429 ``{"ok": false, "error": "ratelimited"}`` with
  ``Retry-After``.

Every Web API call is checked against Slack's published Swagger 2.0 description
(``slack/slack_web_openapi_v2.json``): the parameter names the method declares, their
types and which are required. That file dates from 2020; parameters Slack added since
and documents today are listed in ``NEWER_THAN_SPEC``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, FakePlatform, endpoint
from tests.fakes.specs import spec_path

MAX_TEXT = 40_000
BOT_SCOPES = ("chat:write", "channels:read", "channels:history")

# Documented on api.slack.com today, absent from the 2020 Swagger file.
NEWER_THAN_SPEC: dict[str, dict[str, str]] = {
    "chat.postMessage": {"metadata": "object"},  # message metadata, 2022
    "conversations.history": {"include_all_metadata": "boolean"},
}


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any] | None:
    path = spec_path("slack/slack_web_openapi_v2.json")
    return json.loads(path.read_text()) if path is not None else None


def _type_ok(kind: str, value: Any, *, typed: bool) -> bool:
    """Does ``value`` fit a Swagger 2.0 parameter type? ``typed``: it came in a JSON body
    (where Slack also takes ``blocks``/``attachments`` as arrays), else as a string."""
    if not typed:
        text = str(value)
        return {
            "boolean": text in ("true", "false", "1", "0"),
            "integer": text.lstrip("-").isdigit(),
            "number": text.replace(".", "", 1).lstrip("-").isdigit(),
        }.get(kind, True)
    checks: dict[str, Any] = {
        "string": isinstance(value, (str, list)),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "object": isinstance(value, dict),
    }
    return bool(checks.get(kind, True))


def slack_param_errors(method: str, params: Mapping[str, Any], *, typed: bool) -> list[str]:
    """Ways ``params`` break ``method``'s declared parameters (empty when they fit)."""
    spec = _spec()
    if spec is None:
        return []
    operations = spec["paths"].get(f"/{method}")
    if operations is None:
        return [f"{method} is not a Slack Web API method"]
    (operation,) = operations.values()
    declared = {
        p["name"]: p["type"]
        for p in operation.get("parameters", [])
        if p["in"] in ("formData", "query")
    }
    required = {
        p["name"]
        for p in operation.get("parameters", [])
        if p["in"] in ("formData", "query") and p.get("required")
    }
    declared |= NEWER_THAN_SPEC.get(method, {})
    errors = [f"{name}: required" for name in sorted(required - set(params))]
    for name, value in params.items():
        if name == "token":
            errors.append("token: send it in the Authorization header, not the body")
        elif name not in declared:
            errors.append(f"{name}: not a parameter of {method}")
        elif not _type_ok(declared[name], value, typed=typed):
            errors.append(f"{name}: not a {declared[name]}")
    return errors


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    via: str = "bot"


@dataclass
class Channel:
    id: str
    name: str
    bot_is_member: bool = True
    archived: bool = False
    messages: list[Message] = field(default_factory=list)


class FakeSlack(FakePlatform):
    name = "slack"

    def __init__(self, *, scopes: tuple[str, ...] = BOT_SCOPES) -> None:
        super().__init__()
        self.team_id, self.hook_id = "T0HERALD1", "B0HERALD1"
        self.hook_secret = "hookSecret0123456789abcdef"
        self.bot_token = "xoxb-1111-2222-fakeBotToken0123456789"
        self.revoked_tokens = {"xoxb-1111-2222-revokedToken000000000"}
        self.scopes = scopes
        self.channels = {
            "C0HERALD01": Channel("C0HERALD01", "announcements"),
            "C0OUTSIDE1": Channel("C0OUTSIDE1", "elsewhere", bot_is_member=False),
        }
        self.hook_channel = "C0HERALD01"
        self._clock = itertools.count(1)
        self._store_lock = threading.Lock()

    # -- what tests look at --------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/services/{self.team_id}/{self.hook_id}/{self.hook_secret}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def messages(self) -> list[Message]:
        return [m for c in self.channels.values() for m in c.messages]

    # -- answers in Slack's shapes -------------------------------------------------------

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        # Web API shape; the webhook route answers plain text itself.
        return JSONResponse(
            {"ok": False, "error": message}, status_code=status, headers=dict(headers or {})
        )

    def _ok(self, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"ok": True, **body}, headers=self._scope_header())

    def _refuse(self, code: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"ok": False, "error": code, **extra}, headers=self._scope_header())

    def _scope_header(self) -> dict[str, str]:
        return {"X-OAuth-Scopes": ",".join(self.scopes)}

    def _new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._clock):06d}"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/services/{team}/{hook}/{secret}", self.incoming_webhook, methods=["POST"]),
            Route("/api/auth.test", self.auth_test, methods=["GET", "POST"]),
            Route("/api/conversations.info", self.conversations_info, methods=["GET"]),
            Route("/api/conversations.history", self.conversations_history, methods=["GET"]),
            Route("/api/chat.postMessage", self.post_message, methods=["POST"]),
        ]

    # -- incoming webhook ----------------------------------------------------------------

    async def incoming_webhook(self, request: Request) -> Response:
        params = request.path_params
        if (params["team"], params["hook"]) != (self.team_id, self.hook_id):
            return PlainTextResponse("no_service", status_code=404)
        if params["secret"] != self.hook_secret:
            return PlainTextResponse("invalid_token", status_code=403)
        fault = self.take_fault()
        if fault is not None and fault.status is not None:
            return PlainTextResponse(
                fault.message, status_code=fault.status, headers=dict(fault.headers)
            )
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(payload, dict):
            return PlainTextResponse("invalid_payload", status_code=400)
        channel = self.channels[self.hook_channel]
        if channel.archived:
            return PlainTextResponse("channel_is_archived", status_code=410)
        text = payload.get("text")
        if not text and not payload.get("blocks"):
            return PlainTextResponse("no_text", status_code=400)
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            # Recorded as a violation: Herald must never send this.
            self.check([f"text: a string of at most {MAX_TEXT} characters"], "webhook")
            return PlainTextResponse("invalid_payload", status_code=400)
        with self._store_lock:
            channel.messages.append(Message(channel.id, self._new_ts(), text, via="webhook"))
        return await self.finish(fault, PlainTextResponse("ok"))

    # -- Web API ---------------------------------------------------------------------------

    def _token_problem(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return "not_authed"
        token = header.removeprefix("Bearer ")
        if token in self.revoked_tokens:
            return "token_revoked"
        return None if token == self.bot_token else "invalid_auth"

    async def refused(self, request: Request) -> Response | None:
        """The Web API's answer to a missing, revoked or wrong bot token, else None."""
        problem = self._token_problem(request)
        return self._refuse(problem) if problem else None

    def _checked_query(self, request: Request, method: str) -> Response | None:
        params = dict(request.query_params)
        return self.check(slack_param_errors(method, params, typed=False), method)

    async def auth_test(self, request: Request) -> Response:
        if (refused := await self.refused(request)) is not None:
            return refused
        return self._ok(
            {
                "url": "https://herald-test.slack.com/",
                "team": "Herald Test",
                "user": "herald",
                "team_id": self.team_id,
                "user_id": "U0HERALDBOT",
                "bot_id": "B0HERALDBOT",
            }
        )

    async def conversations_info(self, request: Request) -> Response:
        if (refused := await self.refused(request)) is not None:
            return refused
        if refused := self._checked_query(request, "conversations.info"):
            return refused
        if "channels:read" not in self.scopes:
            return self._refuse("missing_scope", needed="channels:read")
        channel = self.channels.get(request.query_params.get("channel", ""))
        if channel is None:
            return self._refuse("channel_not_found")
        return self._ok(
            {
                "channel": {
                    "id": channel.id,
                    "name": channel.name,
                    "is_channel": True,
                    "is_member": channel.bot_is_member,
                    "is_archived": channel.archived,
                }
            }
        )

    @endpoint()
    async def conversations_history(self, request: Request, fault: FakeFault | None) -> Response:
        if refused := self._checked_query(request, "conversations.history"):
            return refused
        if "channels:history" not in self.scopes:
            return self._refuse("missing_scope", needed="channels:history")
        query = request.query_params
        channel = self.channels.get(query.get("channel", ""))
        if channel is None:
            return self._refuse("channel_not_found")
        limit = int(query.get("limit", "100"))
        with_metadata = query.get("include_all_metadata") in ("true", "1")
        top_level = [m for m in channel.messages if m.thread_ts is None]
        listed = []
        for message in reversed(top_level[-limit:] if limit else top_level):
            shown: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text}
            if with_metadata and message.metadata is not None:
                shown["metadata"] = message.metadata
            listed.append(shown)
        return await self.finish(fault, self._ok({"messages": listed, "has_more": False}))

    @endpoint()
    async def post_message(self, request: Request, fault: FakeFault | None) -> Response:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._refuse("invalid_form_data")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._refuse("invalid_json")
        if not isinstance(body, dict):
            return self._refuse("json_not_object")
        if refused := self.check(
            slack_param_errors("chat.postMessage", body, typed=True), "chat.postMessage"
        ):
            return refused
        channel = self.channels.get(body["channel"])
        if channel is None:
            return self._refuse("channel_not_found")
        if channel.archived:
            return self._refuse("is_archived")
        if not channel.bot_is_member and "chat:write.public" not in self.scopes:
            return self._refuse("not_in_channel")
        text = body.get("text") or ""
        if not text and not body.get("blocks"):
            return self._refuse("no_text")
        if len(text) > MAX_TEXT:
            return self._refuse("msg_too_long")
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and not any(m.ts == thread_ts for m in channel.messages):
            return self._refuse("thread_not_found")
        metadata = body.get("metadata")
        if metadata is not None and (
            not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            return self._refuse("invalid_metadata_format")
        with self._store_lock:
            message = Message(channel.id, self._new_ts(), text, thread_ts, metadata)
            channel.messages.append(message)
        answer = self._ok(
            {
                "channel": channel.id,
                "ts": message.ts,
                "message": {"type": "message", "text": text, "ts": message.ts},
            }
        )
        return await self.finish(fault, answer)
