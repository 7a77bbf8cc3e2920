"""LinkedIn: a post on a member's feed or an organization page, through the Posts API.

One ``POST /rest/posts`` per delivery (LinkedIn has no threads): the commentary is plain
text in LinkedIn's "little" format, where ``\\ | { } @ [ ] ( ) < > # * _ ~`` are markup and
must be backslash-escaped (unescaped, LinkedIn silently cuts the text at the first one).
Only the hashtags Herald appends stay unescaped. A post with a canonical URL carries an
article card; a post with images carries them instead (one image, or a multi-image post
of up to 20), each with its alt text, uploaded through the Images API first.

LinkedIn answers ``201`` with the new post's URN in ``x-restli-id``. It has no
idempotency key: the receipt is kept in the channel's progress, and after an answer that
never came, :meth:`LinkedInAdapter.find_existing` lists the author's recent posts and
matches the exact commentary (reading posts needs ``r_member_social`` or
``r_organization_social``; without it, it can't tell and says so with ``None``). A resend
then meets LinkedIn's own duplicate check, whose 422 names the post made the first time:
for a key whose first answer was lost, that post is the receipt.

Access tokens last 60 days. Apps approved for programmatic refresh tokens get one that
lasts a year: with ``refresh_token``, ``client_id`` and ``client_secret`` in the
credentials, a 401 is answered by one refresh (stored before use) and one retry. With
``expires_at`` known (given, or set from ``expires_in`` at each refresh), the channel
check refreshes a token that would expire before the next check.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from herald.adapters import base
from herald.adapters.http import HttpAdapter, HttpSettings, raise_for_status
from herald.adapters.registry import register
from herald.adapters.text import markdown_to_text, split_thread
from herald.core.clock import utcnow

PLATFORM = "linkedin"

# Posts API: commentary is at most 3,000 characters.
MAX_COMMENTARY = 3000
# Posts API: a multiImage post takes 2 to 20 images.
MAX_IMAGES = 20
# LinkedIn's composer takes images up to 5 MB (JPG, PNG, GIF); the Images API itself only
# documents the 36,152,320-pixel cap.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 36_152_320
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif"})
MAX_ALT_TEXT = 4086  # Posts API: media altText, at most 4,086 characters

_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
_URN = r"urn:li:(?:person|organization):[A-Za-z0-9_-]+"
# 422 DUPLICATE_POST: "... Content is a duplicate of urn:li:share:7141138937766391808".
_DUPLICATE = re.compile(r"duplicate of (urn:li:(?:share|ugcPost):\d+)")
# The window in which a post found by find_existing counts as ours: LinkedIn's clock and
# ours may disagree a little.
_CLOCK_SKEW_MS = 5 * 60 * 1000


def escape_little(text: str) -> str:
    """Plain text as LinkedIn's little format: every reserved character escaped."""
    return _RESERVED.sub(r"\\\1", text)


def utf16_length(text: str) -> int:
    # LinkedIn's services count Java characters (UTF-16 code units); an emoji counts 2.
    return len(text.encode("utf-16-le")) // 2


def hashtag(tag: str) -> str:
    """``release-notes`` → ``#releasenotes``: LinkedIn hashtags are letters and digits."""
    word = "".join(ch for ch in tag if ch.isalnum())
    return f"#{word}" if word else ""


class LinkedInCredentials(base.StrictModel):
    access_token: str = Field(
        min_length=1,
        description="OAuth 2.0 access token with w_member_social (or w_organization_social "
        "for a page) and openid + profile; lasts 60 days.",
    )
    author: str = Field(
        pattern=rf"^{_URN}$",
        description="Who posts: urn:li:person:<id> (the 'sub' from /v2/userinfo) or "
        "urn:li:organization:<id> for a page the member administers.",
    )
    refresh_token: str | None = Field(
        None,
        description="Programmatic refresh token (approved apps only; lasts 365 days).",
    )
    client_id: str | None = Field(None, description="The app's Client ID, for refreshing.")
    client_secret: str | None = Field(
        None, description="The app's Primary Client Secret, for refreshing."
    )
    expires_at: datetime | None = Field(
        None,
        description="When the access token expires (ISO 8601; now + expires_in). Known: "
        "Herald refreshes it ahead of time; set by Herald at each refresh.",
    )
    api_url: str = Field(
        "https://api.linkedin.com",
        pattern=r"^https?://[^/\s]+$",
        description="Base URL of the REST API (tests point it at a fake).",
    )
    oauth_url: str = Field(
        "https://www.linkedin.com/oauth/v2",
        pattern=r"^https?://\S+$",
        description="Base URL of LinkedIn's OAuth endpoints (accessToken lives under it).",
    )

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _refresh_needs_the_app(self) -> LinkedInCredentials:
        if self.refresh_token and not (self.client_id and self.client_secret):
            raise ValueError("refresh_token needs client_id and client_secret")
        return self


