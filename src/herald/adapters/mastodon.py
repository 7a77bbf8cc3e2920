"""Mastodon: statuses on a self-hosted instance, long posts as a thread of replies, images
with alt text.

- **Length.** Every instance sets its own limit. ``verify()`` reads it from
  ``GET /api/v2/instance`` (``configuration.statuses``: ``max_characters``,
  ``characters_reserved_per_url``; ``configuration.media_attachments``) and caches it in
  the channel's session; ``render()`` stays local and uses that cache, or Mastodon's
  defaults (500 characters, a URL counting 23) before the first verify. Mastodon counts
  grapheme clusters, each link as ``characters_reserved_per_url`` whatever its length, a
  mention ``@user@domain`` as ``@user``, and the content warning as part of the status.
- **Idempotency.** ``POST /api/v1/statuses`` deduplicates by ``Idempotency-Key`` (for an
  hour): the first status of a delivery sends the delivery's key, part ``i`` of a thread
  ``<key>-<i>``. The ids of parts already posted are saved as progress, so a retry,
  however late, carries on with the next part.
- **Media.** ``POST /api/v2/media`` (multipart, ``description`` = alt text) answers 202
  while the instance is still processing; ``GET /api/v1/media/:id`` is polled (206) until
  the attachment has a URL, for at most ``media_timeout`` seconds. The images go with the
  first status (``media_ids``).
- **Errors** come as ``{"error": "..."}``; a 429 carries ``X-RateLimit-Reset`` as an ISO
  8601 time, which :func:`herald.adapters.http.retry_after_seconds` reads.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field, HttpUrl

from herald.adapters import base
from herald.adapters.http import HttpAdapter, HttpSettings, retry_after_seconds
from herald.adapters.registry import register
from herald.adapters.text import (
    find_urls,
    graphemes,
    markdown_to_text,
    short_variant,
    split_thread,
)

PLATFORM = "mastodon"

# Mastodon's defaults (docs.joinmastodon.org/entities/Instance/#statuses and
# #media_attachments); an instance may raise or lower each, and verify() reads its own.
DEFAULT_MAX_CHARACTERS = 500
DEFAULT_URL_LENGTH = 23
DEFAULT_MAX_MEDIA = 4
DEFAULT_IMAGE_SIZE_LIMIT = 16 * 1024 * 1024  # 16 MB since Mastodon 4.0
DEFAULT_DESCRIPTION_LIMIT = 1500  # alt text, characters
DEFAULT_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# docs.joinmastodon.org/api/rate-limits/: 300 requests per 5 minutes per account (media
# uploads: 30 per 30 minutes).
REQUESTS_PER_MINUTE = 60
B = base.Bucket
BUCKETS = (
    # app/lib/rate_limiter.rb (FAMILIES[:statuses]): 300 statuses per 3 hours per account;
    # its X-RateLimit-* headers come back on POST /api/v1/statuses.
    B(
        "statuses",
        300,
        3 * 3600,
        base.Scope.ACCOUNT,
        corrected_by=("/api/v1/statuses",),
        source="docs.joinmastodon.org/api/rate-limits/ (statuses: 300 per 3 h per account)",
    ),
    # docs.joinmastodon.org/api/rate-limits/: 300 requests per 5 minutes per token; a
    # status is one request, an image an upload and (while processing) a poll or two.
    B(
        "requests",
        300,
        5 * 60,
        base.Scope.TOKEN,
        cost=1,
        media_cost=2,
        source="docs.joinmastodon.org/api/rate-limits/ (300 requests per 5 min per token)",
    ),
    # docs.joinmastodon.org/api/rate-limits/: media uploads, 30 per 30 minutes.
    B(
        "media",
        30,
        30 * 60,
        base.Scope.ACCOUNT,
        cost=0,
        media_cost=1,
        corrected_by=("/api/v1/media", "/api/v2/media"),
        source="docs.joinmastodon.org/api/rate-limits/ (media: 30 per 30 min per account)",
    ),
)
# Room a status keeps after the content warning, below which a thread would be absurd.
MIN_ROOM = 50

# A mention counts as its username only: Account::MENTION_RE in Mastodon.
_MENTION = re.compile(
    r"(?<![=/\w])@(([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@[\w.-]+\w+)?)", re.I
)
# Mastodon only counts a link at the reserved length when it has a real domain name
# (twitter-text's URL pattern): not localhost, not an IP address.
_LINK_HOST = re.compile(r"(?:[\w-]+\.)+(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)", re.I)


def status_length(text: str, url_length: int = DEFAULT_URL_LENGTH) -> int:
    """A status's length as Mastodon counts it (StatusLengthValidator)."""
    countable: list[str] = []
    position = 0
    for start, end in find_urls(text):
        countable += [text[position:start], _url_stand_in(text[start:end], url_length)]
        position = end
    countable.append(text[position:])
    return graphemes(_MENTION.sub(r"@\2", "".join(countable)))


