"""Medium: posts on your profile through Medium's (frozen) REST API, with an existing
integration token.

- **Tokens.** Medium no longer issues integration tokens or registers new API clients;
  tokens already made (Settings → Security and apps → Integration tokens) keep working,
  and they are what this adapter takes (``Authorization: Bearer <token>``).
- **Request.** ``GET /v1/me`` gives the author id (cached in the channel's session, with
  a fingerprint of the token, so it is asked once, not once per post); then
  ``POST /v1/users/{authorId}/posts`` with ``{title, contentFormat, content, tags,
  canonicalUrl, publishStatus, notifyFollowers?, license?}``. Medium shows no title
  unless the content has one, so the content starts with the title as a heading. Only
  three tags are used, none longer than 25 characters; a title over 100 characters is
  ignored (render shortens it). Errors come as ``{"errors": [{"message", "code"}]}``.
- **No idempotency key, no way to list posts.** Before sending, the delivery records when
  it sent; after a create, the receipt. ``find_existing`` returns that receipt, else —
  only for a post that was sent and went out ``public`` — looks for its title in the
  author's public RSS feed (``https://medium.com/feed/@username``, the ten newest
  stories) among items published since that time. Drafts and unlisted posts are not in
  the feed: for those a lost answer stays unconfirmed rather than risk a second post.
- **Images.** Integration tokens lack the ``uploadImage`` scope, so attached images are
  not sent; Medium copies images the HTML or Markdown already links by URL.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import time
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
from pydantic import Field, HttpUrl

from herald.adapters import base
from herald.adapters.http import HttpAdapter, HttpSettings
from herald.adapters.registry import register
from herald.adapters.text import markdown_to_html, shorten

PLATFORM = "medium"
MAX_TAGS = 3  # "Only the first three will be used."
MAX_TAG_LENGTH = 25  # "Tags longer than 25 characters will be ignored."
MAX_TITLE = 100  # "Titles longer than 100 characters will be ignored."
# Medium's clock and ours may differ: a feed item this much older than our send still counts.
CLOCK_SLACK = 600.0

License = Literal[
    "all-rights-reserved",
    "cc-40-by",
    "cc-40-by-sa",
    "cc-40-by-nd",
    "cc-40-by-nc",
    "cc-40-by-nc-nd",
    "cc-40-by-nc-sa",
    "cc-40-zero",
    "public-domain",
]


def medium_tags(tags: tuple[str, ...] | list[str]) -> list[str]:
    """The tags Medium will keep: three at most, none over 25 characters, no repeats."""
    out: list[str] = []
    for tag in tags:
        name = " ".join(tag.split())
        if name and len(name) <= MAX_TAG_LENGTH and name.lower() not in map(str.lower, out):
            out.append(name)
    return out[:MAX_TAGS]


def token_fingerprint(token: str) -> str:
    """Tells a cached session from another token's without keeping the token twice."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class MediumCredentials(base.StrictModel):
    token: str = Field(
        min_length=1,
        description="An existing integration token (Settings → Security and apps → "
        "Integration tokens); Medium issues no new ones.",
    )
    api_url: HttpUrl = Field(HttpUrl("https://api.medium.com"), description="Medium's API.")


class MediumSettings(HttpSettings):
    publish_status: Literal["public", "draft", "unlisted"] = Field(
        "public", description="public, draft (only you see it) or unlisted (anyone with the link)."
    )
    content_format: Literal["html", "markdown"] = Field(
        "html", description="Send the post as HTML (rendered by Herald) or as Markdown."
    )
    notify_followers: bool | None = Field(
        None, description="Tell your followers about the post; Medium's default if unset."
    )
    license: License | None = Field(
        None, description="The post's licence; Medium's default (all-rights-reserved) if unset."
    )
    feed_url: HttpUrl = Field(
        HttpUrl("https://medium.com/feed"),
        description="Where the public feeds are (…/@username), read to find a post whose "
        "answer was lost.",
    )


