"""Discourse forums: a search, or the latest topics (of the forum, or of one category).

Endpoints (Discourse's API docs, docs.discourse.org): ``/search.json?q=…&page=N`` (pages
from 1, 50 posts each; ``order:latest`` in the query for newest first) answers
``{"posts": [...], "topics": [...], "grouped_search_result": {"more_full_page_results",
…}}``, each post naming its topic by ``topic_id``; ``/latest.json`` and a category's
``/c/{slug}/{id}.json`` answer ``{"topic_list": {"topics": [...], "more_topics_url"}}``.
Credentials, optional (a private forum): ``{"api_key", "api_username"}``, sent as the
``Api-Key`` and ``Api-Username`` headers.

Rate limits (meta.discourse.org, "Available settings for global rate limits and
throttling"): by default 200 requests per minute and 50 per 10 seconds per IP;
admin API keys share 60 requests per minute. Herald paces one request per 0.5 s per
forum across all its workers without a key (120 a minute), one per 1.1 s with one.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from herald.core.errors import InvalidInput
from herald.sources.entries import Entry, sanitise
from herald.sources.sites.base import (
    SiteError,
    SitePage,
    SiteRead,
    as_int,
    as_str,
    from_iso,
    get_json,
    shape_error,
)

SITE = "discourse"
FORMAT = "discourse-json"
INTERVAL = 0.5
KEY_INTERVAL = 1.1
_SETTINGS = frozenset({"category"})
# "slug/id" as in a category's URL (…/c/slug/id), a parent's slug before it, or the id.
_CATEGORY = re.compile(r"^(?:[\w-]+/){0,2}\d+$")


def normalise_url(url: str | None, *, field: str = "url") -> tuple[str, str | None]:
    """The forum's base URL (scheme, host, and the path it is served under) and the
    category found in it (``…/c/slug/id``), if any."""
    if not url or not url.strip():
        raise InvalidInput("a discourse source needs the forum's URL", field=field)
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # raises for a port out of range
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise InvalidInput(
            f"{url!r} is not a forum URL: give it as https://forum.example.org", field=field
        )
    path = parts.path.rstrip("/")
    category = None
    found = re.search(r"/c/((?:[\w-]+/){0,2}\d+)(?:/.*)?$", path)
    if found:
        category = found.group(1)
        path = path[: found.start()]
    path = re.sub(r"/(latest|search)(\.json)?$", "", path)
    return urlunsplit((parts.scheme, parts.netloc.lower(), path, "", "")), category


def check_config(
    url: str | None, query: str | None, settings: dict[str, Any]
) -> tuple[str | None, str | None, dict[str, Any]]:
    """``url`` the forum (a category's URL works too); ``query`` words to search, or none
    for the latest topics; ``settings.category`` ("slug/id", as in the category's URL)
    limits either to one category."""
    unknown = set(settings) - _SETTINGS
    if unknown:
        raise InvalidInput(
            f"discourse sources take the settings {sorted(_SETTINGS)}, not {sorted(unknown)}",
            field="settings",
        )
    base, from_url = normalise_url(url)
    category = settings.get("category") or from_url
    normal: dict[str, Any] = {}
    if category is not None:
        category = str(category).strip("/")
        if not _CATEGORY.match(category):
            raise InvalidInput(
                f"settings.category {category!r} should be the category's slug and id as in "
                "its URL (…/c/dev/7 → 'dev/7')",
                field="settings",
            )
        normal["category"] = category
    text = (query or "").strip() or None
    if text is not None and len(text) > 512:
        raise InvalidInput("a discourse search is at most 512 characters", field="query")
    return base, text, normal


def _headers(credentials: dict[str, Any] | None) -> tuple[dict[str, str], float]:
    if not credentials:
        return {}, INTERVAL
    key, user = credentials.get("api_key"), credentials.get("api_username")
    if not key or not user:
        raise SiteError("discourse credentials need api_key and api_username")
    return {"Api-Key": str(key), "Api-Username": str(user)}, KEY_INTERVAL


def _scope(settings: dict[str, Any]) -> str | None:
    """The category as search syntax: ``#slug``, or ``category:id`` without a slug."""
    category = settings.get("category")
    if not category:
        return None
    parts = str(category).split("/")
    return f"#{parts[-2]}" if len(parts) > 1 else f"category:{parts[-1]}"


def title_of(base: str, query: str | None, settings: dict[str, Any]) -> str:
    where = _host(base)
    scope = _scope(settings)
    if scope:
        where += f" {scope}"
    return f"{where}: {query}" if query else where


def _search_terms(query: str, settings: dict[str, Any]) -> str:
    scope = _scope(settings)
    return f"{query} {scope} order:latest" if scope else f"{query} order:latest"


def _host(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.netloc}{parts.path}"


def _topic_entry(base: str, topic: dict[str, Any]) -> Entry | None:
    topic_id = as_int(topic.get("id"))
    if topic_id is None:
        return None
    slug = as_str(topic.get("slug")) or "topic"
    link = f"{base}/t/{slug}/{topic_id}"
    html, text = sanitise(as_str(topic.get("excerpt")) or "")
    posts = as_int(topic.get("posts_count"))
    return Entry(
        site=SITE,
        title=html_lib.unescape(
            as_str(topic.get("fancy_title")) or as_str(topic.get("title")) or ""
        ),
        guid=f"discourse:{_host(base)}/t/{topic_id}",
        link=link,
        summary_html=html,
        summary_text=text,
        author=as_str(topic.get("last_poster_username")),
        published_at=from_iso(topic.get("created_at")),
        updated_at=from_iso(topic.get("bumped_at") or topic.get("last_posted_at")),
        score=as_int(topic.get("like_count")),
        comments=max(posts - 1, 0) if posts is not None else None,
        comments_url=link,
        extra=_extra(topic),
    )


def _extra(topic: dict[str, Any]) -> dict[str, Any]:
    return {k: topic[k] for k in ("category_id", "views", "tags") if topic.get(k) is not None}


def _post_entry(base: str, post: dict[str, Any], topics: dict[int, dict[str, Any]]) -> Entry | None:
    post_id, topic_id = as_int(post.get("id")), as_int(post.get("topic_id"))
    if post_id is None or topic_id is None:
        return None
    topic = topics.get(topic_id, {})
    slug = as_str(topic.get("slug")) or "topic"
    number = as_int(post.get("post_number")) or 1
    # The blurb is plain text (search highlights aside): escaped before sanitising.
    html, text = sanitise(html_lib.escape(as_str(post.get("blurb")) or ""))
    posts = as_int(topic.get("posts_count"))
    return Entry(
        site=SITE,
        title=html_lib.unescape(
            as_str(topic.get("fancy_title")) or as_str(topic.get("title")) or f"Topic {topic_id}"
        ),
        guid=f"discourse:{_host(base)}/p/{post_id}",
        link=f"{base}/t/{slug}/{topic_id}/{number}",
        summary_html=html,
        summary_text=text,
        author=as_str(post.get("username")),
        published_at=from_iso(post.get("created_at")),
        score=as_int(post.get("like_count")),
        comments=max(posts - 1, 0) if posts is not None else None,
        comments_url=f"{base}/t/{slug}/{topic_id}",
        extra={"topic_id": topic_id, "post_number": number, **_extra(topic)},
    )


def _search(data: Any, base: str) -> tuple[list[Entry], bool]:
    posts = data.get("posts") if isinstance(data, dict) else None
    if not isinstance(posts, list):
        raise shape_error("discourse", "posts (is this a Discourse forum?)")
    topics = {
        t["id"]: t
        for t in data.get("topics") or ()
        if isinstance(t, dict) and as_int(t.get("id")) is not None
    }
    entries = [
        e
        for p in posts
        if isinstance(p, dict)
        for e in [_post_entry(base, p, topics)]
        if e is not None
    ]
    grouped = data.get("grouped_search_result")
    more = bool(grouped.get("more_full_page_results")) if isinstance(grouped, dict) else False
    return entries, more


def _latest_path(settings: dict[str, Any]) -> str:
    category = settings.get("category")
    return f"/c/{category}.json" if category else "/latest.json"


def latest(
    base: str, query: str | None, settings: dict[str, Any], credentials: dict[str, Any] | None
) -> SiteRead:
    headers, interval = _headers(credentials)
    if query:
        answer = get_json(
            SITE,
            f"{base}/search.json",
            interval=interval,
            headers=headers,
            params={"q": _search_terms(query, settings), "page": 1},
        )
        entries, _ = _search(answer.data, base)
    else:
        answer = get_json(
            SITE, f"{base}{_latest_path(settings)}", interval=interval, headers=headers
        )
        topic_list = answer.data.get("topic_list") if isinstance(answer.data, dict) else None
        topics = topic_list.get("topics") if isinstance(topic_list, dict) else None
        if not isinstance(topics, list):
            raise shape_error("discourse", "topic_list.topics (is this a Discourse forum?)")
        entries = [e for t in topics if isinstance(t, dict) for e in [_topic_entry(base, t)] if e]
    return answer.read(entries, title_of(base, query, settings))


def search_page(
    base: str,
    query: str,
    *,
    settings: dict[str, Any] | None = None,
    since: datetime | None,
    cursor: str | None,
    credentials: dict[str, Any] | None,
) -> SitePage:
    """One page of the forum's newest posts matching ``query``; the cursor is the page
    number (from 1)."""
    settings = settings or {}
    headers, interval = _headers(credentials)
    page = int(cursor) if cursor and cursor.isdigit() else 1
    answer = get_json(
        SITE,
        f"{base}/search.json",
        interval=interval,
        headers=headers,
        params={"q": _search_terms(query, settings), "page": page},
    )
    entries, more = _search(answer.data, base)
    kept = [
        e for e in entries if since is None or e.published_at is None or e.published_at >= since
    ]
    passed = len(kept) < len(entries)
    return SitePage(
        kept,
        str(page + 1) if more and entries and not passed else None,
        answer.status,
        answer.wire_bytes,
        answer.elapsed_seconds,
        title_of(base, query, settings),
    )
