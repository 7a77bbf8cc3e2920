"""A local Discourse forum: its search, its latest topics and a category's.

- ``GET /search.json?q=…&page=N`` (pages from 1, ``PER_PAGE`` posts each; ``order:latest``
  sorts newest first, ``#slug`` or ``category:id`` limits to a category) →
  ``{"posts", "topics", "users", "categories", "tags", "groups",
  "grouped_search_result": {"more_full_page_results", "post_ids", "term", ...}}``; each
  post names its topic (``topic_id``) and carries a plain-text ``blurb``.
- ``GET /latest.json`` and ``GET /c/{slug}/{id}.json`` (or ``/c/{id}.json``) →
  ``{"users", "topic_list": {"can_create_topic", "more_topics_url", "per_page",
  "topics"}}``, most recently bumped first, ``TOPICS_PER_PAGE`` a page (``?page=N`` from 0).
- ``private``: every request needs ``Api-Key`` and ``Api-Username`` headers naming a
  known key, else 403 ``{"errors": [...], "error_type": "invalid_access"}``.
- A 429 answers as Discourse's rate limiter does: ``{"errors": [...], "error_type":
  "rate_limit", "extras": {"wait_seconds": N, "time_left": "N seconds"}}`` with
  ``Retry-After: N``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, endpoint
from tests.fakes.sites import SiteFake, times, words_match

PER_PAGE = 50
TOPICS_PER_PAGE = 30


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeDiscourse(SiteFake):
    name = "discourse"

    def __init__(self, *, private: bool = False) -> None:
        super().__init__()
        self.private = private
        self.api_key = secrets.token_hex(16)
        self.api_username = "system"
        self.categories = {7: "dev", 9: "support"}
        self.topics: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self._topic_ids = iter(range(3000, 10**9))
        self._post_ids = iter(range(90_000, 10**9))

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "api_username": self.api_username}

    # -- data --------------------------------------------------------------------------------

    def add_topic(
        self,
        title: str,
        *,
        created: datetime,
        body: str = "",
        category_id: int = 7,
        likes: int = 0,
        replies: int = 0,
        author: str = "sam",
    ) -> dict[str, Any]:
        topic_id = next(self._topic_ids)
        topic = {
            "id": topic_id,
            "title": title,
            "fancy_title": title.replace("&", "&amp;"),
            "slug": re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"),
            "posts_count": replies + 1,
            "reply_count": replies,
            "highest_post_number": replies + 1,
            "created_at": _iso(created),
            "last_posted_at": _iso(created),
            "bumped": True,
            "bumped_at": _iso(created),
            "archetype": "regular",
            "pinned": False,
            "visible": True,
            "closed": False,
            "archived": False,
            "views": 10 * (likes + 1),
            "like_count": likes,
            "category_id": category_id,
            "tags": [],
            "last_poster_username": author,
            "excerpt": body[:200] or None,
        }
        self.topics.append(topic)
        self.posts.append(
            {
                "id": next(self._post_ids),
                "name": author.title(),
                "username": author,
                "avatar_template": f"/user_avatar/forum/{author}/{{size}}/1.png",
                "created_at": _iso(created),
                "like_count": likes,
                "blurb": body[:200],
                "post_number": 1,
                "topic_id": topic_id,
                "_raw": body,
            }
        )
        return topic

    def add_topics(self, n: int, *, word: str = "herald", category_id: int = 7) -> None:
        for i, created in enumerate(times(n)):
            self.add_topic(
                f"{word.title()} question {i}",
                created=created,
                body=f"How do I use {word} for thing {i} & friends?",
                category_id=category_id,
                likes=(i * 3) % 13,
                replies=i % 4,
            )

    # -- the API -----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/search.json", self.search, methods=["GET"]),
            Route("/latest.json", self.latest, methods=["GET"]),
            Route("/c/{slug}/{category_id:int}.json", self.category, methods=["GET"]),
            Route("/c/{category_id:int}.json", self.category, methods=["GET"]),
        ]

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        if status == 429:
            wait = int(dict(headers or {}).get("Retry-After", "10"))
            body: dict[str, Any] = {
                "errors": [
                    "You\u2019ve performed this action too many times. "
                    f"Please wait {wait} seconds before trying again."
                ],
                "error_type": "rate_limit",
                "extras": {"wait_seconds": wait, "time_left": f"{wait} seconds"},
            }
        else:
            body = {"errors": [message or "error"], "error_type": "error"}
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    async def refused(self, request: Request) -> Response | None:
        if not self.private:
            return None
        if (
            request.headers.get("api-key") != self.api_key
            or request.headers.get("api-username") != self.api_username
        ):
            return JSONResponse(
                {
                    "errors": ["You are not permitted to view the requested resource."],
                    "error_type": "invalid_access",
                },
                status_code=403,
            )
        return None

    def _category_of(self, term: str) -> int | None:
        found = re.search(r"(?:#([\w-]+)|category:(\d+))", term)
        if found is None:
            return None
        if found.group(2):
            return int(found.group(2))
        by_slug = {slug: cid for cid, slug in self.categories.items()}
        return by_slug.get(found.group(1), -1)

    @endpoint()
    async def search(self, request: Request, fault: FakeFault | None) -> Response:
        term = request.query_params.get("q", "")
        page = max(self.int_param(request, "page", 1), 1)
        category = self._category_of(term)
        topics = {t["id"]: t for t in self.topics}
        matched = [
            p
            for p in self.posts
            if words_match(term, topics[p["topic_id"]]["title"], p["_raw"])
            and (category is None or topics[p["topic_id"]]["category_id"] == category)
        ]
        if "order:latest" in term:
            matched.sort(key=lambda p: p["created_at"], reverse=True)
        else:
            matched.sort(key=lambda p: p["like_count"], reverse=True)
        shown = matched[(page - 1) * PER_PAGE : page * PER_PAGE]
        posts = [{k: v for k, v in p.items() if not k.startswith("_")} for p in shown]
        topic_ids = dict.fromkeys(p["topic_id"] for p in shown)
        body = {
            "posts": posts,
            "topics": [topics[t] for t in topic_ids],
            "users": [],
            "categories": [],
            "tags": [],
            "groups": [],
            "grouped_search_result": {
                "more_posts": None,
                "more_users": None,
                "more_categories": None,
                "term": term,
                "search_log_id": 1,
                "more_full_page_results": page * PER_PAGE < len(matched) or None,
                "can_create_topic": False,
                "error": None,
                "extra": {},
                "post_ids": [p["id"] for p in posts],
                "user_ids": [],
                "category_ids": [],
                "tag_ids": [],
                "group_ids": [],
            },
        }
        return await self.answer(fault, body)

    @endpoint()
    async def latest(self, request: Request, fault: FakeFault | None) -> Response:
        return await self._topic_list(request, fault, self.topics, "/latest")

    @endpoint()
    async def category(self, request: Request, fault: FakeFault | None) -> Response:
        category_id = request.path_params["category_id"]
        if category_id not in self.categories:
            return JSONResponse(
                {
                    "errors": ["The requested URL or resource could not be found."],
                    "error_type": "not_found",
                },
                status_code=404,
            )
        slug = self.categories[category_id]
        topics = [t for t in self.topics if t["category_id"] == category_id]
        return await self._topic_list(request, fault, topics, f"/c/{slug}/{category_id}/l/latest")

    async def _topic_list(
        self, request: Request, fault: FakeFault | None, topics: list[dict[str, Any]], path: str
    ) -> Response:
        page = max(self.int_param(request, "page", 0), 0)
        ordered = sorted(topics, key=lambda t: t["bumped_at"], reverse=True)
        shown = ordered[page * TOPICS_PER_PAGE : (page + 1) * TOPICS_PER_PAGE]
        more = (page + 1) * TOPICS_PER_PAGE < len(ordered)
        topic_list: dict[str, Any] = {
            "can_create_topic": False,
            "per_page": TOPICS_PER_PAGE,
            "topics": shown,
        }
        if more:
            topic_list["more_topics_url"] = f"{path}?page={page + 1}"
        return await self.answer(
            fault, {"users": [], "primary_groups": [], "topic_list": topic_list}
        )
