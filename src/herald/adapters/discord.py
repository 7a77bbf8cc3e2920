"""Discord: a post becomes a message in a channel, through a channel webhook.

The webhook URL (Server Settings → Integrations → Webhooks) is the whole credential:
``https://discord.com/api/webhooks/<id>/<token>``; the token in it is a secret, so no
error message ever quotes the URL.

- **Execute** ``POST /webhooks/<id>/<token>?wait=true`` returns the message. Content is
  Discord's Markdown, at most 2,000 characters, so a longer body goes out as several
  messages; each one's id is saved as progress, and a retry carries on with the next.
- The first message carries an embed: the title (256 characters at most) linking to the
  canonical URL, the excerpt as its description (4,096 at most); and the images, uploaded
  as attachments (multipart ``files[n]`` + ``payload_json``) with their alt text as the
  attachment ``description``.
- ``allowed_mentions: {"parse": []}``: a post quoting ``@everyone`` pings nobody.
- Errors: ``{"message", "code", "errors"}``; 429 adds ``retry_after`` (seconds, in the
  body) besides the ``Retry-After`` and ``X-RateLimit-Reset-After`` headers; a deleted
  webhook answers 404 ``Unknown Webhook`` (code 10015), a wrong token 401 (50027).
- Webhooks cannot list a channel's messages (a message is read only by its id), so a
  message sent just before a timeout cannot be found: ``find_existing`` knows only what
  this adapter recorded, and such a delivery ends up unconfirmed.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator

from herald.adapters import base
from herald.adapters.http import HttpAdapter, HttpSettings, raise_for_status, retry_after_seconds
from herald.adapters.markup import ChatMarkup
from herald.adapters.registry import register
from herald.adapters.text import split_thread

PLATFORM = "discord"
API_VERSION = "v10"
# https://discord.com/developers/docs/resources/message#create-message: content "up to
# 2000 characters"; embed title 256, description 4096; up to 10 attachments per message.
MAX_CONTENT = 2000
MAX_EMBED_TITLE = 256
MAX_EMBED_DESCRIPTION = 4096
MAX_ATTACHMENT_DESCRIPTION = 1024
MAX_FILES = 10
# "Max file size for uploads ... defaults to 10 MiB" (Uploading Files, Discord docs).
MAX_FILE_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
UNKNOWN_WEBHOOK = 10015
_WEBHOOK_PATH = re.compile(
    r"^(?P<api>.*?/api)(?:/v\d+)?/webhooks/(?P<id>\d+)/(?P<token>[^/?#]+)/?$"
)
# A fence inside a code block would end it early; a zero-width space keeps it apart.
_FENCE_BREAK = "`\u200b``"


def webhook_endpoint(url: str) -> str | None:
    """The webhook's API URL on a pinned API version, or None if ``url`` is not a
    webhook URL (``…/api[/vN]/webhooks/<id>/<token>``)."""
    parts = urlsplit(url.strip())
    match = _WEBHOOK_PATH.match(parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or match is None:
        return None
    return (
        f"{parts.scheme}://{parts.netloc}{match['api']}/{API_VERSION}"
        f"/webhooks/{match['id']}/{match['token']}"
    )


class DiscordCredentials(base.StrictModel):
    webhook_url: str = Field(
        description="The channel webhook's URL: https://discord.com/api/webhooks/<id>/<token> "
        "(Server Settings → Integrations → Webhooks → Copy Webhook URL). Secret.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        if webhook_endpoint(value) is None:
            raise ValueError("must look like https://discord.com/api/webhooks/<id>/<token>")
        return value.strip()


class DiscordSettings(HttpSettings):
    username: str | None = Field(
        None, min_length=1, max_length=80, description="Name to post as, instead of the webhook's."
    )


class DiscordMarkup(ChatMarkup):
    """Discord's Markdown: ``**bold**``, ``*italic*``, ``~~strike~~``, ``[text](url)``,
    ``#`` to ``###`` headings; other Markdown characters in text are backslash-escaped."""

    bold = ("**", "**")
    italic = ("*", "*")
    strike = ("~~", "~~")

    def escape_text(self, text: str) -> str:
        return re.sub(r"([\\*_~`|\[\]])", r"\\\1", text)

    def paragraph(self, text: str) -> str:
        # Text that would start a heading, quote or list where it begins a line.
        return re.sub(r"(?m)^(#|>|-|\+|\d+\.)", r"\\\1", text)

    def link(self, label: str, href: str) -> str:
        safe = href.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
        if not label or label == self.escape_text(href):
            return safe
        return f"[{label}]({safe})"

    def code(self, text: str) -> str:
        return f"`` {text} ``" if "`" in text else f"`{text}`"

    def fence(self, code: str, language: str) -> str:
        language = re.sub(r"[^\w+-]", "", language)
        code = code.replace("```", _FENCE_BREAK)
        return f"```{language}\n{code}\n```"

    def heading(self, text: str, level: int) -> str:
        return f"{'#' * level} {text}" if level <= 3 else f"**{text}**"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@register