def _url_stand_in(url: str, url_length: int) -> str:
    """What a URL counts as: ``url_length`` characters, plus whatever Mastodon's URL pattern
    would leave outside the link. Its path and query take ASCII only, so anything from
    the first other character on is counted as it stands (an upper bound)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return url
    if not _LINK_HOST.fullmatch(host):
        return url
    after_host = len(parts.scheme) + 3 + len(parts.netloc)
    tail = next((i for i in range(after_host, len(url)) if not url[i].isascii()), len(url))
    return "x" * url_length + url[tail:]


def _hashtag(tag: str) -> str | None:
    """``release-notes`` → ``#ReleaseNotes`` (camel case reads better aloud); None when
    nothing of it can be a hashtag."""
    words = [w for w in re.split(r"[\W_]+", tag) if w]
    if not words:
        return None
    name = words[0] if len(words) == 1 else "".join(w[:1].upper() + w[1:] for w in words)
    return None if name.isdigit() else "#" + name


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _positive(value: Any, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


@dataclass(frozen=True)
class InstanceConfiguration:
    """The limits an instance publishes in ``configuration`` (GET /api/v2/instance)."""

    max_characters: int = DEFAULT_MAX_CHARACTERS
    characters_reserved_per_url: int = DEFAULT_URL_LENGTH
    max_media_attachments: int = DEFAULT_MAX_MEDIA
    image_size_limit: int = DEFAULT_IMAGE_SIZE_LIMIT
    description_limit: int = DEFAULT_DESCRIPTION_LIMIT
    supported_mime_types: tuple[str, ...] = DEFAULT_IMAGE_TYPES

    @classmethod
    def parse(cls, configuration: Any) -> InstanceConfiguration:
        """From an instance's ``configuration`` object; anything missing keeps the default."""
        conf = _object(configuration)
        statuses, media = _object(conf.get("statuses")), _object(conf.get("media_attachments"))
        types = media.get("supported_mime_types")
        images = (
            tuple(t for t in types if isinstance(t, str) and t.startswith("image/"))
            if isinstance(types, list)
            else ()
        )
        return cls(
            max_characters=_positive(statuses.get("max_characters"), DEFAULT_MAX_CHARACTERS),
            characters_reserved_per_url=_positive(
                statuses.get("characters_reserved_per_url"), DEFAULT_URL_LENGTH
            ),
            max_media_attachments=_positive(
                statuses.get("max_media_attachments"), DEFAULT_MAX_MEDIA
            ),
            image_size_limit=_positive(media.get("image_size_limit"), DEFAULT_IMAGE_SIZE_LIMIT),
            description_limit=_positive(media.get("description_limit"), DEFAULT_DESCRIPTION_LIMIT),
            supported_mime_types=images or DEFAULT_IMAGE_TYPES,
        )

    def as_configuration(self) -> dict[str, Any]:
        """Back in the instance's own shape, for the session cache."""
        return {
            "statuses": {
                "max_characters": self.max_characters,
                "characters_reserved_per_url": self.characters_reserved_per_url,
                "max_media_attachments": self.max_media_attachments,
            },
            "media_attachments": {
                "image_size_limit": self.image_size_limit,
                "description_limit": self.description_limit,
                "supported_mime_types": list(self.supported_mime_types),
            },
        }

    def limits(self) -> base.Limits:
        return base.Limits(
            max_length=self.max_characters,
            max_media=self.max_media_attachments,
            max_media_bytes=self.image_size_limit,
            requests_per_minute=REQUESTS_PER_MINUTE,
            buckets=BUCKETS,
        )


class MastodonCredentials(base.StrictModel):
    instance_url: HttpUrl = Field(
        description="Your Mastodon server's address, e.g. https://mastodon.social."
    )
    access_token: str = Field(
        min_length=1,
        description="Access token of an application created under Preferences → "
        "Development, with the scopes write:statuses write:media read:accounts.",
    )