class LinkedInSettings(HttpSettings):
    linkedin_version: str = Field(
        "202607",
        pattern=r"^\d{6}(\.\d{2})?$",
        description="LinkedIn-Version header (YYYYMM). Each version works for at least a "
        "year; LinkedIn answers 426 once it is sunset.",
    )
    visibility: Literal["PUBLIC", "CONNECTIONS"] = Field(
        "PUBLIC", description="Who sees the post; CONNECTIONS only works for members."
    )
    hashtags: bool = Field(True, description="Append the post's tags as #hashtags.")


@register
class LinkedInAdapter(HttpAdapter[LinkedInCredentials, LinkedInSettings]):
    platform = PLATFORM
    display_name = "LinkedIn"
    credentials_model = LinkedInCredentials
    settings_model = LinkedInSettings
    # LinkedIn publishes daily quotas, not a per-minute one: "Share on LinkedIn" allows 150
    # posts a day per member and 100,000 a day per app, reset at midnight UTC.
    limits = base.Limits(
        max_length=MAX_COMMENTARY,
        max_media=MAX_IMAGES,
        max_media_bytes=MAX_IMAGE_BYTES,
    )
    honours_idempotency_key: ClassVar[bool] = False

    def measure(self, text: str) -> int:
        # The commentary as sent, escapes included: LinkedIn does not say whether its
        # 3,000 counts them, so count them and never be refused.
        return utf16_length(text)

    # -- HTTP -------------------------------------------------------------------------

    def _headers(self, *, rest: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.credentials.access_token}"}
        if rest:
            headers["LinkedIn-Version"] = self.settings.linkedin_version
            headers["X-Restli-Protocol-Version"] = "2.0.0"
        return headers

    def _request(
        self,
        method: str,
        url: str,
        *,
        rest: bool = True,
        json_body: Any = None,
        content: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One call; on a 401, one refresh (when the credentials allow it) and one retry."""
        refreshed = False
        while True:
            headers = self._headers(rest=rest) | (extra_headers or {})
            request = self.build_request(
                method, url, headers=headers, json=json_body, content=content
            )
            response = self.transmit(request)
            try:
                raise_for_status(response, platform=PLATFORM)
                return response
            except base.AuthError:
                expired = response.status_code == 401
                if refreshed or not expired or not self.credentials.refresh_token:
                    raise
            except base.RetryableError as exc:
                if exc.retry_after is None and "DAY limit" in exc.message:
                    # Daily quotas reset at midnight UTC; asking sooner only burns retries.
                    raise base.RetryableError(exc.message, retry_after=_until_midnight()) from exc
                raise
            self._refresh()
            refreshed = True

    def _refresh(self) -> None:
        stale = self.credentials.model_dump(mode="json")
        fresh = self.store.refresh_credentials(stale, self._refreshed)
        self.credentials = LinkedInCredentials.model_validate(fresh)

    def _refreshed(self, stale: dict[str, Any]) -> dict[str, Any]:
        """Trade the refresh token for a new access token (OAuth 2.0 refresh_token grant)."""
        request = self.build_request(
            "POST",
            f"{stale['oauth_url'].rstrip('/')}/accessToken",
            data={
                "grant_type": "refresh_token",
                "refresh_token": stale["refresh_token"],
                "client_id": stale["client_id"],
                "client_secret": stale["client_secret"],
            },
        )
        try:
            response = self.send(request)
        except base.PermanentError as exc:
            # invalid_grant and friends: the refresh token is spent; reconnect the channel.
            raise base.AuthError(
                f"LinkedIn refused to refresh the access token: {exc.message}"
            ) from exc
        data = _json_object(response)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise base.AuthError("LinkedIn's token endpoint answered without an access_token")
        fresh = dict(stale, access_token=token)
        if isinstance(data.get("refresh_token"), str) and data["refresh_token"]:
            fresh["refresh_token"] = data["refresh_token"]
        lifetime = data.get("expires_in")
        fresh["expires_at"] = (
            (utcnow() + timedelta(seconds=float(lifetime))).isoformat()
            if isinstance(lifetime, int | float)
            else None
        )
        return fresh

    def refresh_ahead(self, within: timedelta) -> bool:
        expires_at = self.credentials.expires_at
        if expires_at is None or not self.credentials.refresh_token:
            return False  # unknown expiry, or no way to refresh: a 401 will tell
        if utcnow() < expires_at - within:
            return False
        self._refresh()
        return True

    def _rest(self, path: str) -> str:
        return f"{self.credentials.api_url.rstrip('/')}/rest/{path}"

    # -- verify -----------------------------------------------------------------------

    def verify(self) -> base.Identity:
        """Who the token belongs to (OpenID Connect userinfo: scopes openid + profile)."""
        url = f"{self.credentials.api_url.rstrip('/')}/v2/userinfo"
        try:
            response = self._request("GET", url, rest=False)
        except base.AuthError as exc:
            if exc.message.startswith(f"{PLATFORM} answered 403"):
                raise base.AuthError(
                    f"{exc.message} (the token needs the openid and profile scopes: add "
                    "'Sign In with LinkedIn using OpenID Connect' to the app)"
                ) from exc
            raise
        info = _json_object(response)
        member = f"urn:li:person:{info.get('sub', '')}"
        author = self.credentials.author
        if author.startswith("urn:li:person:") and author != member:
            raise base.AuthError(
                "the access token belongs to another LinkedIn member than the author "
                "in the credentials"
            )
        name = str(info.get("name") or info.get("given_name") or member)
        return base.Identity(name=name, detail={"member": member, "author": author})

    # -- render -----------------------------------------------------------------------

    def render(self, post: base.PostContent) -> base.Rendition:
        main = "\n\n".join(p for p in (post.title.strip(), markdown_to_text(post.body)) if p)
        tail: list[str] = []
        link = post.canonical_url
        if link and link not in main:
            tail.append(escape_little(link))
        if self.settings.hashtags:
            tags = " ".join(dict.fromkeys(t for t in map(hashtag, post.tags) if t))
            if tags:
                tail.append(tags)  # unescaped on purpose: these are LinkedIn hashtags
        commentary = self._commentary(main, "\n\n".join(tail))
        media = _usable_images(post.media)
        extra: dict[str, Any] = {}
        if link and not media:
            article = {"source": link, "title": post.title.strip() or link}
            if post.excerpt:
                article["description"] = post.excerpt
            extra["article"] = article
        return base.Rendition(
            format="text", parts=(commentary,), title=post.title, extra=extra, media=media
        )

    def _commentary(self, main: str, tail: str) -> str:
        joiner = "\n\n" if main and tail else ""
        whole = escape_little(main) + joiner + tail
        if self.measure(whole) <= MAX_COMMENTARY:
            return whole
        # Too long: keep the start, cut between paragraphs or sentences, keep the tail.
        room = MAX_COMMENTARY - self.measure(joiner + tail) - len("…")
        if room < 100 or not main:
            raise base.PermanentError("the link and hashtags alone leave no room on LinkedIn")
        first = split_thread(
            main, room, measure=lambda s: self.measure(escape_little(s)), numbering=False
        )[0]
        cut = escape_little(first)
        if not cut.endswith((".", "!", "?", "…")):
            cut += "…"
        return cut + joiner + tail

    # -- publish ----------------------------------------------------------------------

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        progress = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(progress)
        if kept is not None:
            return kept
        images: dict[str, str] = dict(progress.get("images", {}))
        for item in rendition.media:
            if str(item.id) not in images:
                images[str(item.id)] = self._upload(item)
                progress["images"] = images
                self.store.save_progress(idempotency_key, progress)
        body = self._post_body(rendition, images)
        sent_before = isinstance(progress.get("sending_since"), int)
        # Remember that a create went out, so find_existing looks only when it may exist.
        progress["sending_since"] = int(time.time() * 1000)
        self.store.save_progress(idempotency_key, progress)
        try:
            response = self._request("POST", self._rest("posts"), json_body=body)
        except base.PermanentError as exc:
            # LinkedIn refuses a repeat of a recent post and names the first one: after a
            # lost answer for this very key, that first one is ours.
            duplicate = _DUPLICATE.search(exc.message)
            if not (sent_before and duplicate):
                raise
            urn: str | None = duplicate.group(1)
        else:
            urn = response.headers.get("x-restli-id") or response.headers.get("x-linkedin-id")
        if not urn:
            raise base.PermanentError("LinkedIn created the post but sent no x-restli-id")
        receipt = base.Receipt(external_id=urn, url=post_url(urn))
        self.store.save_receipt(idempotency_key, receipt)
        return receipt

    def _post_body(self, rendition: base.Rendition, images: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "author": self.credentials.author,
            "commentary": rendition.parts[0],
            "visibility": self.settings.visibility,
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        pictures = [
            {"id": images[str(item.id)], "altText": item.alt_text[:MAX_ALT_TEXT]}
            for item in rendition.media
        ]
        if len(pictures) == 1:
            body["content"] = {"media": pictures[0]}
        elif pictures:
            body["content"] = {"multiImage": {"images": pictures}}
        elif "article" in rendition.extra:
            body["content"] = {"article": rendition.extra["article"]}
        return body

    def _upload(self, item: base.MediaItem) -> str:
        """Images API: initializeUpload for an image URN, then PUT the bytes."""
        response = self._request(
            "POST",
            self._rest("images?action=initializeUpload"),
            json_body={"initializeUploadRequest": {"owner": self.credentials.author}},
        )
        value = _json_object(response).get("value")
        if not isinstance(value, dict):
            raise base.PermanentError("LinkedIn's initializeUpload answer has no 'value'")
        upload_url, urn = value.get("uploadUrl"), value.get("image")
        if not isinstance(upload_url, str) or not isinstance(urn, str):
            raise base.PermanentError("LinkedIn's initializeUpload answer lacks uploadUrl or image")
        self._check_upload_url(upload_url)
        self._request(
            "PUT",
            upload_url,
            rest=False,
            content=item.read(),
            extra_headers={"Content-Type": "application/octet-stream"},
        )
        return urn

    def _check_upload_url(self, url: str) -> None:
        # The token goes along with the bytes: only to LinkedIn, or to the configured API.
        parts, api = urlsplit(url), urlsplit(self.credentials.api_url)
        linkedin = parts.scheme == "https" and (
            parts.hostname == "linkedin.com" or (parts.hostname or "").endswith(".linkedin.com")
        )
        if not (linkedin or parts.netloc == api.netloc):
            raise base.PermanentError("LinkedIn answered an upload URL outside linkedin.com")

    # -- find_existing ----------------------------------------------------------------

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        progress = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(progress)
        if kept is not None:
            return kept
        since = progress.get("sending_since")
        if not isinstance(since, int):
            return None  # this key never sent a create: nothing of ours can be there
        author = quote(self.credentials.author, safe="")
        url = self._rest(f"posts?author={author}&q=author&count=10&sortBy=LAST_MODIFIED")
        try:
            response = self._request("GET", url, extra_headers={"X-RestLi-Method": "FINDER"})
        except base.AuthError as exc:
            if exc.message.startswith(f"{PLATFORM} answered 403"):
                return None  # no r_member_social / r_organization_social: can't tell
            raise
        elements = _json_object(response).get("elements")
        for element in elements if isinstance(elements, list) else []:
            if not isinstance(element, dict):
                continue
            created = element.get("createdAt") or element.get("publishedAt") or 0
            if (
                element.get("commentary") == rendition.parts[0]
                and isinstance(created, int)
                and created >= since - _CLOCK_SKEW_MS
                and isinstance(element.get("id"), str)
            ):
                receipt = base.Receipt(external_id=element["id"], url=post_url(element["id"]))
                self.store.save_receipt(idempotency_key, receipt)
                return receipt
        return None


def post_url(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _usable_images(media: tuple[base.MediaItem, ...]) -> tuple[base.MediaItem, ...]:
    usable = [
        item
        for item in media
        if item.content_type in IMAGE_TYPES
        and item.size <= MAX_IMAGE_BYTES
        and (item.width or 0) * (item.height or 0) < MAX_PIXELS
    ]
    return tuple(usable[:MAX_IMAGES])


def _until_midnight(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()