class DiscordAdapter(HttpAdapter[DiscordCredentials, DiscordSettings]):
    platform = "discord"
    display_name = "Discord"
    credentials_model = DiscordCredentials
    settings_model = DiscordSettings
    # Discord publishes no fixed webhook rate; it answers with X-RateLimit-* headers
    # (observed: 5 requests per 2 seconds per webhook, 30 messages a minute per channel).
    limits = base.Limits(
        max_length=MAX_CONTENT,
        max_media=MAX_FILES,
        max_media_bytes=MAX_FILE_BYTES,
        requests_per_minute=30,
        buckets=(
            # discord.com/developers/docs/topics/rate-limits: limits are per route, named
            # by X-RateLimit-Bucket and told by X-RateLimit-Remaining/Reset-After, not
            # published; a webhook's are 5 per 2 s. Those headers correct this bucket.
            base.Bucket(
                "route",
                5,
                2,
                base.Scope.TOKEN,
                corrected_by=("/webhooks/",),
                source="discord.com/developers/docs/topics/rate-limits "
                "(per-route buckets from X-RateLimit-Bucket; a webhook: 5 per 2 s)",
                # Which bucket a route is in, and its limit, come from the answers.
                named_by_platform=True,
            ),
            base.Bucket(
                "channel",
                30,
                60,
                base.Scope.TOKEN,
                source="support.discord.com (webhooks: 30 messages per minute per channel)",
            ),
        ),
    )

    def budget_scope(self, scope: base.Scope) -> str | None:
        return self.credentials.webhook_url  # one webhook, one channel

    def budget_route(self) -> str:
        # A delivery executes the webhook (with or without files: one route).
        endpoint = webhook_endpoint(self.credentials.webhook_url)
        return f"POST {urlsplit(endpoint).path}" if endpoint else ""

    # -- HTTP --------------------------------------------------------------------------

    def _webhook(self) -> str:
        endpoint = webhook_endpoint(self.credentials.webhook_url)
        if endpoint is None:  # the credentials model lets none through; stored ones, maybe
            raise base.AuthError(
                "the Discord webhook URL is not one; paste the webhook's URL again"
            )
        return endpoint

    def _call(self, request: httpx.Request) -> dict[str, Any]:
        response = self.transmit(request)
        if response.status_code >= 300:
            _raise_for(response)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _unreadable(request, response)
        return data

    # -- verify ------------------------------------------------------------------------

    def verify(self) -> base.Identity:
        webhook = self._call(self.build_request("GET", self._webhook()))
        detail = {
            "webhook_id": webhook.get("id"),
            "guild_id": webhook.get("guild_id"),
            "channel_id": webhook.get("channel_id"),
        }
        self.store.save_session({"guild_id": webhook.get("guild_id")})
        return base.Identity(
            name=f"webhook {webhook.get('name') or webhook.get('id')}", detail=detail
        )

    # -- render ------------------------------------------------------------------------

    def _media(self, post: base.PostContent) -> tuple[base.MediaItem, ...]:
        usable = [
            m for m in post.media if m.content_type in IMAGE_TYPES and m.size <= MAX_FILE_BYTES
        ]
        return tuple(usable[:MAX_FILES])

    def render(self, post: base.PostContent) -> base.Rendition:
        title = post.title.strip()
        body = DiscordMarkup().render(post.body)
        if post.canonical_url and not title:
            # No title for an embed to link from: the link goes in the text, and Discord
            # shows its own preview of it.
            body = f"{body}\n\n{post.canonical_url}".strip()
        parts = split_thread(body, MAX_CONTENT, numbering=False)
        embed: dict[str, Any] | None = None
        if title:
            embed = {"title": _clip(title, MAX_EMBED_TITLE)}
            if post.canonical_url:
                embed["url"] = post.canonical_url
            if post.excerpt:
                embed["description"] = _clip(post.excerpt.strip(), MAX_EMBED_DESCRIPTION)
        media = self._media(post)
        if not parts and not embed and not media:
            raise base.PermanentError("the post has nothing to send: no title, text or image")
        return base.Rendition(
            format="markdown",
            parts=tuple(parts) or ("",),
            title=title or None,
            extra={"embed": embed},
            media=media,
        )

    # -- publish -----------------------------------------------------------------------

    def _message(self, rendition: base.Rendition, index: int) -> dict[str, Any]:
        payload: dict[str, Any] = {"allowed_mentions": {"parse": []}}
        if rendition.parts[index]:
            payload["content"] = rendition.parts[index]
        if self.settings.username:
            payload["username"] = self.settings.username
        if index == 0:
            embed = rendition.extra.get("embed")
            if embed:
                payload["embeds"] = [embed]
            if rendition.media:
                payload["attachments"] = [
                    {
                        "id": str(n),
                        "filename": item.filename,
                        "description": _clip(item.alt_text, MAX_ATTACHMENT_DESCRIPTION),
                    }
                    for n, item in enumerate(rendition.media)
                ]
        return payload

    def _execute(
        self, payload: dict[str, Any], media: tuple[base.MediaItem, ...]
    ) -> dict[str, Any]:
        url = self._webhook()
        if media:
            files = [
                (f"files[{n}]", (item.filename, item.read(), item.content_type))
                for n, item in enumerate(media)
            ]
            request = self.build_request(
                "POST",
                url,
                params={"wait": "true"},
                data={"payload_json": json.dumps(payload)},
                files=files,
            )
        else:
            request = self.build_request("POST", url, params={"wait": "true"}, json=payload)
        return self._call(request)

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        done = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(done)
        if kept is not None:
            return kept
        sent: list[str] = list(done.get("messages", []))
        channel_id = done.get("channel_id")
        for index in range(len(rendition.parts)):
            if index < len(sent):
                continue  # posted by an earlier attempt
            media = rendition.media if index == 0 else ()
            message = self._execute(self._message(rendition, index), media)
            sent.append(str(message["id"]))
            channel_id = message.get("channel_id") or channel_id
            self.store.save_progress(idempotency_key, {"messages": sent, "channel_id": channel_id})
        guild_id = (self.store.session() or {}).get("guild_id")
        url = (
            f"https://discord.com/channels/{guild_id}/{channel_id}/{sent[0]}"
            if guild_id and channel_id
            else None  # the server is known once verify() has run
        )
        receipt = base.Receipt(
            external_id=sent[0], url=url, data={"messages": sent, "channel_id": channel_id}
        )
        self.store.save_receipt(
            idempotency_key, receipt, {"messages": sent, "channel_id": channel_id}
        )
        return receipt

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        # Only what this adapter recorded: a webhook cannot list the channel's messages.
        return self.store.receipt(idempotency_key)