class MastodonSettings(HttpSettings):
    visibility: Literal["public", "unlisted", "private"] = Field(
        "public",
        description="Who sees the statuses: public, unlisted (not on public timelines) or "
        "private (followers only).",
    )
    spoiler_text: str = Field(
        "",
        max_length=500,
        description="Content warning shown before every status; empty for none. It counts "
        "towards the instance's character limit.",
    )
    language: str | None = Field(
        None,
        pattern=r"^[a-z]{2,3}$",
        description="ISO 639 language code of the statuses; the account's default if unset.",
    )
    sensitive: bool = Field(False, description="Mark attached images as sensitive.")
    include_title: bool = Field(True, description="Start with the post's title.")
    include_link: bool = Field(
        True, description="End with the post's canonical URL, when it has one."
    )
    hashtags: bool = Field(True, description="End with the post's tags as hashtags.")
    media_timeout: float = Field(
        60.0,
        gt=0,
        le=600,
        description="Seconds to wait for the instance to finish processing an image.",
    )


@register
class MastodonAdapter(HttpAdapter[MastodonCredentials, MastodonSettings]):
    platform = PLATFORM
    length_unit = "characters (URLs count as the instance says, 23 by default)"
    display_name = "Mastodon"
    credentials_model = MastodonCredentials
    settings_model = MastodonSettings
    limits = InstanceConfiguration().limits()
    honours_idempotency_key: ClassVar[bool] = True
    # Media processing: first poll after this many seconds, doubling up to the cap.
    poll_interval: ClassVar[float] = 0.1
    poll_interval_cap: ClassVar[float] = 2.0

    def __init__(
        self,
        credentials: MastodonCredentials,
        settings: MastodonSettings,
        store: base.ChannelStore | None = None,
    ) -> None:
        super().__init__(credentials, settings, store)
        session = self.store.session() or {}
        cached = session.get("configuration") if session.get("instance") == self._base else None
        self._use(InstanceConfiguration.parse(cached))

    def budget_scope(self, scope: base.Scope) -> str | None:
        # The token stands for its account: two channels on one token share the limits.
        return f"{self._base}|{self.credentials.access_token}"

    def _use(self, configuration: InstanceConfiguration) -> None:
        self.configuration = configuration
        self.limits = configuration.limits()  # the instance's own, not Mastodon's defaults

    # -- HTTP ---------------------------------------------------------------------------

    @property
    def _base(self) -> str:
        return str(self.credentials.instance_url).rstrip("/")

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        files: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        request = self.build_request(
            method,
            self._base + path,
            json=json,
            files=files,
            data=data,
            headers={
                "Authorization": f"Bearer {self.credentials.access_token}",
                "Accept": "application/json",
                **(headers or {}),
            },
        )
        return self.send(request)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise base.PermanentError(
                f"{PLATFORM} answered {response.status_code} with something other than a "
                "JSON object: is the instance URL a Mastodon server?"
            )
        return data

    # -- verify -------------------------------------------------------------------------

    def verify(self) -> base.Identity:
        account = self._json(self._request("GET", "/api/v1/accounts/verify_credentials"))
        instance = self._json(self._request("GET", "/api/v2/instance"))
        configuration = InstanceConfiguration.parse(instance.get("configuration"))
        self.store.save_session(
            {"instance": self._base, "configuration": configuration.as_configuration()}
        )
        self._use(configuration)
        host = urlsplit(self._base).hostname or self._base
        return base.Identity(
            name=f"@{account.get('acct') or account.get('username')}@{host}",
            detail={
                "id": account.get("id"),
                "display_name": account.get("display_name"),
                "url": account.get("url"),
                "max_characters": configuration.max_characters,
                "characters_reserved_per_url": configuration.characters_reserved_per_url,
                "max_media_attachments": configuration.max_media_attachments,
            },
        )

    # -- render -------------------------------------------------------------------------

    def measure(self, text: str) -> int:
        return status_length(text, self.configuration.characters_reserved_per_url)

    def _text(self, post: base.PostContent) -> str:
        short = short_variant(post.short_body)
        body = short or markdown_to_text(post.body)
        blocks: list[str] = []
        title = post.title.strip()
        if not short and self.settings.include_title and title and not body.startswith(title):
            blocks.append(title)
        blocks.append(body)
        link = post.canonical_url
        if self.settings.include_link and link and link not in body:
            blocks.append(link)
        if self.settings.hashtags:
            tags: dict[str, str] = {}
            for tag in post.tags:
                hashtag = _hashtag(tag)
                if hashtag:
                    tags.setdefault(hashtag.lower(), hashtag)
            blocks.append(" ".join(tags.values()))
        return "\n\n".join(block for block in blocks if block.strip())

    def _media(self, post: base.PostContent) -> tuple[base.MediaItem, ...]:
        conf = self.configuration
        usable = [
            item
            for item in post.media
            if item.content_type in conf.supported_mime_types and item.size <= conf.image_size_limit
        ]
        return tuple(usable[: conf.max_media_attachments])

    def render(self, post: base.PostContent) -> base.Rendition:
        media = self._media(post)
        text = self._text(post)
        # The content warning counts towards the limit of every status it goes with.
        room = self.configuration.max_characters - graphemes(self.settings.spoiler_text)
        if room < MIN_ROOM:
            raise base.PermanentError(
                f"the content warning leaves {room} of the instance's "
                f"{self.configuration.max_characters} characters for the text"
            )
        parts = split_thread(text, room, measure=self.measure) if text else []
        if not parts:
            if not media:
                raise base.PermanentError("the post has no text and no image to send")
            parts = [""]  # an image-only status
        status: dict[str, Any] = {"visibility": self.settings.visibility}
        if self.settings.spoiler_text:
            status["spoiler_text"] = self.settings.spoiler_text
        if self.settings.language:
            status["language"] = self.settings.language
        return base.Rendition(
            format="text",
            parts=tuple(parts),
            title=post.title or None,
            extra={
                "status": status,
                "sensitive": self.settings.sensitive and bool(media),
                "max_characters": self.configuration.max_characters,
            },
            media=media,
        )

    # -- publish ------------------------------------------------------------------------

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        progress = self.store.progress(idempotency_key) or {}
        ids: list[str] = list(progress.get("status_ids", []))
        urls: list[str | None] = list(progress.get("urls", []))
        media_ids: list[str] = list(progress.get("media_ids", []))
        fields = rendition.extra.get("status") or {"visibility": self.settings.visibility}

        def save() -> None:
            self.store.save_progress(
                idempotency_key, {"status_ids": ids, "urls": urls, "media_ids": media_ids}
            )

        if not ids:
            for item in rendition.media[len(media_ids) :]:
                media_ids.append(self._upload(item))
                save()  # a retry attaches these instead of uploading them again

        total = len(rendition.parts)
        for index in range(len(ids), total):
            body: dict[str, Any] = {**fields, "status": rendition.parts[index]}
            if ids:
                body["in_reply_to_id"] = ids[-1]
            elif media_ids:
                body["media_ids"] = media_ids
                if rendition.extra.get("sensitive"):
                    body["sensitive"] = True
            key = idempotency_key if index == 0 else f"{idempotency_key}-{index}"
            response = self._request(
                "POST", "/api/v1/statuses", json=body, headers={"Idempotency-Key": key}
            )
            status = self._json(response)
            if not status.get("id"):
                raise base.PermanentError(f"{PLATFORM} answered a status without an id")
            ids.append(str(status["id"]))
            urls.append(status.get("url") if isinstance(status.get("url"), str) else None)
            save()
            if index + 1 < total and response.headers.get("X-RateLimit-Remaining") == "0":
                # Stop before the 429: the parts posted so far are saved, a retry after
                # the reset carries on with the next one.
                raise base.RetryableError(
                    f"{PLATFORM} rate limit used up after part {index + 1} of {total}",
                    retry_after=retry_after_seconds(response),
                )
        return self._receipt(ids, urls)

    def _receipt(self, ids: list[str], urls: list[str | None]) -> base.Receipt:
        return base.Receipt(
            external_id=ids[0],
            url=urls[0] if urls else None,
            data={"status_ids": ids, "urls": urls, "instance": self._base},
        )

    def _upload(self, item: base.MediaItem) -> str:
        description = item.alt_text[: self.configuration.description_limit]
        response = self._request(
            "POST",
            "/api/v2/media",
            files={"file": (item.filename, item.read(), item.content_type)},
            data={"description": description} if description else None,
        )
        attachment = self._json(response)
        media_id = str(attachment.get("id") or "")
        if not media_id:
            raise base.PermanentError(f"{PLATFORM} answered an upload without an id")
        waited = 0.0
        interval = self.poll_interval
        # 202 (or a 200 without a URL): still processing; 206 from GET: still processing.
        while not attachment.get("url"):
            if waited >= self.settings.media_timeout:
                raise base.RetryableError(
                    f"{PLATFORM} was still processing image {item.filename!r} after "
                    f"{self.settings.media_timeout:g} s"
                )
            self._pause(interval)
            waited += interval
            interval = min(interval * 2, self.poll_interval_cap)
            attachment = self._json(self._request("GET", f"/api/v1/media/{media_id}"))
        return media_id

    def _pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        progress = self.store.progress(idempotency_key) or {}
        ids = list(progress.get("status_ids", []))
        if ids and len(ids) >= len(rendition.parts):
            return self._receipt(ids, list(progress.get("urls", [])))
        return None
