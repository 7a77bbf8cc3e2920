"""Telegram: a bot posts to a channel, group or chat through the Bot API.

Text goes out with ``parse_mode=HTML``: the post's Markdown becomes Telegram's small HTML
subset (headings and bold → ``<b>``, links → ``<a href>``, code → ``<code>``/``<pre>``,
quotes → ``<blockquote>``, lists → plain lines with bullets), with ``& < >`` (and ``"``
in attributes) escaped. A message holds 4,096 characters *after* entity parsing (tags
don't count, ``&amp;`` counts one), so :meth:`TelegramAdapter.measure` counts that, and a
longer post goes out as several consecutive messages, cut between paragraphs or sentences;
tags open across a cut are closed and opened again.

Images go first, without a caption: one with ``sendPhoto``, 2 to 10 as an album with
``sendMediaGroup``. Telegram has no alt text; the caption is visible text for everyone, so
Herald leaves it empty.

The Bot API has no idempotency key and no way to read a channel's history: the message ids
already sent are kept in the channel's progress (a retry carries on with the next part),
but after an answer that never came, nothing can tell whether the message went out.

The bot token is part of every URL, so it is scrubbed from any error that could carry it,
and from httpx's request log lines.

Why one module over 500 lines: most of it is the HTML-subset renderer (entity-length
counting, cuts that close and reopen tags), which only Telegram's API needs.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any, ClassVar

import httpx
from pydantic import Field

from herald.adapters import base
from herald.adapters.http import (
    HttpAdapter,
    HttpSettings,
    is_retryable_status,
    retry_after_seconds,
)
from herald.adapters.registry import register
from herald.adapters.text import markdown_to_html, split_thread

PLATFORM = "telegram"

# Bot API: "Text of the message to be sent, 1-4096 characters after entities parsing".
MAX_TEXT = 4096
# sendMediaGroup: "an array describing messages to be sent, must include 2-10 items".
MAX_PHOTOS = 10
# sendPhoto: "The photo must be at most 10 MB in size. The photo's width and height must
# not exceed 10000 in total. Width and height ratio must be at most 20."
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
# Bot FAQ: "your bot will not be able to send more than 20 messages per minute to the same
# group" (channels included, per @BotSupport).
MESSAGES_PER_MINUTE = 20
_FAQ = "core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this"
_SENDS = ("/sendMessage", "/sendPhoto", "/sendMediaGroup")
# Bot FAQ: "avoid sending more than one message per second" in a chat; an album counts
# a message per photo.
CHAT_BUCKET = base.Bucket(
    "chat",
    1,
    1,
    base.Scope.CHAT,
    cost=1,
    media_cost=1,
    corrected_by=_SENDS,
    source=f"{_FAQ} (about 1 message per second per chat)",
)
# ... "no more than 20 messages per minute to the same group" (channels too).
GROUP_BUCKET = base.Bucket(
    "group",
    MESSAGES_PER_MINUTE,
    60,
    base.Scope.CHAT,
    cost=1,
    media_cost=1,
    corrected_by=_SENDS,
    source=f"{_FAQ} (20 messages per minute per group or channel)",
)
# ... "not more than 30 messages per second" for the bot in all.
BOT_BUCKET = base.Bucket(
    "bot",
    30,
    1,
    base.Scope.APP,
    cost=1,
    media_cost=1,
    source=f"{_FAQ} (about 30 messages per second per bot)",
)

_TOKEN_IN_TEXT = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
_TAG = re.compile(r"<[^>]*>")
_TAG_NAME = re.compile(r"</?([a-z-]+)")
_EMPTY_ELEMENT = re.compile(r"<([a-z-]+)(?:\s[^>]*)?></\1>")
# While splitting, each tag stands in as one character from Supplementary Private Use
# Area-A (it counts 0) and each entity as one from Area-B (it counts 1). Characters from
# those areas in the post itself mean nothing to a reader and are dropped.
_PRIVATE = re.compile("[\U000f0000-\U0010ffff]")
_TAG_MASK = re.compile("[\U000f0000-\U000ffffd]")
_ENTITY_MASK = re.compile("[\U00100000-\U0010fffd]")
_MARKUP = re.compile(r"<[^>]*>|&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.IGNORECASE)


class _RedactBotTokens(logging.Filter):
    """httpx logs every request's URL at INFO, and the URL holds the bot token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN_IN_TEXT.search(message):
            record.msg, record.args = _TOKEN_IN_TEXT.sub("bot[redacted]", message), None
        return True


