"""DEV Community (dev.to) and any other Forem: Markdown articles through the Forem API v1.

- **Request.** ``POST /api/articles`` with ``{"article": {title, body_markdown, published,
  tags, canonical_url, description, series?, organization_id?}}``, the key in an
  ``api-key`` header and ``Accept: application/vnd.forem.api-v1+json`` (the v1 API).
  Errors come as ``{"error": "...", "status": 422}``; a 429 carries ``Retry-After``.
- **Tags.** At most 4 (Forem's Article#validate_tag), each lower-case ASCII letters and
  digits, at most 30 characters (Tag#validate_name): ``render`` normalises them
  (``release-notes`` → ``releasenotes``) and drops what has nothing left. The published
  schema types ``tags`` as one comma-separated string, so that is what is sent.
- **Duplicates.** Forem refuses a second article with the same ``canonical_url`` (it is
  unique across the site), so the same post sent twice to one Forem is refused with
  Forem's own message.
- **No idempotency key.** The delivery's key goes at the end of the Markdown as an HTML
  comment, invisible on the page. ``find_existing`` returns the receipt remembered after
  a successful create, else looks for that comment among the account's newest articles
  (``GET /api/articles/me/all``, drafts included).
- **Images.** The API takes no uploads (``main_image`` is a URL), so attached images are
  not sent; images already in the Markdown by URL stay.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import httpx
from pydantic import Field, HttpUrl

from herald.adapters import base
from herald.adapters.http import HttpAdapter, HttpSettings
from herald.adapters.registry import register
from herald.adapters.text import key_digest, shorten

PLATFORM = "devto"
ACCEPT = "application/vnd.forem.api-v1+json"
MAX_TAGS = 4
MAX_TAG_LENGTH = 30
MAX_TITLE = 128  # Article: validates :title, length: { maximum: 128 }
LOOKUP_PAGE = 30  # newest articles searched by find_existing (Forem's default page)
# Forem throttles API writes to 1 per second per key (rack-attack "api_write_throttle")
# and, by default, published articles to 9 per 30 seconds (RateLimitChecker,
# rate_limit_published_article_creation; answered 429 with Retry-After: 30).
REQUESTS_PER_MINUTE = 18


def normalise_tags(tags: tuple[str, ...] | list[str]) -> list[str]:
    """Forem's tag rules: ASCII letters and digits, lower case, 30 at most, 4 tags."""
    out: list[str] = []
    for tag in tags:
        ascii_tag = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode()
        name = re.sub(r"[^a-z0-9]", "", ascii_tag.lower())[:MAX_TAG_LENGTH]
        if name and name not in out:
            out.append(name)
    return out[:MAX_TAGS]


def delivery_marker(idempotency_key: str) -> str:
    """An HTML comment naming the delivery: invisible on the page, kept in the Markdown."""
    return f"<!-- herald:{key_digest(idempotency_key)} -->"


class DevtoCredentials(base.StrictModel):
    api_key: str = Field(
        min_length=1,
        description="API key from Settings → Extensions → DEV Community API Keys "
        "(on another Forem: the same page of that site).",
    )
    base_url: HttpUrl = Field(
        HttpUrl("https://dev.to"),
        description="The Forem's address: https://dev.to, or your own Forem instance.",
    )


class DevtoSettings(HttpSettings):
    published: bool = Field(
        True, description="Publish at once; false saves each article as a draft."
    )
    series: str | None = Field(
        None, max_length=128, description="Series name to add every article to; none if unset."
    )
    organization_id: int | None = Field(
        None, ge=1, description="Publish under this organisation (you must be a member)."
    )