def _unreadable(request: httpx.Request, response: httpx.Response) -> base.AdapterError:
    message = f"discord answered {response.status_code} with no message object"
    if request.method == "GET":
        return base.PermanentError(message)
    return base.AmbiguousError(f"{message}; it was probably posted, but its id is unknown")


def _field_errors(errors: Any, path: str = "") -> list[str]:
    """Discord's nested ``errors`` object as ``field.path: message`` lines."""
    if not isinstance(errors, dict):
        return []
    found: list[str] = []
    for name, value in errors.items():
        if name == "_errors" and isinstance(value, list):
            found += [f"{path or 'body'}: {e.get('message')}" for e in value if isinstance(e, dict)]
        else:
            found += _field_errors(value, f"{path}.{name}" if path else str(name))
    return found


def _raise_for(response: httpx.Response) -> None:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise_for_status(response, platform=PLATFORM)
        return
    status = response.status_code
    text = str(data.get("message") or response.reason_phrase)
    details = _field_errors(data.get("errors"))
    message = f"discord answered {status}: {text}"
    if details:
        message += " (" + "; ".join(details)[:500] + ")"
    if status == 429:
        retry_after = data.get("retry_after")
        if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool):
            header = response.headers.get("X-RateLimit-Reset-After")
            try:
                retry_after = float(header) if header else retry_after_seconds(response)
            except ValueError:
                retry_after = retry_after_seconds(response)
        scope = "global" if data.get("global") else "this webhook"
        raise base.RetryableError(f"{message} ({scope})", retry_after=retry_after)
    if status == 404 and data.get("code") == UNKNOWN_WEBHOOK:
        raise base.AuthError(f"{message}: the webhook was deleted; create a new one")
    # The usual classification by status, with Discord's own words and field errors.
    try:
        raise_for_status(response, platform=PLATFORM)
    except base.RetryableError as exc:
        raise base.RetryableError(message, retry_after=exc.retry_after) from None
    except base.AdapterError as exc:
        raise type(exc)(message) from None
    raise base.PermanentError(message)