logging.getLogger("httpx").addFilter(_RedactBotTokens())


def utf16_length(text: str) -> int:
    # Telegram counts entity offsets and lengths in UTF-16 code units; counting the limit
    # the same way is never more generous than Telegram.
    return len(text.encode("utf-16-le")) // 2


def visible_text(message: str) -> str:
    """What a reader sees of a message in Telegram's HTML: tags gone, entities decoded."""
    return html.unescape(_TAG.sub("", message))


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


class TelegramCredentials(base.StrictModel):
    bot_token: str = Field(
        pattern=r"^\d+:[A-Za-z0-9_-]+$",
        description="The bot's token from @BotFather, like 123456789:AAE...",
    )
    chat_id: str = Field(
        pattern=r"^(@[A-Za-z][A-Za-z0-9_]{3,}|-?\d+)$",
        description="Where to post: @channelname for a public channel, or the numeric id "
        "(-100... for channels and supergroups).",
    )
    api_url: str = Field(
        "https://api.telegram.org",
        pattern=r"^https?://[^/\s]+$",
        description="Bot API server (a self-hosted telegram-bot-api server works too).",
    )


class TelegramSettings(HttpSettings):
    link_preview: bool = Field(
        True, description="Show a preview of the post's canonical URL under its message."
    )
    disable_notification: bool = Field(
        False, description="Send silently: subscribers get no sound."
    )


@dataclass
class _Sent:
    message_ids: list[int]
    chat: dict[str, Any] = field(default_factory=dict)