@register
class MediumAdapter(HttpAdapter[MediumCredentials, MediumSettings]):
    platform = PLATFORM
    display_name = "Medium"
    credentials_model = MediumCredentials
    settings_model = MediumSettings
    # Medium documents no rate limit for its API.
    limits = base.Limits(max_length=None, max_media=0)

    # -- HTTP ---------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, *, json: Any = None, headers: dict[str, str]
    ) -> httpx.Response:
        request = self.build_request(method, url, json=json, headers=headers)
        # A read posts nothing: an answer that never came is worth another try.
        return self.send(request, may_post=method != "GET")

    def _api(self, method: str, path: str, *, json: Any = None) -> dict[str, Any]:
        response = self._send(
            method,
            str(self.credentials.api_url).rstrip("/") + path,
            json=json,
            headers={
                "Authorization": f"Bearer {self.credentials.token}",
                "Accept": "application/json",
                "Accept-Charset": "utf-8",
            },
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise (base.AmbiguousError if method == "POST" else base.PermanentError)(
                f"{PLATFORM} answered {response.status_code} without a data object"
            )
        return data

    # -- who we are ---------------------------------------------------------------------

    def _me(self) -> dict[str, Any]:
        user = self._api("GET", "/v1/me")
        if not user.get("id") or not user.get("username"):
            raise base.PermanentError(f"{PLATFORM} answered /v1/me without an id and username")
        session = {
            "token": token_fingerprint(self.credentials.token),
            "user_id": str(user["id"]),
            "username": str(user["username"]),
        }
        self.store.save_session(session)
        return {**user, **session}

    def _author(self) -> dict[str, Any]:
        """The author id and username, from the session when it is this token's."""
        session = self.store.session()
        if session and session.get("token") == token_fingerprint(self.credentials.token):
            return session
        return self._me()

    # -- the contract -------------------------------------------------------------------

    def verify(self) -> base.Identity:
        user = self._me()
        return base.Identity(
            name=f"@{user['username']}",
            detail={"id": user["user_id"], "name": user.get("name"), "url": user.get("url")},
        )

    def render(self, post: base.PostContent) -> base.Rendition:
        if not post.body.strip():
            raise base.PermanentError("the post has no body: Medium needs some content")
        title = post.title.strip()
        if not title:
            raise base.PermanentError("the post has no title: Medium needs one")
        if self.settings.content_format == "html":
            content = f"<h1>{html.escape(title, quote=False)}</h1>\n{markdown_to_html(post.body)}"
        else:
            content = f"# {title}\n\n{post.body.strip()}\n"
        fields: dict[str, Any] = {"tags": medium_tags(post.tags)}
        if post.canonical_url:
            fields["canonicalUrl"] = post.canonical_url
        return base.Rendition(
            format=self.settings.content_format,
            parts=(content,),
            title=shorten(title, MAX_TITLE),
            extra={"post": fields},
        )

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        author = self._author()
        payload: dict[str, Any] = {
            "title": rendition.title,
            "contentFormat": rendition.format,
            "content": rendition.parts[0],
            "publishStatus": self.settings.publish_status,
            **rendition.extra.get("post", {}),
        }
        if self.settings.notify_followers is not None:
            payload["notifyFollowers"] = self.settings.notify_followers
        if self.settings.license is not None:
            payload["license"] = self.settings.license
        # Recorded before sending: find_existing looks on Medium only for a delivery that
        # may have gone out, and only at what was published since.
        earlier = self.store.progress(idempotency_key) or {}
        self.store.save_progress(
            idempotency_key,
            {
                "sent_at": earlier.get("sent_at") or time.time(),
                "publish_status": self.settings.publish_status,
                "username": author["username"],
            },
        )
        path = f"/v1/users/{quote(author['user_id'], safe='')}/posts"
        created = self._api("POST", path, json=payload)
        if not created.get("id"):
            raise base.AmbiguousError(f"{PLATFORM} accepted the post but sent back no id")
        url = created.get("url")
        receipt = base.Receipt(
            external_id=str(created["id"]),
            url=url if isinstance(url, str) else None,
            data={"publish_status": created.get("publishStatus")},
        )
        self.store.save_receipt(idempotency_key, receipt)
        return receipt

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        saved = self.store.progress(idempotency_key)
        if not saved:
            return None  # never sent: publish records the attempt before sending
        kept = base.receipt_in(saved)
        if kept is not None:
            return kept
        if saved.get("publish_status") != "public" or not saved.get("username"):
            return None  # drafts and unlisted posts are in no public feed
        since = float(saved["sent_at"]) - CLOCK_SLACK
        for item in self._feed(str(saved["username"])):
            if item["title"] == (rendition.title or "").strip() and item["published"] >= since:
                return base.Receipt(
                    external_id=item["id"], url=item["url"], data={"found_in": "feed"}
                )
        return None

    def _feed(self, username: str) -> list[dict[str, Any]]:
        """The author's public RSS feed: id, url, title and publication time of each item."""
        url = f"{str(self.settings.feed_url).rstrip('/')}/@{quote(username, safe='')}"
        response = self._send(
            "GET", url, headers={"Accept": "application/rss+xml, application/xml"}
        )
        try:
            # ElementTree fetches no external entities, and expat >= 2.4.1 caps entity
            # expansion, so a hostile feed cannot blow up; it is Medium's own feed anyway.
            root = ElementTree.fromstring(response.content)  # noqa: S314
        except ElementTree.ParseError as exc:
            raise base.PermanentError(f"{PLATFORM} feed at {url} is not RSS: {exc}") from None
        items: list[dict[str, Any]] = []
        for item in root.iter("item"):
            guid = (item.findtext("guid") or "").strip()
            link = (item.findtext("link") or "").strip()
            try:
                published = email.utils.parsedate_to_datetime(item.findtext("pubDate") or "")
            except (TypeError, ValueError):
                continue
            post_id = urlsplit(guid).path.rstrip("/").rsplit("/", 1)[-1]
            if not post_id:
                continue
            clean = urlsplit(link)
            items.append(
                {
                    "id": post_id,
                    "url": urlunsplit((clean.scheme, clean.netloc, clean.path, "", "")) or None,
                    "title": (item.findtext("title") or "").strip(),
                    "published": published.timestamp(),
                }
            )
        return items
