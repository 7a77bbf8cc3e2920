"""A local Reddit: the listing JSON of a subreddit's new posts and of a search, and the
app-only OAuth flow.

- ``GET /r/{sub}/new.json``, ``GET /search.json`` and ``GET /r/{sub}/search.json``
  (``q``, ``sort=new``, ``restrict_sr=on``), as www.reddit.com serves them; the same
  paths without ``.json`` as oauth.reddit.com serves them, which need
  ``Authorization: bearer <token>`` (401 without).
- ``POST /api/v1/access_token`` with HTTP basic auth (the app's id and secret) and
  ``grant_type=client_credentials`` → ``{"access_token", "token_type": "bearer",
  "expires_in", "scope"}``; 401 for a wrong secret.
- A listing: ``{"kind": "Listing", "data": {"after", "before", "dist", "children":
  [{"kind": "t3", "data": {...}}]}}``, newest first; ``limit`` (default 25, at most 100)
  and ``after`` (the last fullname of the previous page) page through it. Without
  ``raw_json=1`` the ``selftext_html`` is HTML-escaped once more, as Reddit's legacy
  encoding does.
- Every answer carries ``X-Ratelimit-Used/Remaining/Reset``; once ``remaining`` reaches
  0 the fake answers 429 until ``refill()``. Errors are Reddit's
  ``{"message": ..., "error": status}``; an unknown subreddit is 404.
- A request without a User-Agent of its own (``python-httpx``...) is a violation.
"""

from __future__ import annotations

import base64
import html
import secrets
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, endpoint
from tests.fakes.sites import SiteFake, times, words_match