@register
class TelegramAdapter(HttpAdapter[TelegramCredentials, TelegramSettings]):
    platform = PLATFORM
    display_name = "Telegram"
    credentials_model = TelegramCredentials
    settings_model = TelegramSettings
    limits = base.Limits(
        max_length=MAX_TEXT,
        max_media=MAX_PHOTOS,
        max_media_bytes=MAX_PHOTO_BYTES,
        requests_per_minute=MESSAGES_PER_MINUTE,
        buckets=(CHAT_BUCKET, BOT_BUCKET),
    )
    honours_idempotency_key: ClassVar[bool] = False

    def __init__(
        self,
        credentials: TelegramCredentials,
        settings: TelegramSettings,
        store: base.ChannelStore | None = None,
    ) -> None:
        super().__init__(credentials, settings, store)
        if credentials.chat_id.startswith(("-", "@")):  # a group or a channel
            self.limits = replace(self.limits, buckets=(*self.limits.buckets, GROUP_BUCKET))

    def budget_scope(self, scope: base.Scope) -> str | None:
        bot = f"{self.credentials.api_url}|{self.credentials.bot_token}"
        return bot if scope == base.Scope.APP else f"{bot}|{self.credentials.chat_id}"

    def measure(self, text: str) -> int:
        return utf16_length(visible_text(text))

    # -- HTTP -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        payload: dict[str, Any],
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        """One Bot API method; the ``result`` of ``{"ok": true, "result": ...}``."""
        url = f"{self.credentials.api_url.rstrip('/')}/bot{self.credentials.bot_token}/{method}"
        if files:
            # Multipart fields are strings; nested values travel as JSON.
            data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()}
            request = self.build_request("POST", url, data=data, files=files)
        else:
            request = self.build_request("POST", url, json=payload)
        failure: base.AdapterError
        try:
            response = self.transmit(request)
        except base.AdapterError as exc:
            failure = exc  # a transport error, minus any trace of the token (below)
        else:
            # Telegram's own body says what went wrong (description, retry_after).
            body = _json_object(response)
            if response.is_success and body.get("ok") is True:
                return body.get("result")
            failure = _from_answer(response)
        raise self._scrubbed(failure)

    def _scrubbed(self, exc: base.AdapterError) -> base.AdapterError:
        """The error itself if no token is in it or its chain; else a clean copy, unchained."""
        token = self.credentials.bot_token
        secret = token.partition(":")[2]  # the bot id before the colon is public
        chain: list[BaseException] = []
        current: BaseException | None = exc
        while current is not None and current not in chain:
            chain.append(current)
            current = current.__cause__ or current.__context__
        if not any(secret in f"{e!s} {e!r}" for e in chain):
            return exc
        message = exc.message.replace(token, "[redacted]").replace(secret, "[redacted]")
        if isinstance(exc, base.RetryableError):
            return base.RetryableError(message, retry_after=exc.retry_after)
        return type(exc)(message)

    # -- verify -----------------------------------------------------------------------

    def verify(self) -> base.Identity:
        """The bot (getMe), the chat (getChat) and the bot's right to post there."""
        bot = self._call("getMe", {})
        chat = self._call("getChat", {"chat_id": self.credentials.chat_id})
        if not isinstance(bot, dict) or not isinstance(chat, dict):
            raise base.PermanentError("Telegram answered getMe/getChat without an object")
        kind = chat.get("type")
        if kind in ("channel", "group", "supergroup"):
            member = self._call(
                "getChatMember", {"chat_id": self.credentials.chat_id, "user_id": bot.get("id")}
            )
            _check_can_post(kind, member if isinstance(member, dict) else {})
        name = f"@{bot.get('username') or bot.get('first_name') or 'bot'}"
        where = chat.get("title") or chat.get("username") or chat.get("first_name") or ""
        return base.Identity(
            name=f"{name} in {where}" if where else name,
            detail={"bot_id": bot.get("id"), "chat_id": chat.get("id"), "chat_type": kind},
        )

    # -- render -----------------------------------------------------------------------

    def render(self, post: base.PostContent) -> base.Rendition:
        blocks = []
        if post.title.strip():
            blocks.append(f"<b>{_escape(_clean(post.title.strip()))}</b>")
        body = telegram_html(post.body)
        if body:
            blocks.append(body)
        link = post.canonical_url
        if link and link not in visible_text(body):
            blocks.append(_escape(link))
        parts = split_html("\n\n".join(blocks), MAX_TEXT)
        extra: dict[str, Any] = {}
        if link:
            extra["link_preview_url"] = link
        return base.Rendition(
            format="html",
            parts=tuple(parts),
            title=post.title,
            extra=extra,
            media=_usable_photos(post.media),
        )

    # -- publish ----------------------------------------------------------------------

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        progress = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(progress)
        if kept is not None:
            return kept
        # One step per request: the album (if any), then each part of the text.
        steps: list[tuple[str, Any]] = []
        if rendition.media:
            steps.append(("media", rendition.media))
        steps += [("text", part) for part in rendition.parts]
        done: list[list[int]] = progress.get("done", [])
        chat: dict[str, Any] = progress.get("chat", {})
        for kind, step in steps[len(done) :]:
            sent = self._send_media(step) if kind == "media" else self._send_text(step, rendition)
            done.append(sent.message_ids)
            chat = sent.chat or chat
            self.store.save_progress(idempotency_key, {"done": done, "chat": chat})
        message_ids = [i for ids in done for i in ids]
        chat_id = chat.get("id", self.credentials.chat_id)
        receipt = base.Receipt(
            external_id=f"{chat_id}:{message_ids[0]}",
            url=message_url(chat, message_ids[0]),
            data={"chat_id": chat_id, "message_ids": message_ids},
        )
        self.store.save_receipt(idempotency_key, receipt, {"done": done, "chat": chat})
        return receipt

    def _common(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"chat_id": self.credentials.chat_id}
        if self.settings.disable_notification:
            payload["disable_notification"] = True
        return payload

    def _send_text(self, part: str, rendition: base.Rendition) -> _Sent:
        payload = self._common() | {"text": part, "parse_mode": "HTML"}
        preview = rendition.extra.get("link_preview_url")
        if preview and self.settings.link_preview and preview in visible_text(part):
            payload["link_preview_options"] = {"url": preview}
        elif preview or not self.settings.link_preview:
            # The preview belongs to the part with the post's link, not to other links.
            payload["link_preview_options"] = {"is_disabled": True}
        return _sent([self._call("sendMessage", payload)])

    def _send_media(self, media: tuple[base.MediaItem, ...]) -> _Sent:
        files = {f"photo{i}": (m.filename, m.read(), m.content_type) for i, m in enumerate(media)}
        if len(media) == 1:
            payload = self._common() | {"photo": "attach://photo0"}
            return _sent([self._call("sendPhoto", payload, files)])
        album = [{"type": "photo", "media": f"attach://{name}"} for name in files]
        result = self._call("sendMediaGroup", self._common() | {"media": album}, files)
        return _sent(result if isinstance(result, list) else [])

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        # Only what this channel's progress remembers: the Bot API cannot list a chat's
        # messages, so a message whose answer was lost cannot be looked up.
        return self.store.receipt(idempotency_key)


