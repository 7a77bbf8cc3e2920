"""Matrix: a post becomes an ``m.room.message`` in a room, sent with a bot account's
access token to its homeserver (Client-Server API v3).

- **Send** ``PUT /_matrix/client/v3/rooms/<room>/send/m.room.message/<txnId>``. The
  transaction id is the idempotency key (``<key>-<n>`` for the n-th event of a post), and
  the homeserver answers a repeated transaction with the first event's id instead of
  sending again: resending after a timeout is safe.
- **Text** goes as ``m.text`` with ``body`` (plain text) and ``formatted_body``
  (``org.matrix.custom.html``, sanitised HTML). An event may not exceed 65,536 bytes, so
  a long post is cut into several events of at most 24,000 bytes of text each.
- **Images** are uploaded (``POST /_matrix/media/v3/upload``) and sent after the text as
  ``m.image`` events whose ``body`` is the alt text (a caption, since ``filename`` is set
  apart), with ``info`` (mimetype, size, w, h). Upload results are kept as progress, so
  a retry does not upload again.
- **Errors** ``{"errcode", "error"}``: ``M_UNKNOWN_TOKEN``/``M_MISSING_TOKEN`` (401) and
  ``M_FORBIDDEN`` (403, e.g. not in the room) mean the channel needs reconnecting;
  ``M_LIMIT_EXCEEDED`` (429) carries ``retry_after_ms``; ``M_TOO_LARGE`` (413) is final.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import Field, field_validator

from herald.adapters import base
from herald.adapters.http import HttpAdapter, HttpSettings, raise_for_status, retry_after_seconds
from herald.adapters.registry import register
from herald.adapters.text import markdown_to_html, markdown_to_text, split_thread

PLATFORM = "matrix"
CLIENT = "/_matrix/client/v3"
# Spec, "Size limits": an event "MUST NOT be larger than 65536 bytes" in federation
# format, signatures included. Room for those and for the JSON around the two texts:
EVENT_BUDGET = 60_000
# Each text event carries the text twice (plain and HTML); 24,000 bytes of plain text
# leaves the HTML room for its markup.
MAX_TEXT_BYTES = 24_000
# Synapse's default max_upload_size (a homeserver says its own in /media/v3/config).
MAX_UPLOAD_BYTES = 50_000_000
MAX_IMAGES = 10  # Matrix has no per-post limit: each image is its own event.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
HTML_FORMAT = "org.matrix.custom.html"
_AUTH_CODES = frozenset({"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN", "M_USER_LOCKED"})


# Identifier grammar (spec, Appendices → Identifier Grammar, and Room Versions 1 to 12):
# a server name is a hostname (IPv4, [IPv6] or DNS name) with an optional port.
_SERVER_NAME = re.compile(r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(?::[0-9]{1,5})?")
# Room versions 12 and later: "!" and the create event's reference hash, URL-safe
# unpadded base64 of a SHA-256 (43 characters), with no server part.
_HASHED_ROOM_ID = re.compile(r"![0-9A-Za-z_-]{43}")
MAX_IDENTIFIER_BYTES = 255
ROOM_FORMS = (
    "a room ID (!opaque_id:server.name, or !AczZ8M2NqGdbm8_HJvJZbkLmQhb5u52S9UdTO6uClFg "
    "in rooms of version 12 and later) or an alias (#name:server.name)"
)


def room_problem(room: str) -> str | None:
    """Why ``room`` is no room ID or alias the Matrix spec allows; None when it is one.

    Room IDs of room versions 1 to 11 are ``!opaque_id:domain`` (the opaque part any
    characters but ``:`` and NUL); from version 12 they are the create event's hash with
    no domain. Aliases are ``#localpart:domain``. Each is at most 255 bytes."""
    if len(room.encode()) > MAX_IDENTIFIER_BYTES:
        return f"room must be at most {MAX_IDENTIFIER_BYTES} bytes long (Matrix's limit)"
    if "\x00" in room:
        return "room must not contain a NUL character"
    if room.startswith("!") and ":" not in room:
        if _HASHED_ROOM_ID.fullmatch(room):
            return None
        return (
            f"room {room!r} has no server part: only a room ID of room version 12 or later "
            "may lack one, and that is '!' and 43 characters of A-Z, a-z, 0-9, '-' and '_' "
            "(such as !AczZ8M2NqGdbm8_HJvJZbkLmQhb5u52S9UdTO6uClFg)"
        )
    local, _, server = room[1:].partition(":")
    if room[:1] not in ("!", "#") or not local or not server:
        return f"room must be {ROOM_FORMS}"
    if not _SERVER_NAME.fullmatch(server):
        return f"room's server part {server!r} is not a server name (example.org, example.org:8448)"
    return None


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def escape_markdown(text: str) -> str:
    """Text that Markdown shows as written (every ASCII punctuation mark escaped)."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)


class MatrixCredentials(base.StrictModel):
    homeserver: str = Field(
        description="The homeserver's client API base URL, e.g. https://matrix.example.org."
    )
    access_token: str = Field(min_length=1, description="The bot account's access token.")
    room: str = Field(
        description="Room ID to post in: !abc:example.org, or in rooms of version 12 and "
        "later !AczZ8M2NqGdbm8_HJvJZbkLmQhb5u52S9UdTO6uClFg (no server part); or an alias "
        "such as #news:example.org. The account must have joined the room."
    )

    @field_validator("homeserver")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("homeserver must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("room")
    @classmethod
    def _room(cls, value: str) -> str:
        value = value.strip()
        problem = room_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class MatrixSettings(HttpSettings):
    notice: bool = Field(
        False, description="Send as m.notice (how bots usually speak) instead of m.text."
    )


@register
class MatrixAdapter(HttpAdapter[MatrixCredentials, MatrixSettings]):
    platform = "matrix"
    display_name = "Matrix"
    credentials_model = MatrixCredentials
    settings_model = MatrixSettings
    honours_idempotency_key: ClassVar[bool] = True
    length_unit: ClassVar[str] = "bytes"
    # Rates are each homeserver's own; Synapse's default rc_message is 0.2 per second
    # with bursts of 10.
    limits = base.Limits(
        max_length=MAX_TEXT_BYTES,
        max_media=MAX_IMAGES,
        max_media_bytes=MAX_UPLOAD_BYTES,
        requests_per_minute=12,
        buckets=(
            # Synapse's default rc_message: 0.2 messages per second, bursts of 10
            # (element-hq.github.io/synapse/latest/usage/configuration/config_documentation
            # .html#rc_message); a homeserver may set its own. 429s carry retry_after_ms.
            base.Bucket(
                "messages",
                10,
                50,
                base.Scope.ACCOUNT,
                cost=1,
                media_cost=1,
                corrected_by=("/send/",),
                source="Synapse rc_message default (0.2 per second, burst 10, per user)",
            ),
        ),
    )

    def budget_scope(self, scope: base.Scope) -> str | None:
        return f"{self.credentials.homeserver}|{self.credentials.access_token}"

    def measure(self, text: str) -> int:
        return utf8_length(text)

    # -- HTTP --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        request = self.build_request(
            method,
            f"{self.credentials.homeserver}{path}",
            json=body,
            content=content,
            params=params,
            headers={"Authorization": f"Bearer {self.credentials.access_token}"} | (headers or {}),
        )
        response = self.transmit(request)
        if response.status_code >= 300:
            _raise_for(response)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            message = f"matrix answered {response.status_code} without a JSON object"
            if method == "GET":
                raise base.PermanentError(message)
            # Sent, perhaps; resending with the same transaction id is safe.
            raise base.AmbiguousError(message)
        return data

    # -- verify ------------------------------------------------------------------------

    def _room_id(self, *, fresh: bool = False) -> str:
        room = self.credentials.room
        if room.startswith("!"):
            return room
        session = self.store.session() or {}
        if not fresh and session.get("alias") == room and session.get("room_id"):
            return str(session["room_id"])
        try:
            found = self._request("GET", f"{CLIENT}/directory/room/{quote(room, safe='')}")
        except base.PermanentError as exc:
            raise base.AuthError(f"the room alias {room} does not resolve: {exc.message}") from None
        room_id = str(found["room_id"])
        self.store.save_session(session | {"alias": room, "room_id": room_id})
        return room_id

    def verify(self) -> base.Identity:
        # The alias's room, resolved here, is stored once with the outcome.
        with self.store.batch():
            return self._verify()

    def _verify(self) -> base.Identity:
        who = self._request("GET", f"{CLIENT}/account/whoami")
        room_id = self._room_id(fresh=True)
        joined = self._request("GET", f"{CLIENT}/joined_rooms").get("joined_rooms") or []
        if room_id not in joined:
            raise base.AuthError(
                f"{who.get('user_id')} has not joined {self.credentials.room}: "
                "invite the account and accept the invitation first"
            )
        return base.Identity(
            name=str(who.get("user_id")),
            detail={"room_id": room_id, "device_id": who.get("device_id")},
        )

    # -- render ------------------------------------------------------------------------

    def _markdown(self, post: base.PostContent) -> str:
        pieces = []
        if post.title.strip():
            pieces.append(f"**{escape_markdown(post.title.strip())}**")
        pieces.append(post.body.strip())
        if post.canonical_url:
            pieces.append(f"<{post.canonical_url}>")
        return "\n\n".join(piece for piece in pieces if piece)

    def _content(self, plain: str, html: str) -> dict[str, Any]:
        msgtype = "m.notice" if self.settings.notice else "m.text"
        return {"msgtype": msgtype, "body": plain, "format": HTML_FORMAT, "formatted_body": html}

    def _fits(self, plain: str, html: str) -> bool:
        event = json.dumps(self._content(plain, html), ensure_ascii=False)
        return utf8_length(plain) <= MAX_TEXT_BYTES and utf8_length(event) <= EVENT_BUDGET

    def _texts(self, markdown: str, limit: int) -> list[tuple[str, str]]:
        """``(plain, html)`` per event: Markdown cut between paragraphs (then sentences,
        words), each piece rendered both ways; a piece whose event would still be too
        large (links and lists make HTML grow) is cut again, smaller."""
        texts: list[tuple[str, str]] = []
        for chunk in split_thread(markdown, limit, measure=utf8_length, numbering=False):
            plain, html = markdown_to_text(chunk), markdown_to_html(chunk)
            if self._fits(plain, html) or limit < 1000:
                texts.append((plain, html))
            else:
                texts += self._texts(chunk, limit // 2)
        return texts

    def render(self, post: base.PostContent) -> base.Rendition:
        texts = [(p, h) for p, h in self._texts(self._markdown(post), MAX_TEXT_BYTES) if p]
        media = tuple(
            item
            for item in post.media
            if item.content_type in IMAGE_TYPES and item.size <= MAX_UPLOAD_BYTES
        )[:MAX_IMAGES]
        if not texts and not media:
            raise base.PermanentError("the post has nothing to send: no title, text or image")
        return base.Rendition(
            format="text",
            parts=tuple(plain for plain, _ in texts),
            title=post.title or None,
            extra={"html": [html for _, html in texts]},
            media=media,
        )

    # -- publish -----------------------------------------------------------------------

    def _send(self, room_id: str, txn_id: str, content: dict[str, Any]) -> str:
        path = (
            f"{CLIENT}/rooms/{quote(room_id, safe='')}/send/m.room.message/{quote(txn_id, safe='')}"
        )
        return str(self._request("PUT", path, body=content)["event_id"])

    def _upload(self, item: base.MediaItem) -> str:
        answer = self._request(
            "POST",
            "/_matrix/media/v3/upload",
            content=item.read(),
            headers={"Content-Type": item.content_type},
            params={"filename": item.filename},
        )
        return str(answer["content_uri"])

    def _image(self, item: base.MediaItem, uri: str) -> dict[str, Any]:
        info: dict[str, Any] = {"mimetype": item.content_type, "size": item.size}
        if item.width and item.height:
            info |= {"w": item.width, "h": item.height}
        # With filename set apart, body is the image's caption: its alt text.
        return {
            "msgtype": "m.image",
            "body": item.alt_text or item.filename,
            "filename": item.filename,
            "url": uri,
            "info": info,
        }

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        # An upload, which is not idempotent, is stored as soon as it is made; sent events
        # when a part fails (the retry carries on after them), else with the outcome: a
        # resend of one is deduplicated by its transaction id.
        with self.store.batch():
            return self._publish(rendition, idempotency_key)

    def _publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        done = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(done)
        if kept is not None:
            return kept
        room_id = self._room_id()
        events: list[str] = list(done.get("events", []))
        uploads: dict[str, str] = dict(done.get("uploads", {}))
        html = list(rendition.extra.get("html") or [])
        steps: list[dict[str, Any] | base.MediaItem] = [
            self._content(plain, html[i] if i < len(html) else plain)
            for i, plain in enumerate(rendition.parts)
        ]
        steps += rendition.media
        single = len(steps) == 1

        def save() -> None:
            self.store.save_progress(idempotency_key, {"events": events, "uploads": uploads})

        for index, step in enumerate(steps):
            if index < len(events):
                continue  # sent by an earlier attempt (and deduplicated if sent again)
            if isinstance(step, base.MediaItem):
                upload = str(step.id)
                if upload not in uploads:  # an upload is not idempotent: do it once
                    uploads[upload] = self._upload(step)
                    save()
                    self.store.checkpoint()
                content = self._image(step, uploads[upload])
            else:
                content = step
            txn_id = idempotency_key if single else f"{idempotency_key}-{index}"
            events.append(self._send(room_id, txn_id, content))
            save()
        receipt = base.Receipt(
            external_id=events[0],
            url=f"https://matrix.to/#/{quote(room_id, safe='!:')}/{quote(events[0], safe='$')}",
            data={"room_id": room_id, "events": events},
        )
        self.store.save_receipt(idempotency_key, receipt, {"events": events, "uploads": uploads})
        return receipt

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        # Resending is safe (the homeserver deduplicates transactions); this only saves
        # the round trip when the whole post is known to be out.
        return self.store.receipt(idempotency_key)


def _raise_for(response: httpx.Response) -> None:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not data.get("errcode"):
        raise_for_status(response, platform=PLATFORM)
        return
    status = response.status_code
    code = str(data["errcode"])
    message = f"matrix answered {status}: {code}: {data.get('error') or ''}".rstrip(": ")
    if code == "M_LIMIT_EXCEEDED" or status == 429:
        wait_ms = data.get("retry_after_ms")
        retry_after = (
            wait_ms / 1000
            if isinstance(wait_ms, (int, float)) and not isinstance(wait_ms, bool)
            else retry_after_seconds(response)
        )
        raise base.RetryableError(message, retry_after=retry_after)
    if code in _AUTH_CODES or status in (401, 403):
        if data.get("soft_logout"):
            message += " (soft logout: log the account in again for a new token)"
        raise base.AuthError(message)
    if code == "M_TOO_LARGE":
        raise base.PermanentError(message)
    try:
        raise_for_status(response, platform=PLATFORM)
    except base.RetryableError as exc:
        raise base.RetryableError(message, retry_after=exc.retry_after) from None
    except base.AdapterError as exc:
        raise type(exc)(message) from None
    raise base.PermanentError(message)
