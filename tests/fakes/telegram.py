"""A local Telegram Bot API: ``/bot<token>/<method>`` with the methods Herald calls.

It checks what Telegram checks: the token (malformed → 404 ``Not Found``, unknown → 401
``Unauthorized``), that the chat exists (400 ``chat not found``) and the bot may post there
(403 ``bot is not a member`` / ``bot was kicked``, 400 ``need administrator rights``),
``parse_mode=HTML`` text parsed as strictly as Telegram does (only its tags and
attributes, balanced, its nesting rules, ``& < >`` escaped, only its named entities), the
4,096 characters of a message and 1,024 of a caption counted after entity parsing (in
UTF-16 units, as Telegram's entity offsets are), 2 to 10 items in an album, photos up to
10 MB. Anything Herald should never send is recorded as a violation and refused as
Telegram would. Errors are ``{"ok": false, "error_code", "description", "parameters"}``;
a 429 carries ``parameters.retry_after`` (a ``Retry-After`` header given to ``error()`` is
turned into that, as Telegram sends no such header).

Telegram publishes no machine-readable schema, so there is no spec layer.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeLimit, FakePlatform, Seen

TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]{35}$")
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024

# Formatting options, HTML style: the tags, their entity types, and their attributes.
ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
ATTRIBUTES = {"a": {"href"}, "code": {"class"}, "span": {"class"}, "tg-emoji": {"emoji-id"}}
ATTRIBUTES["blockquote"] = {"expandable"}
STYLES = {"bold", "italic", "underline", "strikethrough", "spoiler"}
TAG = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)"
    r"((?:\s+[A-Za-z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
ATTRIBUTE = re.compile(r"([A-Za-z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9A-Fa-f]+);")
SEND_PARAMS = {
    "chat_id",
    "text",
    "parse_mode",
    "link_preview_options",
    "disable_notification",
    "reply_parameters",
    "photo",
    "caption",
    "media",
}


class CantParse(ValueError):
    pass


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(message: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: the visible text and its entities (UTF-16 offsets)."""
    text: list[str] = []
    offset = 0
    entities: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = []
    i = 0
    while i < len(message):
        char = message[i]
        at = len(message[:i].encode())
        if char == "<":
            match = TAG.match(message, i)
            if not match:
                raise CantParse(f"Unexpected start tag at byte offset {at}")
            closing, name, attributes = match.group(1), match.group(2).lower(), match.group(3)
            if closing:
                if not stack:
                    raise CantParse(f'Unexpected end tag at byte offset {at}, found "</{name}>"')
                if stack[-1]["tag"] != name:
                    raise CantParse(
                        f'Unmatched end tag at byte offset {at}, expected "</{stack[-1]["tag"]}>", '
                        f'found "</{name}>"'
                    )
                entity = stack.pop()
                entity["length"] = offset - entity["offset"]
                del entity["tag"]
                if entity["length"]:
                    entities.append(entity)
            else:
                stack.append(_open_tag(name, attributes, stack, at) | {"offset": offset})
            i = match.end()
            continue
        if char == "&":
            match = ENTITY.match(message, i)
            if not match:
                raise CantParse(f"Unsupported HTML entity at byte offset {at}")
            char = html.unescape(match.group(0))
            i = match.end()
        elif char == ">":
            raise CantParse(f"Unexpected > at byte offset {at}: use &gt;")
        else:
            i += 1
        text.append(char)
        offset += units(char)
    if stack:
        raise CantParse(f'Can\'t find end tag corresponding to start tag "{stack[-1]["tag"]}"')
    return "".join(text), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _open_tag(
    name: str, raw_attributes: str, stack: list[dict[str, Any]], at: int
) -> dict[str, Any]:
    if name not in ENTITY_TYPES:
        raise CantParse(f'Unsupported start tag "{name}" at byte offset {at}')
    attributes = {}
    for match in ATTRIBUTE.finditer(raw_attributes):
        key = match.group(1).lower()
        if key not in ATTRIBUTES.get(name, set()):
            raise CantParse(f'Unsupported attribute "{key}" of tag "{name}" at byte offset {at}')
        attributes[key] = html.unescape(next((g for g in match.groups()[1:] if g), ""))
    kind = ENTITY_TYPES[name]
    outer = [entry["type"] for entry in stack]
    inside_pre = bool(stack) and stack[-1]["type"] == "pre"
    if ("code" in outer or "pre" in outer) and not (name == "code" and inside_pre):
        raise CantParse(f'Tag "{name}" can\'t be inside code or pre, at byte offset {at}')
    if kind in ("code", "pre", "text_link") and (
        "text_link" in outer or (any(t in STYLES for t in outer) and kind != "text_link")
    ):
        raise CantParse(f'Tag "{name}" can\'t be nested this way, at byte offset {at}')
    if kind == "blockquote" and "blockquote" in outer:
        raise CantParse(f"Blockquotes can't be nested, at byte offset {at}")
    entity: dict[str, Any] = {"tag": name, "type": kind}
    if kind == "text_link":
        href = attributes.get("href", "")
        if not re.match(r"^(https?|tg)://\S+|^mailto:\S+", href):
            raise CantParse(f'Unsupported URL "{href}" in tag "a" at byte offset {at}')
        entity["url"] = href
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise CantParse(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    if name == "code" and attributes.get("class"):
        if not inside_pre or not attributes["class"].startswith("language-"):
            raise CantParse(f"Programming language can't be specified here, at byte offset {at}")
        stack[-1]["language"] = attributes["class"].removeprefix("language-")
    return entity


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    data: bytes


@dataclass
class Chat:
    id: int
    type: str  # "channel", "supergroup", "group", "private"
    title: str
    username: str | None = None
    bot: dict[str, Any] = field(default_factory=lambda: {"status": "administrator"})

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type, "title": self.title}
        if self.username:
            data["username"] = self.username
        return data