# -- answers ---------------------------------------------------------------------------


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _from_answer(response: httpx.Response) -> base.AdapterError:
    """Telegram's ``{"ok": false, "error_code", "description", "parameters"}`` as an error."""
    body = _json_object(response)
    status = response.status_code
    error_code = body.get("error_code")
    code: int = error_code if isinstance(error_code, int) else status
    description = str(body.get("description") or response.reason_phrase or "no description")
    message = f"{PLATFORM} answered {code}: {description}"[:600]
    given = body.get("parameters")
    parameters: dict[str, Any] = given if isinstance(given, dict) else {}
    if code in (401, 404):
        # 401 Unauthorized: a revoked token; 404 Not Found: no bot has this token.
        return base.AuthError(message)
    if code == 403 or any(words in description.lower() for words in _NOT_ALLOWED_THERE):
        # Forbidden: bot was kicked / is not a member; the chat is gone; no right to post.
        return base.AuthError(message)
    if is_retryable_status(code):
        wait = parameters.get("retry_after")
        retry_after = float(wait) if isinstance(wait, int | float) else None
        return base.RetryableError(
            message, retry_after=retry_after or retry_after_seconds(response)
        )
    if isinstance(parameters.get("migrate_to_chat_id"), int):
        message += f" (the group is now the supergroup {parameters['migrate_to_chat_id']}"
        message += ": put that id in the channel's chat_id)"
    return base.PermanentError(message)


_NOT_ALLOWED_THERE = ("chat not found", "need administrator rights", "not enough rights")


def _check_can_post(kind: str, member: dict[str, Any]) -> None:
    status = member.get("status")
    if kind == "channel":
        allowed = status == "creator" or (
            status == "administrator" and member.get("can_post_messages") is True
        )
        if not allowed:
            raise base.AuthError(
                "the bot is not an administrator of the channel with 'Post messages': add it "
                "in the channel's Administrators settings"
            )
    elif status in ("left", "kicked") or (
        status == "restricted" and member.get("can_send_messages") is False
    ):
        raise base.AuthError(f"the bot cannot send messages in this {kind} (status: {status})")


def _sent(messages: list[Any]) -> _Sent:
    ids = [m["message_id"] for m in messages if isinstance(m, dict) and "message_id" in m]
    if not ids:
        raise base.PermanentError("Telegram answered without a message_id")
    chat = messages[0].get("chat") if isinstance(messages[0].get("chat"), dict) else {}
    return _Sent(message_ids=ids, chat={k: chat[k] for k in ("id", "username") if k in chat})


def message_url(chat: dict[str, Any], message_id: int) -> str | None:
    """A public channel's t.me link, or the t.me/c/ link members of a private one can open."""
    if chat.get("username"):
        return f"https://t.me/{chat['username']}/{message_id}"
    chat_id = str(chat.get("id", ""))
    if chat_id.startswith("-100"):
        return f"https://t.me/c/{chat_id[4:]}/{message_id}"
    return None


def _usable_photos(media: tuple[base.MediaItem, ...]) -> tuple[base.MediaItem, ...]:
    def fits(item: base.MediaItem) -> bool:
        if item.content_type not in PHOTO_TYPES or item.size > MAX_PHOTO_BYTES:
            return False
        if item.width and item.height:
            wide, tall = item.width, item.height
            return wide + tall <= 10_000 and max(wide, tall) / min(wide, tall) <= 20
        return True

    return tuple(item for item in media if fits(item))[:MAX_PHOTOS]


# -- Markdown to Telegram's HTML -------------------------------------------------------