DEFAULT_LIMIT, MAX_LIMIT = 25, 100


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class FakeReddit(SiteFake):
    name = "reddit"

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict[str, Any]] = []  # newest first after each add
        self.client_id = "app-" + secrets.token_hex(4)
        self.client_secret = secrets.token_hex(12)
        self.tokens: set[str] = set()
        self.remaining = 1000
        self.used = 0
        self._ids = iter(range(100_000, 10**9))

    def credentials(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    def refill(self, remaining: int = 1000) -> None:
        self.remaining = remaining

    # -- data --------------------------------------------------------------------------------

    def add_post(
        self,
        subreddit: str,
        title: str,
        *,
        created: datetime,
        selftext_html: str | None = None,
        url: str | None = None,
        score: int = 1,
        comments: int = 0,
        author: str = "ada",
    ) -> dict[str, Any]:
        post_id = _base36(next(self._ids))
        permalink = f"/r/{subreddit}/comments/{post_id}/{title.lower().replace(' ', '_')[:40]}/"
        post = {
            "id": post_id,
            "name": f"t3_{post_id}",
            "title": title,
            "subreddit": subreddit,
            "subreddit_name_prefixed": f"r/{subreddit}",
            "permalink": permalink,
            "url": url or f"https://www.reddit.com{permalink}",
            "is_self": url is None,
            "selftext_html": selftext_html,
            "selftext": html.unescape(selftext_html or ""),
            "author": author,
            "created_utc": created.timestamp(),
            "score": score,
            "num_comments": comments,
            "over_18": False,
            "edited": False,
            "domain": f"self.{subreddit}" if url is None else url.split("/")[2],
        }
        self.posts.append(post)
        self.posts.sort(key=lambda p: p["created_utc"], reverse=True)
        return post

    def add_posts(self, subreddit: str, n: int, *, word: str = "python", **kwargs: Any) -> None:
        for i, created in enumerate(times(n)):
            self.add_post(
                subreddit,
                f"{word.title()} post {i}",
                created=created,
                selftext_html=f"<p>About {word}, part {i} &amp; more</p>",
                score=n - i,
                comments=i % 5,
                **kwargs,
            )

    # -- the API -----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/access_token", self.access_token, methods=["POST"]),
            Route("/r/{sub}/new.json", self.new, methods=["GET"]),
            Route("/r/{sub}/new", self.new, methods=["GET"]),
            Route("/r/{sub}/search.json", self.search, methods=["GET"]),
            Route("/r/{sub}/search", self.search, methods=["GET"]),
            Route("/search.json", self.search, methods=["GET"]),
            Route("/search", self.search, methods=["GET"]),
        ]

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return JSONResponse(
            {"message": message or HTTPStatus(status).phrase, "error": status},
            status_code=status,
            headers={**self._limits(), **dict(headers or {})},
        )

    def _limits(self) -> dict[str, str]:
        return {
            "X-Ratelimit-Used": str(self.used),
            "X-Ratelimit-Remaining": str(max(self.remaining, 0)),
            "X-Ratelimit-Reset": "42",
        }

    async def refused(self, request: Request) -> Response | None:
        agent = request.headers.get("user-agent", "")
        wrong = self.check(
            [] if agent and not agent.startswith("python-") else [f"User-Agent {agent!r}"],
            "headers",
        )
        if wrong is not None:
            return wrong
        if not request.url.path.endswith(".json") and request.url.path != "/api/v1/access_token":
            token = request.headers.get("authorization", "")
            if not token.lower().startswith("bearer ") or token[7:] not in self.tokens:
                return self.error(401, "Unauthorized")
        if self.remaining <= 0:
            return self.error(429, "Too Many Requests", {"Retry-After": "42"})
        self.remaining -= 1
        self.used += 1
        return None

    @endpoint()
    async def access_token(self, request: Request, fault: FakeFault | None) -> Response:
        header = request.headers.get("authorization", "")
        try:
            pair = base64.b64decode(header.removeprefix("Basic ")).decode()
        except ValueError:
            pair = ""
        form = await request.form()
        if pair != f"{self.client_id}:{self.client_secret}":
            return self.error(401, "Unauthorized")
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return await self.answer(
            fault,
            {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"},
        )

    @endpoint()
    async def new(self, request: Request, fault: FakeFault | None) -> Response:
        sub = request.path_params["sub"].lower()
        subs = set(sub.split("+"))
        if not subs & {p["subreddit"].lower() for p in self.posts}:
            return self.error(404, "Not Found")
        posts = [p for p in self.posts if p["subreddit"].lower() in subs]
        return await self._listing(request, fault, posts)

    @endpoint()
    async def search(self, request: Request, fault: FakeFault | None) -> Response:
        params = request.query_params
        if params.get("sort", "relevance") != "new":
            self.check(["sort is not 'new'"], "search")
        query = params.get("q", "")
        sub = request.path_params.get("sub")
        restrict = sub is not None and params.get("restrict_sr") in ("on", "1", "true")
        posts = [
            p
            for p in self.posts
            if words_match(query, p["title"], p["selftext"])
            and (not restrict or p["subreddit"].lower() == str(sub).lower())
        ]
        return await self._listing(request, fault, posts)

    async def _listing(
        self, request: Request, fault: FakeFault | None, posts: list[dict[str, Any]]
    ) -> Response:
        limit = min(max(self.int_param(request, "limit", DEFAULT_LIMIT), 1), MAX_LIMIT)
        after = request.query_params.get("after")
        start = 0
        if after:
            names = [p["name"] for p in posts]
            start = names.index(after) + 1 if after in names else len(posts)
        page = posts[start : start + limit]
        raw = request.query_params.get("raw_json") == "1"
        children = [
            {
                "kind": "t3",
                "data": {
                    **p,
                    "selftext_html": p["selftext_html"]
                    if raw or p["selftext_html"] is None
                    else html.escape(p["selftext_html"]),
                },
            }
            for p in page
        ]
        more = start + limit < len(posts)
        body = {
            "kind": "Listing",
            "data": {
                "after": page[-1]["name"] if more and page else None,
                "before": None,
                "dist": len(children),
                "modhash": "",
                "geo_filter": "",
                "children": children,
            },
        }
        return await self.answer(fault, body, self._limits())