def _form(seen: Seen) -> dict[str, Any]:
    kind = seen.headers.get("content-type", "")
    if kind.startswith("application/json"):
        try:
            data = json.loads(seen.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    if kind.startswith("multipart/form-data"):
        found = re.search(rb'name="chat_id"\r\n\r\n([^\r]*)', seen.body)
        media = re.search(rb'name="media"\r\n\r\n([^\r]*)', seen.body)
        return {
            "chat_id": found[1].decode() if found else "",
            "media": json.loads(media[1]) if media else None,
        }
    if kind.startswith("application/x-www-form-urlencoded"):
        return dict(urllib.parse.parse_qsl(seen.body.decode()))
    return dict(urllib.parse.parse_qsl(seen.query))


def _chat_of(seen: Seen) -> str:
    return str(_form(seen).get("chat_id", ""))


def _messages_in(seen: Seen) -> int:
    media = _form(seen).get("media")
    if isinstance(media, str):
        try:
            media = json.loads(media)
        except ValueError:
            media = None
    return len(media) if isinstance(media, list) and media else 1


class FakeTelegram(FakePlatform):
    name = "telegram"

    def __init__(self) -> None:
        super().__init__()
        self.bot_id = 7123456789
        self.token = f"{self.bot_id}:AA" + secrets.token_urlsafe(25)[:33]
        assert TOKEN_SHAPE.match(self.token)
        self.chats = {
            chat.id: chat
            for chat in (
                Chat(
                    -1001987654321,
                    "channel",
                    "Herald News ✨",
                    "heraldnews",
                    {"status": "administrator", "can_post_messages": True},
                ),
                Chat(
                    -1001555000111,
                    "channel",
                    "Private notes",
                    None,
                    {"status": "administrator", "can_post_messages": True},
                ),
                Chat(
                    -1001222333444,
                    "channel",
                    "Read-only admin",
                    "readonlyadmin",
                    {"status": "administrator", "can_post_messages": False},
                ),
                Chat(-1001777888999, "channel", "Left behind", "leftbehind", {"status": "left"}),
            )
        }
        self.messages: list[dict[str, Any]] = []
        self._next_id: dict[int, int] = {}

    # -- helpers for tests ----------------------------------------------------------------

    def credentials(self, **changes: Any) -> dict[str, Any]:
        values = {"bot_token": self.token, "chat_id": "@heraldnews", "api_url": self.base_url}
        return values | changes

    def texts(self) -> list[str]:
        """The visible text of every text message, oldest first."""
        return [m["text"] for m in self.messages if m["kind"] == "text"]

    # -- the platform's shapes ------------------------------------------------------------

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        headers = dict(headers or {})
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": message}
        retry_after = headers.pop("Retry-After", None)
        if retry_after is not None:
            body["parameters"] = {"retry_after": int(retry_after)}
        return JSONResponse(body, status_code=status, headers=headers)

    def _ok(self, result: Any) -> Response:
        return JSONResponse({"ok": True, "result": result})

    def _chat(self, chat_id: Any) -> Chat | None:
        value = str(chat_id or "")
        if value.startswith("@"):
            return next((c for c in self.chats.values() if c.username == value[1:]), None)
        return self.chats.get(int(value)) if re.fullmatch(r"-?\d+", value) else None

    def _may_post(self, chat: Chat) -> Response | None:
        status = chat.bot.get("status")
        if status == "kicked":
            return self.error(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        if status == "left":
            return self.error(403, f"Forbidden: bot is not a member of the {chat.type} chat")
        if chat.type == "channel" and not chat.bot.get("can_post_messages"):
            return self.error(400, "Bad Request: need administrator rights in the channel chat")
        return None

    async def _params(self, request: Request) -> dict[str, Any]:
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            data = json.loads(await request.body() or b"{}")
            return data if isinstance(data, dict) else {}
        if kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            params: dict[str, Any] = {}
            async with request.form() as form:
                for key, value in form.items():
                    if isinstance(value, UploadFile):
                        params[key] = Upload(value.filename or "", await value.read())
                    else:
                        params[key] = value
            return params
        return dict(request.query_params)

    # -- endpoints ------------------------------------------------------------------------

    def rate_limits(self) -> list[FakeLimit]:
        # core.telegram.org/bots/faq: about 1 message per second per chat (short bursts
        # pass: this fake lets 3 through), 20 per minute per group or channel, about 30
        # per second for the bot. An album counts a message per photo.
        sends = ("/sendMessage", "/sendPhoto", "/sendMediaGroup")
        return [
            FakeLimit("chat", 3, 3, sends, key=_chat_of, cost=_messages_in),
            FakeLimit(
                "group",
                20,
                60,
                sends,
                key=lambda seen: chat if (chat := _chat_of(seen)).startswith(("-", "@")) else "",
                cost=_messages_in,
            ),
            FakeLimit("bot", 30, 1, sends, cost=_messages_in),
        ]

    def routes(self) -> list[BaseRoute]:
        return [Route("/bot{token}/{method}", self.call, methods=["GET", "POST"])]

    async def call(self, request: Request) -> Response:
        token = request.path_params["token"]
        if not TOKEN_SHAPE.match(token):
            return self.error(404, "Not Found")
        if token != self.token:
            return self.error(401, "Unauthorized")
        method = request.path_params["method"]
        handler = {
            "getMe": self.get_me,
            "getChat": self.get_chat,
            "getChatMember": self.get_chat_member,
            "sendMessage": self.send_message,
            "sendPhoto": self.send_photo,
            "sendMediaGroup": self.send_media_group,
        }.get(method)
        if handler is None:
            return self.error(404, "Not Found")
        return await handler(await self._params(request))

    async def get_me(self, params: dict[str, Any]) -> Response:
        return self._ok(
            {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Herald",
                "username": "herald_test_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )

    async def get_chat(self, params: dict[str, Any]) -> Response:
        chat = self._chat(params.get("chat_id"))
        if chat is None:
            return self.error(400, "Bad Request: chat not found")
        return self._ok(chat.public() | {"accent_color_id": 1, "max_reaction_count": 11})

    async def get_chat_member(self, params: dict[str, Any]) -> Response:
        chat = self._chat(params.get("chat_id"))
        if chat is None:
            return self.error(400, "Bad Request: chat not found")
        if str(params.get("user_id")) != str(self.bot_id):
            return self.error(400, "Bad Request: user not found")
        user = {"id": self.bot_id, "is_bot": True, "first_name": "Herald"}
        return self._ok({"user": user} | chat.bot)

    async def _sendable(self, params: dict[str, Any], method: str) -> Chat | Response:
        """The checks every send method shares, in Telegram's order."""
        unknown = sorted(set(params) - SEND_PARAMS - {f"photo{i}" for i in range(10)})
        refused = self.check([f"unknown parameter {k!r}" for k in unknown], method)
        if refused is not None:
            return refused
        chat = self._chat(params.get("chat_id"))
        if chat is None:
            return self.error(400, "Bad Request: chat not found")
        return self._may_post(chat) or chat

    def _parse(self, text: str, where: str, limit: int) -> tuple[str, list[Any]] | Response:
        try:
            visible, entities = parse_html(text)
        except CantParse as exc:
            return self.check([f"can't parse entities: {exc}"], where) or self.error(400, "")
        if units(visible.strip()) > limit:
            what = "message is too long" if limit == MAX_TEXT else "message caption is too long"
            return self.check([what], where) or self.error(400, "")
        return visible, entities

    def _store(self, chat: Chat, **message: Any) -> dict[str, Any]:
        with self._lock:
            number = self._next_id.get(chat.id, 100) + 1
            self._next_id[chat.id] = number
            stored = {"chat_id": chat.id, "message_id": number, "date": int(time.time())}
            self.messages.append(stored | message)
        return {"message_id": number, "date": stored["date"], "chat": chat.public()} | {
            k: v for k, v in message.items() if k in ("text", "entities", "caption")
        }

    async def send_message(self, params: dict[str, Any]) -> Response:
        chat = await self._sendable(params, "sendMessage")
        if not isinstance(chat, Chat):
            return chat
        errors = []
        if params.get("parse_mode") != "HTML":
            errors.append("Herald sends parse_mode HTML")
        preview = params.get("link_preview_options")
        allowed = {"is_disabled", "url", "prefer_small_media", "prefer_large_media"}
        if preview is not None and (
            not isinstance(preview, dict) or set(preview) - (allowed | {"show_above_text"})
        ):
            errors.append("link_preview_options must be a LinkPreviewOptions object")
        if not str(params.get("text", "")).strip():
            errors.append("Bad Request: message text is empty")
        refused = self.check(errors, "sendMessage")
        if refused is not None:
            return refused
        parsed = self._parse(str(params["text"]), "sendMessage", MAX_TEXT)
        if isinstance(parsed, Response):
            return parsed
        fault = self.take_fault()
        failed = self.fault_response(fault)
        if failed is not None:
            return failed
        text, entities = parsed
        result = self._store(
            chat, kind="text", text=text, entities=entities, html=params["text"], preview=preview
        )
        return await self.finish(fault, self._ok(result))

    async def send_photo(self, params: dict[str, Any]) -> Response:
        chat = await self._sendable(params, "sendPhoto")
        if not isinstance(chat, Chat):
            return chat
        photo = self._attachment(params, params.get("photo"))
        refused = self.check(
            [] if isinstance(photo, Upload) else ["photo must be an uploaded file"],
            "sendPhoto",
        )
        if refused is not None:
            return refused
        assert isinstance(photo, Upload)
        caption = self._caption(params, "sendPhoto")
        if isinstance(caption, Response):
            return caption
        fault = self.take_fault()
        failed = self.fault_response(fault)
        if failed is not None:
            return failed
        if len(photo.data) > MAX_PHOTO_BYTES:
            return self.error(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        result = self._store(chat, kind="photo", size=len(photo.data), caption=caption)
        return await self.finish(fault, self._ok(result))

    async def send_media_group(self, params: dict[str, Any]) -> Response:
        chat = await self._sendable(params, "sendMediaGroup")
        if not isinstance(chat, Chat):
            return chat
        try:
            media = json.loads(str(params.get("media", "")))
        except ValueError:
            media = None
        errors = []
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            errors.append("media must be a JSON array of 2-10 InputMedia")
            media = []
        files = []
        for index, item in enumerate(media):
            upload = self._attachment(params, item.get("media") if isinstance(item, dict) else None)
            if not isinstance(item, dict) or item.get("type") != "photo":
                errors.append(f"media[{index}] must be an InputMediaPhoto")
            elif not isinstance(upload, Upload):
                errors.append(f"media[{index}].media must be attach://<a file in this request>")
            else:
                files.append((upload, item.get("caption", "")))
        refused = self.check(errors, "sendMediaGroup")
        if refused is not None:
            return refused
        fault = self.take_fault()
        failed = self.fault_response(fault)
        if failed is not None:
            return failed
        group = secrets.token_hex(8)
        results = []
        for upload, caption in files:
            results.append(
                self._store(chat, kind="photo", size=len(upload.data), caption=caption, group=group)
            )
        return await self.finish(fault, self._ok(results))

    def _attachment(self, params: dict[str, Any], reference: Any) -> Any:
        if isinstance(reference, str) and reference.startswith("attach://"):
            return params.get(reference.removeprefix("attach://"))
        return reference

    def _caption(self, params: dict[str, Any], where: str) -> str | Response:
        caption = str(params.get("caption", ""))
        if not caption:
            return ""
        parsed = self._parse(caption, where, MAX_CAPTION)
        return parsed if isinstance(parsed, Response) else parsed[0]
