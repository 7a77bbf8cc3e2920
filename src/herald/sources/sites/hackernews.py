"""Hacker News, through Algolia's search API (hn.algolia.com/api).

Endpoints: ``/api/v1/search_by_date`` (newest first: what a source monitors and what a
research job pages through) and ``/api/v1/search`` (by relevance), with ``query``,
``tags`` (``story`` by default), ``numericFilters=created_at_i>…`` for ``since``,
``page`` (from 0) and ``hitsPerPage``. An answer is ``{"hits": [...], "page",
"nbPages", "hitsPerPage", "nbHits"}``; a hit has ``objectID``, ``title``, ``url`` (none
for Ask HN), ``author``, ``points``, ``num_comments``, ``created_at_i`` and
``story_text``. Algolia serves at most 1,000 hits of one query, whatever the paging.

Rate limit (the API's own page, hn.algolia.com/api): 10,000 requests per hour per IP.
Herald paces one request per 0.4 s across all its workers (9,000 an hour). No
credentials.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald.core.errors import InvalidInput
from herald.sources.entries import Entry, sanitise
from herald.sources.sites.base import (
    SitePage,
    SiteRead,
    as_int,
    as_str,
    endpoints,
    from_epoch,
    get_json,
    shape_error,
)

SITE = "hackernews"
FORMAT = "algolia-json"
PAGE = 100
INTERVAL = 0.4
TAGS = ("story", "show_hn", "ask_hn", "front_page", "poll", "job")
_SETTINGS = frozenset({"tags", "min_points"})


def check_config(
    url: str | None, query: str | None, settings: dict[str, Any]
) -> tuple[str | None, str | None, dict[str, Any]]:
    """A search of Hacker News: ``query`` words; ``settings.tags`` one of ``TAGS``
    (default ``story``), ``settings.min_points`` to leave out the unnoticed."""
    unknown = set(settings) - _SETTINGS
    if unknown:
        raise InvalidInput(
            f"hackernews sources take the settings {sorted(_SETTINGS)}, not {sorted(unknown)}",
            field="settings",
        )
    if url:
        raise InvalidInput("a hackernews source takes a query, not a URL", field="url")
    text = (query or "").strip()
    if not text:
        raise InvalidInput("a hackernews source needs a query: the words to search", field="query")
    if len(text) > 512:
        raise InvalidInput("a hackernews search is at most 512 characters", field="query")
    tags = settings.get("tags", "story")
    if tags not in TAGS:
        raise InvalidInput(f"settings.tags is one of {list(TAGS)}", field="settings")
    normal: dict[str, Any] = {"tags": tags}
    points = settings.get("min_points")
    if points is not None:
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            raise InvalidInput("settings.min_points is a whole number, 0 or more", field="settings")
        normal["min_points"] = points
    return None, text, normal


def title_of(query: str) -> str:
    return f"Hacker News: {query}"


def _params(
    query: str, settings: dict[str, Any], *, page: int, per_page: int, since: datetime | None
) -> dict[str, str | int]:
    filters = []
    if since is not None:
        filters.append(f"created_at_i>={int(since.timestamp())}")
    if settings.get("min_points"):
        filters.append(f"points>={int(settings['min_points'])}")
    params: dict[str, str | int] = {
        "query": query,
        "tags": str(settings.get("tags", "story")),
        "page": page,
        "hitsPerPage": per_page,
    }
    if filters:
        params["numericFilters"] = ",".join(filters)
    return params


def _entry(hit: dict[str, Any]) -> Entry | None:
    object_id = as_str(hit.get("objectID"))
    if object_id is None:
        return None
    item = f"{endpoints().hackernews_items}/item?id={object_id}"
    html, text = sanitise(as_str(hit.get("story_text")) or "")
    tags = [t for t in hit.get("_tags") or () if isinstance(t, str)]
    return Entry(
        site=SITE,
        title=as_str(hit.get("title")) or as_str(hit.get("story_title")) or "",
        guid=f"hackernews:{object_id}",
        link=as_str(hit.get("url")) or item,
        summary_html=html,
        summary_text=text,
        author=as_str(hit.get("author")),
        published_at=from_epoch(hit.get("created_at_i")),
        score=as_int(hit.get("points")),
        comments=as_int(hit.get("num_comments")),
        comments_url=item,
        extra={"tags": tags} if tags else {},
    )


def _hits(data: Any) -> tuple[list[Entry], int, int]:
    hits = data.get("hits") if isinstance(data, dict) else None
    if not isinstance(hits, list):
        raise shape_error("hackernews", "hits")
    entries = [e for h in hits if isinstance(h, dict) for e in [_entry(h)] if e is not None]
    return entries, as_int(data.get("page")) or 0, as_int(data.get("nbPages")) or 0


def latest(query: str, settings: dict[str, Any], limit: int = 30) -> SiteRead:
    answer = get_json(
        SITE,
        f"{endpoints().hackernews}/api/v1/search_by_date",
        interval=INTERVAL,
        params=_params(query, settings, page=0, per_page=limit, since=None),
    )
    entries, _, _ = _hits(answer.data)
    return answer.read(entries, title_of(query))


def search_page(
    query: str,
    *,
    settings: dict[str, Any] | None = None,
    since: datetime | None,
    cursor: str | None,
    base_url: str | None = None,
) -> SitePage:
    """One page (``PAGE`` hits) of the newest stories matching ``query``; the cursor is
    Algolia's page number. ``since`` is filtered by Algolia itself."""
    page = int(cursor) if cursor and cursor.isdigit() else 0
    answer = get_json(
        SITE,
        f"{(base_url or endpoints().hackernews).rstrip('/')}/api/v1/search_by_date",
        interval=INTERVAL,
        params=_params(query, settings or {"tags": "story"}, page=page, per_page=PAGE, since=since),
    )
    entries, page, pages = _hits(answer.data)
    following = str(page + 1) if entries and page + 1 < pages else None
    return SitePage(
        entries,
        following,
        answer.status,
        answer.wire_bytes,
        answer.elapsed_seconds,
        title_of(query),
    )