_INLINE = {
    "strong": "b",
    "b": "b",
    "em": "i",
    "i": "i",
    "del": "s",
    "s": "s",
    "strike": "s",
    "u": "u",
    "ins": "u",
}
# Telegram: bold, italic, underline, strikethrough (and spoiler) can't contain code or
# pre, and a link can't contain anything but those.
_NO_CODE_INSIDE = ("a", "b", "i", "u", "s")
_LINK_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_STRUCTURE = frozenset({"table", "thead", "tbody", "tfoot", "tr", "ul", "ol", "blockquote"})
_BLOCKS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "hr"})


def _clean(text: str) -> str:
    return _PRIVATE.sub("", text)


class _Converter(HTMLParser):
    """Sanitised HTML (from the Markdown) to the tags Telegram takes, respecting its
    nesting rules: nothing inside code or pre, no code or link inside a link, and
    blockquotes not nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = ""
        self.open: list[tuple[str, str | None]] = []  # (html tag, telegram tag or None)
        self.lists: list[list[int | None]] = []  # per list: next number, None for bullets
        self.fresh = True  # nothing written yet in the current container
        self.cells = 0

    def _inside(self, *tags: str) -> bool:
        return any(telegram in tags for _, telegram in self.open)

    def _break(self, newlines: int) -> None:
        """End the current line or block, unless nothing has been written in it yet."""
        if self.fresh:
            return
        self.out = self.out.rstrip(" ")
        present = len(self.out) - len(self.out.rstrip("\n"))
        self.out += "\n" * max(0, newlines - present)

    def _emit(self, text: str) -> None:
        self.out += text
        self.fresh = False

    def _open(self, tag: str, telegram: str | None, markup: str = "") -> None:
        if telegram:
            self.out += markup or f"<{telegram}>"
        self.open.append((tag, telegram))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        raw = self._inside("pre", "code")
        if tag in _BLOCKS and not raw:
            self._break(2)
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._open(tag, None if self._inside("b") else "b")
        elif tag in _INLINE:
            telegram = _INLINE[tag]
            self._open(tag, None if raw or self._inside(telegram) else telegram)
        elif tag == "code":
            self._start_code(attributes, raw)
        elif tag == "pre":
            self._open(tag, None if raw or self._inside(*_NO_CODE_INSIDE) else "pre")
        elif tag == "a":
            href = (attributes.get("href") or "").strip()
            usable = href.startswith(_LINK_SCHEMES) and not raw and not self._inside("a")
            markup = f'<a href="{html.escape(_clean(href), quote=True)}">' if usable else ""
            self._open(tag, "a" if usable else None, markup)
        elif tag == "blockquote":
            self._open(tag, None if raw or self._inside("blockquote") else "blockquote")
            self.fresh = True
        elif tag in ("ul", "ol", "li"):
            self._start_list(tag, attributes)
        elif tag in ("tr", "td", "th"):
            self._start_table_cell(tag)
        elif tag == "br":
            self._emit("\n")
        elif tag == "hr":
            self._emit("———")
            self._break(2)
        elif tag not in ("img", "input"):
            # Images travel as media; other tags (span, sup, div, ...) keep only their text.
            self.open.append((tag, None))

    def _start_code(self, attributes: dict[str, str | None], raw: bool) -> None:
        language = (attributes.get("class") or "").split()
        if self._inside("pre") and not self._inside("code") and language:
            markup = f'<code class="{html.escape(language[0])}">'
            self._open("code", "code", markup if language[0].startswith("language-") else "")
        else:
            self._open("code", None if raw or self._inside(*_NO_CODE_INSIDE) else "code")

    def _start_list(self, tag: str, attributes: dict[str, str | None]) -> None:
        if tag in ("ul", "ol"):
            if not self.lists:
                self._break(2)
            start = attributes.get("start")
            number = int(start) if tag == "ol" and start and start.isdigit() else 1
            self.lists.append([number if tag == "ol" else None])
        else:
            self._break(1)
            marker = "•"
            if self.lists and self.lists[-1][0] is not None:
                number = self.lists[-1][0]
                marker = f"{number}."
                self.lists[-1][0] = number + 1
            self._emit("  " * (max(len(self.lists), 1) - 1) + marker + " ")
            self.fresh = True
        self.open.append((tag, None))

    def _start_table_cell(self, tag: str) -> None:
        if tag == "tr":
            self._break(1)
            self.cells = 0
            self.open.append((tag, None))
            return
        if self.cells:
            self._emit(" | ")
        self.cells += 1
        self._open(tag, "b" if tag == "th" and not self._inside("b") else None)

    def handle_endtag(self, tag: str) -> None:
        if not any(name == tag for name, _ in self.open):
            return
        while self.open:
            name, telegram = self.open.pop()
            if telegram:
                if telegram in ("pre", "code", "blockquote"):
                    self.out = self.out.rstrip("\n")
                self.out += f"</{telegram}>"
            if name in ("ul", "ol"):
                self.lists.pop()
            if name == tag:
                break
        if tag in _BLOCKS or (tag in ("ul", "ol") and not self.lists):
            self.fresh = False
            self._break(2)

    def handle_data(self, data: str) -> None:
        data = _clean(data)
        if not data.strip() and self.open and self.open[-1][0] in _STRUCTURE:
            return  # the newlines between a table's (or list's) elements
        if not self._inside("pre"):
            data = data.replace("\n", " ")
            if self.fresh or self.out.endswith("\n"):
                data = data.lstrip(" ")
            if not data:
                return
        self._emit(_escape(data))


def telegram_html(markdown: str) -> str:
    """The post's Markdown as Telegram's HTML subset."""
    converter = _Converter()
    converter.feed(markdown_to_html(markdown))
    converter.close()
    while converter.open:  # sanitised HTML is balanced; this is a safety net
        converter.handle_endtag(converter.open[-1][0])
    # At most one blank line between blocks; code blocks keep theirs.
    pieces = re.split(r"(<pre>.*?</pre>)", converter.out, flags=re.DOTALL)
    return "".join(
        piece if piece.startswith("<pre>") else re.sub(r"\n{3,}", "\n\n", piece) for piece in pieces
    ).strip()


# -- splitting HTML --------------------------------------------------------------------


def _masked_length(text: str) -> int:
    """Visible UTF-16 length of masked text: tag masks count 0, entity masks count 1
    (each mask is an astral character, 2 UTF-16 units)."""
    tags = len(_TAG_MASK.findall(text))
    entities = len(_ENTITY_MASK.findall(text))
    return utf16_length(text) - 2 * tags - entities


def split_html(message: str, limit: int) -> list[str]:
    """Cut Telegram HTML into messages of at most ``limit`` visible characters, with the
    shared splitter; no tag or entity is cut, and tags open across a cut are closed at its
    end and opened again in the next message."""
    if utf16_length(visible_text(message)) <= limit:
        return [message] if message.strip() else []
    markup: dict[str, str] = {}
    tag_number = entity_number = 0

    def mask(match: re.Match[str]) -> str:
        nonlocal tag_number, entity_number
        token = match.group(0)
        if token.startswith("<"):
            char = chr(0xF0000 + tag_number)
            tag_number += 1
        else:
            char = chr(0x100000 + entity_number)
            entity_number += 1
        markup[char] = token
        return char

    masked = _MARKUP.sub(mask, message)
    pieces = split_thread(masked, limit, measure=_masked_length, numbering=False)
    parts = ["".join(markup.get(char, char) for char in piece) for piece in pieces]
    return _rebalance(parts)


def _rebalance(parts: list[str]) -> list[str]:
    balanced: list[str] = []
    carried: list[tuple[str, str]] = []  # (name, opening tag) still open from earlier parts
    for part in parts:
        stack = list(carried)
        for match in _TAG.finditer(part):
            tag = match.group(0)
            name_match = _TAG_NAME.match(tag)
            if not name_match:
                continue
            name = name_match.group(1)
            if tag.startswith("</"):
                if stack and stack[-1][0] == name:
                    stack.pop()
            else:
                stack.append((name, tag))
        text = "".join(tag for _, tag in carried) + part
        text += "".join(f"</{name}>" for name, _ in reversed(stack))
        while _EMPTY_ELEMENT.search(text):
            text = _EMPTY_ELEMENT.sub("", text)
        if visible_text(text).strip():
            balanced.append(text.strip())
        carried = stack
    return balanced
