"""Community sites as sources: Reddit, Hacker News (Algolia) and Discourse forums.

What the rest of Herald calls, by a source's kind:

- :func:`check_config` validates and normalises a source's ``url``, ``query`` and
  ``settings`` (pure, no network);
- :func:`latest` reads the newest items (one request, newest first): the monitor's read;
- :func:`test_site` is the source test's answer for a site kind;
- :func:`search` reads one page of a search, with a cursor for the next: what research
  jobs page through.

Each site's module documents its endpoints and its rate limit, with where the limit is
written; :mod:`herald.sources.sites.base` paces and retries every request.

Errors::

    HeraldError
    └── SiteError   502: a site's answer could not be had or read after retries
                    (``retryable``, ``status``, ``hint_seconds``)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald.core.errors import InvalidInput
from herald.sources.sites import discourse, hackernews, reddit
from herald.sources.sites.base import (
    SiteEndpoints,
    SiteError,
    SitePage,
    SiteRead,
    endpoints,
    set_endpoints,
    set_pacing,
)

__all__ = [
    "FORMATS",
    "KINDS",
    "SiteEndpoints",
    "SiteError",
    "SitePage",
    "SiteRead",
    "check_config",
    "endpoints",
    "latest",
    "search",
    "set_endpoints",
    "set_pacing",
    "test_site",
]

KINDS = ("reddit", "hackernews", "discourse")
FORMATS = {"reddit": reddit.FORMAT, "hackernews": hackernews.FORMAT, "discourse": discourse.FORMAT}


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"{kind!r} is not a site kind ({', '.join(KINDS)})", field="kind")
    return kind


def check_config(
    kind: str, *, url: str | None, query: str | None, settings: dict[str, Any]
) -> tuple[str | None, str | None, dict[str, Any]]:
    """The source's ``(url, query, settings)`` as stored for its kind; InvalidInput with
    what to change when they cannot work."""
    settings = dict(settings or {})
    match _kind(kind):
        case "reddit":
            return reddit.check_config(url, query, settings)
        case "hackernews":
            return hackernews.check_config(url, query, settings)
        case _:
            return discourse.check_config(url, query, settings)


def latest(
    kind: str,
    *,
    url: str | None,
    query: str | None,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None = None,
) -> SiteRead:
    """The newest items of a source of a site kind: one request (two with Reddit
    credentials and no token yet), newest first, no pagination. Raises SiteError."""
    url, query, settings = check_config(kind, url=url, query=query, settings=settings)
    match kind:
        case "reddit":
            return reddit.latest(query or "", settings, credentials)
        case "hackernews":
            return hackernews.latest(query or "", settings)
        case _:
            return discourse.latest(url or "", query, settings, credentials)


def search(
    site: str,
    query: str,
    *,
    base_url: str | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    credentials: dict[str, Any] | None = None,
) -> SitePage:
    """One page of a site's newest items matching ``query`` (for research): pass the
    page's ``next_cursor`` for the next one; None there means done. ``base_url`` is a
    Discourse forum's URL (for Reddit and Hacker News it replaces the site's own)."""
    _kind(site)
    if site == "discourse":
        base, _ = discourse.normalise_url(base_url, field="sources")
        return discourse.search_page(
            base, query, since=since, cursor=cursor, credentials=credentials
        )
    if site == "reddit":
        return reddit.search_page(
            query, since=since, cursor=cursor, credentials=credentials, base_url=base_url
        )
    return hackernews.search_page(query, since=since, cursor=cursor, base_url=base_url)


def test_site(
    kind: str,
    *,
    url: str | None,
    query: str | None,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None = None,  # noqa: PT028 - not a test: the source test
) -> dict[str, Any]:
    """The source test's answer: whether the site answered, and what it holds. (Not a
    pytest test despite its name: tests call it as ``sites.test_site``.)"""
    answer: dict[str, Any] = {
        "reachable": False,
        "status": None,
        "content_type": None,
        "format": FORMATS.get(kind),
        "title": None,
        "item_count": 0,
        "newest_item_at": None,
        # Sites answer JSON without ETag/Last-Modified: nothing to ask conditionally.
        "conditional_get": None,
        "elapsed_seconds": 0.0,
        "error": None,
    }
    try:
        read = latest(kind, url=url, query=query, settings=settings, credentials=credentials)
    except SiteError as exc:
        answer.update(reachable=exc.status is not None, status=exc.status, error=exc.message)
        return answer
    dated = [e.published_at for e in read.entries if e.published_at is not None]
    answer.update(
        reachable=True,
        status=read.status,
        content_type=read.content_type,
        title=read.title,
        item_count=len(read.entries),
        newest_item_at=max(dated).isoformat() if dated else None,
        elapsed_seconds=round(read.elapsed_seconds, 3),
    )
    return answer
