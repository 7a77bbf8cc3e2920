"""WordPress (self-hosted): a post through the REST API, authenticated with an
application password.

One publish is, in order: tags and categories looked up by name (and created when
missing), the featured image uploaded (``POST /wp/v2/media``, raw body) and its alt text
set, then ``POST /wp/v2/posts``. Only that last request can make a post, so only its
failure after sending is ambiguous; the others are retryable.

WordPress has no idempotency key. The receipt is remembered in the channel's progress
after success, and the post's content ends with an invisible ``<!-- herald-<token> -->``
(the token is derived from the idempotency key) so that ``find_existing`` can search
for it when the create timed out after sending. The comment sits in a Custom HTML block
(``<!-- wp:html -->``): a bare comment at the end of classic content is wrapped in
``<p>…</p>`` by ``wpautop`` and shows as an empty paragraph, while content with a block
is served as written (``do_blocks`` takes ``wpautop`` off), and a Custom HTML block keeps
its comment as it is.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import httpx
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
from herald.adapters.text import key_digest, markdown_to_html
from herald.adapters.uploads import upload_filename

PLATFORM = "wordpress"
# Formats WordPress accepts for uploads by default (WebP since 5.8).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Every status a post of ours may have; trash is left out on purpose.
LIVE_STATUSES = "publish,future,draft,pending,private"
_SINGULAR = {"tags": "tag", "categories": "category"}


class WordPressCredentials(base.StrictModel):
    url: HttpUrl = Field(
        description="The site's address, e.g. https://blog.example.org (the REST API is "
        "at <url>/wp-json/; pretty permalinks must be on)."
    )
    username: str = Field(min_length=1, description="The WordPress user's login name.")
    application_password: str = Field(
        min_length=1,
        description="An application password (Users → Profile → Application Passwords), "
        "spaces allowed.",
    )


class WordPressSettings(HttpSettings):
    status: Literal["publish", "draft"] = Field(
        "publish", description="Publish the post, or leave it as a draft to review."
    )
    categories: list[str] = Field(
        default_factory=list,
        description="Category names to file every post under; missing ones are created.",
    )
    create_missing_terms: bool = Field(
        True,
        description="Create tags and categories that do not exist yet (needs the Editor "
        "role); when false, names the site does not know are left out.",
    )


def key_token(idempotency_key: str) -> str:
    """A short, search-friendly stand-in for the idempotency key (hex only, so WordPress's
    search and comment filtering leave it alone)."""
    return "herald-" + key_digest(idempotency_key)


def marker(idempotency_key: str) -> str:
    """The comment ``find_existing`` looks for in a post's raw content."""
    return f"<!-- {key_token(idempotency_key)} -->"


def marker_block(idempotency_key: str) -> str:
    """The marker as it ends a post: in a Custom HTML block, which WordPress serves as
    written, so the comment adds no element readers see (see the module docstring)."""
    return f"<!-- wp:html -->\n{marker(idempotency_key)}\n<!-- /wp:html -->"


def _wp_message(response: httpx.Response) -> tuple[str, str]:
    """``(code, message)`` from ``{"code", "message", "data": {"params": {...}}}``."""
    try:
        body: Any = response.json()
    except ValueError:
        return "", error_message(response)
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return "", error_message(response)
    message = html.unescape(body["message"])
    data = body.get("data")
    params = data.get("params") if isinstance(data, dict) else None
    if isinstance(params, dict) and params:
        message += " (" + "; ".join(str(v) for v in params.values()) + ")"
    return str(body.get("code") or ""), message[:MAX_MESSAGE]


