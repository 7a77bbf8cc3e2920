"""A local Hacker News search (Algolia's HN API, hn.algolia.com/api).

- ``GET /api/v1/search_by_date`` (newest first) and ``GET /api/v1/search`` (by
  points, standing in for relevance), with ``query``, ``tags`` (``story``,
  ``show_hn``, ``ask_hn``...: every listed tag must be on the hit), ``numericFilters``
  (``created_at_i`` and ``points`` with ``>``, ``>=``, ``<``, ``<=``, ``=``, comma-joined),
  ``page`` (from 0) and ``hitsPerPage`` (default 20, at most 1,000).
- The answer: ``{"hits", "nbHits", "page", "nbPages", "hitsPerPage",
  "exhaustiveNbHits", "query", "params", "processingTimeMS"}``; a hit has
  ``objectID``, ``title``, ``url`` (None for Ask HN), ``author``, ``points``,
  ``num_comments``, ``created_at``, ``created_at_i``, ``story_text`` and ``_tags``.
  At most 1,000 hits of a query can be paged to, as Algolia's ``paginationLimitedTo``.
- Errors as Algolia words them: ``{"message": ..., "status": status}``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, endpoint
from tests.fakes.sites import SiteFake, times, words_match

DEFAULT_PER_PAGE, MAX_PER_PAGE, PAGINATION_LIMIT = 20, 1000, 1000
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_FILTER = re.compile(r"^\s*(created_at_i|points|num_comments)\s*(>=|<=|>|<|=)\s*(-?\d+)\s*$")


class FakeHackerNews(SiteFake):
    name = "hackernews"

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[dict[str, Any]] = []
        self._ids = iter(range(40_000_000, 10**9))

    def add_story(
        self,
        title: str,
        *,
        created: datetime,
        url: str | None = None,
        text: str | None = None,
        points: int = 1,
        comments: int = 0,
        author: str = "pg",
        tags: tuple[str, ...] = ("story",),
    ) -> dict[str, Any]:
        object_id = str(next(self._ids))
        hit = {
            "objectID": object_id,
            "title": title,
            "url": url,
            "author": author,
            "points": points,
            "num_comments": comments,
            "story_text": text,
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "created_at_i": int(created.timestamp()),
            "_tags": [*tags, f"author_{author}", f"story_{object_id}"],
            "story_id": int(object_id),
        }
        self.hits.append(hit)
        return hit

    def add_stories(self, n: int, *, word: str = "rust") -> None:
        for i, created in enumerate(times(n)):
            self.add_story(
                f"{word.title()} story {i}",
                created=created,
                url=f"https://example.com/{word}/{i}" if i % 3 else None,
                text=None if i % 3 else f"<p>Ask HN: {word} {i}?</p>",
                points=(i * 7) % 50,
                comments=i % 11,
            )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/search_by_date", self.by_date, methods=["GET"]),
            Route("/api/v1/search", self.by_relevance, methods=["GET"]),
        ]

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return JSONResponse(
            {"message": message or HTTPStatus(status).phrase, "status": status},
            status_code=status,
            headers=dict(headers or {}),
        )

    @endpoint(auth=False)
    async def by_date(self, request: Request, fault: FakeFault | None) -> Response:
        return await self._search(request, fault, key="created_at_i")

    @endpoint(auth=False)
    async def by_relevance(self, request: Request, fault: FakeFault | None) -> Response:
        return await self._search(request, fault, key="points")

    async def _search(self, request: Request, fault: FakeFault | None, *, key: str) -> Response:
        params = request.query_params
        query = params.get("query", "")
        tags = [t for t in params.get("tags", "").split(",") if t]
        filters = []
        for part in filter(None, params.get("numericFilters", "").split(",")):
            found = _FILTER.match(part)
            if found is None:
                return self.error(400, f"invalid numericFilters: {part}")
            filters.append((found.group(1), _OPS[found.group(2)], int(found.group(3))))
        matched = sorted(
            (
                h
                for h in self.hits
                if words_match(query, h["title"], h["url"], h["story_text"])
                and all(t in h["_tags"] for t in tags)
                and all(op(h[name] or 0, value) for name, op, value in filters)
            ),
            key=lambda h: h[key],
            reverse=True,
        )
        per_page = min(
            max(self.int_param(request, "hitsPerPage", DEFAULT_PER_PAGE), 1), MAX_PER_PAGE
        )
        page = max(self.int_param(request, "page", 0), 0)
        reachable = matched[:PAGINATION_LIMIT]
        pages = -(-len(reachable) // per_page)
        body = {
            "hits": reachable[page * per_page : (page + 1) * per_page],
            "nbHits": len(matched),
            "page": page,
            "nbPages": pages,
            "hitsPerPage": per_page,
            "exhaustiveNbHits": True,
            "query": query,
            "params": str(request.url.query),
            "processingTimeMS": 1,
        }
        return await self.answer(fault, body)