@register
class DevtoAdapter(HttpAdapter[DevtoCredentials, DevtoSettings]):
    platform = PLATFORM
    display_name = "DEV Community (Forem)"
    credentials_model = DevtoCredentials
    settings_model = DevtoSettings
    limits = base.Limits(
        max_length=None,
        max_media=0,
        requests_per_minute=REQUESTS_PER_MINUTE,
        buckets=(
            base.Bucket(
                "articles",
                9,
                30,
                base.Scope.ACCOUNT,
                corrected_by=("/api/articles",),
                source="forem/forem RateLimitChecker (published articles: 9 per 30 s)",
            ),
            base.Bucket(
                "writes",
                1,
                1,
                base.Scope.ACCOUNT,
                source="forem/forem rack_attack api_write_throttle (1 write per second per key)",
            ),
        ),
    )

    def budget_scope(self, scope: base.Scope) -> str | None:
        return f"{self.credentials.base_url}|{self.credentials.api_key}"

    # -- HTTP ---------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> httpx.Response:
        request = self.build_request(
            method,
            str(self.credentials.base_url).rstrip("/") + path,
            json=json,
            params=params,
            headers={"api-key": self.credentials.api_key, "Accept": ACCEPT},
        )
        # A read posts nothing: an answer that never came is worth another try.
        return self.send(request, may_post=method != "GET")

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise base.PermanentError(
                f"{PLATFORM} answered {response.status_code} with something other than JSON: "
                "is the base URL a Forem?"
            ) from None

    # -- the contract -------------------------------------------------------------------

    def verify(self) -> base.Identity:
        user = self._json(self._request("GET", "/api/users/me"))
        if not isinstance(user, dict) or not user.get("username"):
            raise base.PermanentError(f"{PLATFORM} answered /api/users/me without a username")
        host = self.credentials.base_url.host or str(self.credentials.base_url)
        return base.Identity(
            name=f"@{user['username']} on {host}",
            detail={"id": user.get("id"), "username": user["username"], "name": user.get("name")},
        )

    def render(self, post: base.PostContent) -> base.Rendition:
        if not post.body.strip():
            raise base.PermanentError("the post has no body: Forem needs some Markdown")
        title = shorten(post.title, MAX_TITLE)
        if not title:
            raise base.PermanentError("the post has no title: Forem needs one")
        article: dict[str, Any] = {"tags": ", ".join(normalise_tags(post.tags))}
        if post.excerpt:
            article["description"] = post.excerpt
        if post.canonical_url:
            article["canonical_url"] = post.canonical_url
        return base.Rendition(
            format="markdown", parts=(post.body,), title=title, extra={"article": article}
        )

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        body = rendition.parts[0].rstrip("\n") + "\n\n" + delivery_marker(idempotency_key) + "\n"
        article: dict[str, Any] = {
            "title": rendition.title,
            "body_markdown": body,
            "published": self.settings.published,
            **rendition.extra.get("article", {}),
        }
        if self.settings.series:
            article["series"] = self.settings.series
        if self.settings.organization_id is not None:
            article["organization_id"] = self.settings.organization_id
        response = self._request("POST", "/api/articles", json={"article": article})
        try:
            created = response.json()
        except ValueError:
            created = None
        if not isinstance(created, dict) or created.get("id") is None:
            # A 2xx without the article: it may well exist now.
            raise base.AmbiguousError(
                f"{PLATFORM} answered {response.status_code} without the article"
            )
        receipt = self._receipt(created)
        self.store.save_receipt(idempotency_key, receipt)
        return receipt

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        return self.store.receipt(idempotency_key) or self._search(idempotency_key)

    def _search(self, idempotency_key: str) -> base.Receipt | None:
        """Look for the delivery's marker among the account's newest articles."""
        marker = delivery_marker(idempotency_key)
        articles = self._json(
            self._request("GET", "/api/articles/me/all", params={"per_page": LOOKUP_PAGE})
        )
        for article in articles if isinstance(articles, list) else []:
            if isinstance(article, dict) and marker in str(article.get("body_markdown") or ""):
                return self._receipt(article)
        return None

    @staticmethod
    def _receipt(article: dict[str, Any]) -> base.Receipt:
        url = article.get("url")
        return base.Receipt(
            external_id=str(article["id"]),
            url=url if isinstance(url, str) else None,
            data={"published": article.get("published"), "path": article.get("path")},
        )