@register
class WordPressAdapter(HttpAdapter[WordPressCredentials, WordPressSettings]):
    platform = PLATFORM
    display_name = "WordPress"
    credentials_model = WordPressCredentials
    settings_model = WordPressSettings
    # Post content is LONGTEXT: no practical length limit. One image, the featured image.
    # Upload size is the site's own (PHP upload_max_filesize, often 2-128 MB), so it is not
    # guessed here: a file too large is refused by WordPress with its own message. Core
    # WordPress has no API rate limit (hosts may add one; 429s are retried).
    limits = base.Limits(
        max_length=None, max_media=1, max_media_bytes=None, requests_per_minute=None
    )
    honours_idempotency_key: ClassVar[bool] = False

    # -- HTTP ----------------------------------------------------------------------------

    def _url(self, route: str) -> str:
        return str(self.credentials.url).rstrip("/") + "/wp-json/wp/v2" + route

    def _call(
        self,
        method: str,
        route: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        may_post: bool = False,
        check: bool = True,
    ) -> httpx.Response:
        """One request; an error answer raises unless ``check`` is off. Only a request that
        may create the post (``may_post``) is ambiguous when it dies after sending."""
        basic = f"{self.credentials.username}:{self.credentials.application_password}"
        request = self.build_request(
            method,
            self._url(route),
            params=params,
            json=json,
            content=content,
            headers={
                "Accept": "application/json",
                "Authorization": "Basic " + base64.b64encode(basic.encode()).decode(),
                **(headers or {}),
            },
        )
        # The error body is read before it is classified: term_exists holds the term's id.
        response = self.transmit(request, may_post=may_post)
        if check:
            _raise_for(response)
        return response

    # -- verify --------------------------------------------------------------------------

    def verify(self) -> base.Identity:
        me = api_json(self._call("GET", "/users/me", params={"context": "edit"}), platform=PLATFORM)
        capabilities = me.get("capabilities") or {}
        needed = "publish_posts" if self.settings.status == "publish" else "edit_posts"
        roles = ", ".join(me.get("roles") or []) or "none"
        name = str(me.get("name") or me.get("slug") or self.credentials.username)
        if not capabilities.get(needed):
            raise base.AuthError(
                f"WordPress user {name!r} may not {needed.replace('_', ' ')} "
                f"(roles: {roles}); give it the Author or Editor role"
            )
        return base.Identity(
            name=f"{name} on {self.credentials.url.host}",
            detail={
                "user_id": me.get("id"),
                "roles": me.get("roles") or [],
                "can_upload_images": bool(capabilities.get("upload_files")),
                "can_create_terms": bool(capabilities.get("manage_categories")),
            },
        )

    # -- render --------------------------------------------------------------------------

    def render(self, post: base.PostContent) -> base.Rendition:
        media = tuple(m for m in post.media if m.content_type in IMAGE_TYPES)
        return base.Rendition(
            format="html",
            parts=(markdown_to_html(post.body),),
            title=post.title,
            extra={
                "excerpt": post.excerpt or "",
                "tags": _unique(post.tags),
                "categories": _unique(self.settings.categories),
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
        tag_ids = self._term_ids("tags", rendition.extra.get("tags", []))
        category_ids = self._term_ids("categories", rendition.extra.get("categories", []))
        featured = progress.get("featured_media")
        if rendition.media and featured is None:
            featured = self._upload(rendition.media[0])
            progress["featured_media"] = featured
            self.store.save_progress(idempotency_key, progress)

        body: dict[str, Any] = {
            "title": {"raw": rendition.title or ""},
            "content": {"raw": rendition.parts[0] + "\n\n" + marker_block(idempotency_key)},
            "status": rendition.extra.get("status", self.settings.status),
            "tags": tag_ids,
        }
        if rendition.extra.get("excerpt"):
            body["excerpt"] = {"raw": rendition.extra["excerpt"]}
        if category_ids:
            body["categories"] = category_ids
        if featured is not None:
            body["featured_media"] = featured
        response = self._call("POST", "/posts", json=body, may_post=True)
        # A created post has a numeric id; without one the answer is not WordPress's.
        api_json(response, "id", platform=PLATFORM, expect=int, ambiguous=True)
        receipt = _receipt_for(api_json(response, platform=PLATFORM, ambiguous=True))
        self.store.save_receipt(idempotency_key, receipt, progress)
        return receipt

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        return self.store.receipt(idempotency_key) or self._search(idempotency_key)

    def _search(self, idempotency_key: str) -> base.Receipt | None:
        """Look for the delivery's marker among the site's posts."""
        # WordPress searches title, excerpt and raw content, comments included.
        found = self._call(
            "GET",
            "/posts",
            params={
                "search": key_token(idempotency_key),
                "status": LIVE_STATUSES,
                "context": "edit",
                "per_page": 10,
            },
        )
        wanted = marker(idempotency_key)
        for post in api_json(found, platform=PLATFORM, expect=list):
            content = post.get("content") if isinstance(post, dict) else None
            if isinstance(content, dict) and wanted in str(content.get("raw") or ""):
                return _receipt_for(post)
        return None

    # -- terms and media -----------------------------------------------------------------

    def _term_ids(self, taxonomy: str, names: Iterable[str]) -> list[int]:
        ids: list[int] = []
        for name in names:
            term_id = self._find_term(taxonomy, name)
            if term_id is None and self.settings.create_missing_terms:
                term_id = self._create_term(taxonomy, name)
            if term_id is not None and term_id not in ids:
                ids.append(term_id)
        return ids

    def _find_term(self, taxonomy: str, name: str) -> int | None:
        terms = self._call(
            "GET",
            f"/{taxonomy}",
            # WordPress stores names with &, < and > escaped and searches that stored form
            # ("R&amp;D"); a miss is caught by term_exists when creating.
            params={"search": html.escape(name, quote=False), "per_page": 100},
        )
        wanted = name.strip().casefold()
        for term in api_json(terms, platform=PLATFORM, expect=list):
            # The search matches parts of names too: only an exact name will do.
            if not isinstance(term, dict) or "id" not in term:
                continue
            if html.unescape(str(term.get("name", ""))).strip().casefold() == wanted:
                return int(term["id"])
        return None

    def _create_term(self, taxonomy: str, name: str) -> int:
        response = self._call("POST", f"/{taxonomy}", json={"name": name}, check=False)
        body = _json_object(response)
        if response.status_code < 300:
            return int(api_json(response, "id", platform=PLATFORM, expect=int))
        data = body.get("data")
        if body.get("code") == "term_exists" and isinstance(data, dict) and "term_id" in data:
            return int(data["term_id"])  # created meanwhile, by someone else or by a lost answer
        if response.status_code == 403 and body.get("code") == "rest_cannot_create":
            # Good credentials, but creating terms takes the Editor role.
            _, message = _wp_message(response)
            raise base.PermanentError(
                f"wordpress answered 403: {message} Herald could not create the "
                f"{_SINGULAR[taxonomy]} {name!r}: create it on the "
                "site, give the user the Editor role, or set create_missing_terms to false"
            )
        _raise_for(response)
        raise base.PermanentError(f"wordpress answered {response.status_code} without a term")

    def _upload(self, media: base.MediaItem) -> int:
        filename = upload_filename(media)
        uploaded = self._call(
            "POST",
            "/media",
            content=media.read(),
            headers={
                "Content-Type": media.content_type,
                "Content-Disposition": f'attachment; filename="{filename}"',
            },
        )
        media_id = int(api_json(uploaded, "id", platform=PLATFORM, expect=int))
        if media.alt_text:
            self._call("POST", f"/media/{media_id}", json={"alt_text": media.alt_text})
        return media_id


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 300:
        return
    code, message = _wp_message(response)
    text = f"wordpress answered {response.status_code}: {message}"
    # A file type or size the site refuses comes back as a 500; it will not pass later.
    if code == "rest_upload_sideload_error":
        raise base.PermanentError(text)
    raise_with_message(response, platform=PLATFORM, message=text)


def _unique(names: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        cleaned = name.strip()
        if cleaned and cleaned.casefold() not in seen:
            seen[cleaned.casefold()] = cleaned
    return list(seen.values())


def _receipt_for(post: dict[str, Any]) -> base.Receipt:
    return base.Receipt(
        external_id=str(post["id"]), url=post.get("link"), data={"status": post.get("status")}
    )
