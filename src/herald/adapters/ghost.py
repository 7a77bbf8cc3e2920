"""Ghost: a post through the Admin API, authenticated with a custom integration's Admin
API key.

The key is ``<id>:<secret>``; every request carries ``Authorization: Ghost <JWT>``, a
token Herald signs itself (HS256 with the hex-decoded secret, ``kid`` = id, ``aud``
``/admin/``, valid for five minutes, Ghost's maximum), so there is no login and nothing
to refresh. The body is HTML (``?source=html``: Ghost converts it to its editor format);
tags go by name and Ghost creates missing ones; the featured image is uploaded first
(``/images/upload/``) and its URL and alt text set on the post.

Ghost has no idempotency key. The receipt is remembered in the channel's progress after
success, and each post carries an internal tag ``#herald-<hash of the key>`` (Ghost
shows tags starting with ``#`` to no reader; its slug is ``hash-herald-...``), so that
``find_existing`` can ask for it when the create timed out after sending.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import httpx
import jwt
from pydantic import Field, HttpUrl

from herald.adapters import base
from herald.adapters.http import (
    MAX_MESSAGE,
    HttpAdapter,
    HttpSettings,
    api_json,
    error_message,
    raise_with_message,
)
from herald.adapters.registry import register
from herald.adapters.text import key_digest, markdown_to_html, shorten
from herald.adapters.uploads import upload_filename

PLATFORM = "ghost"
TOKEN_LIFETIME = 5 * 60  # seconds; Ghost refuses tokens older than five minutes
# What Ghost takes as an image (its docs: WEBP, JPEG, GIF, PNG and SVG).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/svg+xml"})
EXCERPT_LIMIT = 300  # custom_excerpt maxLength in Ghost's posts schema
TAG_LIMIT = 191  # a tag name's maxLength
ALL_STATUSES = "[draft,published,scheduled,sent]"


class GhostCredentials(base.StrictModel):
    url: HttpUrl = Field(
        description="The site's Admin API URL, shown with the key (e.g. "
        "https://example.ghost.io or https://blog.example.org)."
    )
    admin_api_key: str = Field(
        pattern=r"^[0-9a-fA-F]{1,64}:(?:[0-9a-fA-F]{2})+$",
        description="The integration's Admin API key, <id>:<secret> (Settings → "
        "Integrations → Add custom integration).",
    )


class GhostSettings(HttpSettings):
    status: Literal["published", "draft"] = Field(
        "published", description="Publish the post, or leave it as a draft to review."
    )
    api_version: str = Field(
        "v5.0",
        pattern=r"^v\d+\.\d+$",
        description="Sent as Accept-Version: the Ghost version Herald was written against.",
    )


def admin_token(admin_api_key: str, now: float | None = None) -> str:
    """A short-lived Admin API token, as Ghost checks it."""
    key_id, secret = admin_api_key.split(":", 1)
    issued = int(time.time() if now is None else now)
    return jwt.encode(
        {"iat": issued, "exp": issued + TOKEN_LIFETIME, "aud": "/admin/"},
        bytes.fromhex(secret),
        algorithm="HS256",
        headers={"kid": key_id},
    )


def internal_tag(idempotency_key: str) -> str:
    """The hidden tag that marks a delivery; Ghost slugs it ``hash-herald-<hex>``."""
    return "#herald-" + key_digest(idempotency_key, 16)


def internal_tag_slug(idempotency_key: str) -> str:
    return "hash-" + internal_tag(idempotency_key).removeprefix("#")


def _ghost_message(response: httpx.Response) -> str:
    """The first error's message and context from ``{"errors": [{"message", "context"}]}``."""
    try:
        body: Any = response.json()
    except ValueError:
        return error_message(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return error_message(response)
    first = errors[0]
    parts = [str(first.get(k)) for k in ("message", "context") if first.get(k)]
    return " — ".join(parts)[:MAX_MESSAGE] or error_message(response)


@register
class GhostAdapter(HttpAdapter[GhostCredentials, GhostSettings]):
    platform = PLATFORM
    display_name = "Ghost"
    credentials_model = GhostCredentials
    settings_model = GhostSettings
    # No practical length limit (the html field takes up to 1e9 characters); one image,
    # the feature image. Upload size is the site's own (Ghost-CLI's nginx allows 50 MB;
    # hosted plans differ), so it is left to Ghost's answer. Ghost documents no rate limit
    # for Admin API keys; a 429 from a proxy in front is retried.
    limits = base.Limits(
        max_length=None, max_media=1, max_media_bytes=None, requests_per_minute=None
    )
    honours_idempotency_key: ClassVar[bool] = False

    # -- HTTP ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        auth: bool = True,
        may_post: bool = False,
    ) -> httpx.Response:
        """One request to ``<url>/ghost/api/admin<path>``; an error answer raises. Only a
        request that may create the post (``may_post``) is ambiguous when it dies after
        sending; nothing else posts."""
        headers = {"Accept": "application/json", "Accept-Version": self.settings.api_version}
        if auth:
            headers["Authorization"] = f"Ghost {admin_token(self.credentials.admin_api_key)}"
        request = self.build_request(
            method,
            str(self.credentials.url).rstrip("/") + "/ghost/api/admin" + path,
            params=params,
            json=json,
            files=files,
            data=data,
            headers=headers,
        )
        # The error body is read before it is classified: its context explains a refusal.
        response = self.transmit(request, may_post=may_post)
        if response.status_code >= 300:
            message = f"ghost answered {response.status_code}: {_ghost_message(response)}"
            raise_with_message(response, platform=PLATFORM, message=message)
        return response

    # -- verify --------------------------------------------------------------------------

    def verify(self) -> base.Identity:
        # /site/ answers anyone; the posts read is what proves the key.
        site = api_json(self._call("GET", "/site/", auth=False), "site", platform=PLATFORM)
        self._call("GET", "/posts/", params={"limit": 1, "fields": "id"})
        return base.Identity(
            name=str(site.get("title") or self.credentials.url.host),
            detail={"url": site.get("url"), "version": site.get("version")},
        )

    # -- render --------------------------------------------------------------------------

    def render(self, post: base.PostContent) -> base.Rendition:
        media = tuple(m for m in post.media if m.content_type in IMAGE_TYPES)
        tags: dict[str, str] = {}
        for tag in post.tags:
            name = tag.strip()[:TAG_LIMIT]
            if name and not name.startswith("#"):  # '#' would make it internal
                tags.setdefault(name.casefold(), name)
        return base.Rendition(
            format="html",
            parts=(markdown_to_html(post.body),),
            title=post.title,
            extra={
                "tags": list(tags.values()),
                "custom_excerpt": shorten(post.excerpt, EXCERPT_LIMIT) if post.excerpt else None,
                "canonical_url": post.canonical_url,
                "status": self.settings.status,
            },
            media=media[: self.limits.max_media],
        )

    # -- publish -------------------------------------------------------------------------

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        progress = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(progress)
        if kept is not None:
            return kept
        feature_image = progress.get("feature_image")
        if rendition.media and feature_image is None:
            feature_image = self._upload(rendition.media[0])
            progress["feature_image"] = feature_image
            self.store.save_progress(idempotency_key, progress)

        post: dict[str, Any] = {
            "title": rendition.title or "",
            "html": rendition.parts[0],
            "status": rendition.extra.get("status", self.settings.status),
            "tags": [{"name": name} for name in rendition.extra.get("tags", [])]
            + [{"name": internal_tag(idempotency_key)}],
        }
        for field in ("custom_excerpt", "canonical_url"):
            if rendition.extra.get(field):
                post[field] = rendition.extra[field]
        if feature_image:
            post["feature_image"] = feature_image
            post["feature_image_alt"] = rendition.media[0].alt_text or None
        response = self._call(
            "POST", "/posts/", params={"source": "html"}, json={"posts": [post]}, may_post=True
        )
        receipt = _first_post(response, ambiguous=True)
        self.store.save_receipt(idempotency_key, receipt, progress)
        return receipt

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        return self.store.receipt(idempotency_key) or self._search(idempotency_key)

    def _search(self, idempotency_key: str) -> base.Receipt | None:
        """Look for the delivery's internal tag among the site's posts."""
        # The Admin API lists published posts only unless the filter names the statuses.
        found = self._call(
            "GET",
            "/posts/",
            params={
                "filter": f"tag:{internal_tag_slug(idempotency_key)}+status:{ALL_STATUSES}",
                "limit": 1,
            },
        )
        if not api_json(found, "posts", platform=PLATFORM, expect=list):
            return None
        return _first_post(found)

    def _upload(self, media: base.MediaItem) -> str:
        uploaded = self._call(
            "POST",
            "/images/upload/",
            files={"file": (upload_filename(media), media.read(), media.content_type)},
            data={"ref": str(media.id)},
        )
        return str(api_json(uploaded, "images", 0, "url", platform=PLATFORM, expect=str))


def _first_post(response: httpx.Response, *, ambiguous: bool = False) -> base.Receipt:
    """The receipt for the first post in an answer's ``posts``."""
    post = api_json(response, "posts", 0, platform=PLATFORM, ambiguous=ambiguous)
    return base.Receipt(
        external_id=api_json(
            response, "posts", 0, "id", platform=PLATFORM, expect=str, ambiguous=ambiguous
        ),
        url=post.get("url"),
        data={"status": post.get("status")},
    )
