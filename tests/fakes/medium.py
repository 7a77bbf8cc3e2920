"""A local Medium for the adapter tests: the API Herald uses and the public RSS feed.

Medium publishes no machine-readable spec, so the request shape below is written from
its API documentation (github.com/Medium/medium-api-docs): ``POST_SCHEMA`` lists the
documented fields of "Creating a post" and nothing else; a body that breaks it is
recorded as a violation and answered 400, as are more than three tags or a tag over 25
characters, which Medium would silently drop.

- ``GET /v1/me``: the user in a ``data`` envelope. An identity read: it takes no faults
  and is left out of ``posts_requests`` (see the tests: the author id it gives is cached).
- ``POST /v1/users/{authorId}/posts``: ``Authorization: Bearer <token>``, the author id
  must be the token's user (else 403). Answers 201 ``{"data": post}``.
- ``GET /feed/@{username}``: RSS 2.0 of the ten newest public posts, no auth.
- Errors: ``{"errors": [{"message", "code"}]}``.
"""

from __future__ import annotations

import email.utils
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

import jsonschema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, FakePlatform, endpoint, json_body

LICENSES = [
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
POST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "contentFormat", "content"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string"},
        "contentFormat": {"enum": ["html", "markdown"]},
        "content": {"type": "string", "minLength": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 25}, "maxItems": 3},
        "canonicalUrl": {"type": "string"},
        "publishStatus": {"enum": ["public", "draft", "unlisted"]},
        "license": {"enum": LICENSES},
        "notifyFollowers": {"type": "boolean"},
    },
}
FEED_SIZE = 10


class FakeMedium(FakePlatform):
    name = "medium"

    def __init__(self) -> None:
        super().__init__()
        self.token = "2" + secrets.token_hex(32)  # integration tokens are hex strings
        self.user = {
            "id": "1" + secrets.token_hex(32),
            "username": "ada",
            "name": "Ada Lovelace",
            "url": "https://medium.com/@ada",
            "imageUrl": "https://cdn-images-1.medium.com/fit/c/400/400/ada.png",
        }
        self.posts: list[dict[str, Any]] = []  # in creation order
        self._store_lock = threading.Lock()
        self._validator = jsonschema.Draft7Validator(POST_SCHEMA)

    def credentials(self) -> dict[str, Any]:
        return {"token": self.token, "api_url": self.base_url}

    def settings(self) -> dict[str, Any]:
        return {"feed_url": f"{self.base_url}/feed"}

    def posts_requests(self) -> int:
        """Requests that create or look up posts: everything but ``GET /v1/me``."""
        return sum(1 for r in self.requests if r.path != "/v1/me")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/me", self.me, methods=["GET"]),
            Route("/v1/users/{author_id}/posts", self.create, methods=["POST"]),
            Route("/feed/@{username}", self.feed, methods=["GET"]),
        ]

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        code = {400: 6000, 401: 6003, 403: 6027, 404: 6004}.get(status, 6000)
        return JSONResponse(
            {"errors": [{"message": message, "code": code}]},
            status_code=status,
            headers=dict(headers or {}),
        )

    async def refused(self, request: Request) -> Response | None:
        """401 without the token; 403 for a path naming another author."""
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.error(401, "Token was invalid.")
        author_id = request.path_params.get("author_id")
        if author_id is not None and author_id != self.user["id"]:
            return self.error(403, "You do not have permission to publish as this user.")
        return None

    # -- endpoints ----------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        if (refused := await self.refused(request)) is not None:
            return refused
        return JSONResponse({"data": self.user})

    @endpoint()
    async def create(self, request: Request, fault: FakeFault | None) -> Response:
        body = await json_body(request)
        problems = [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self._validator.iter_errors(body)
        ]
        if not request.headers.get("content-type", "").startswith("application/json"):
            problems.append("Content-Type must be application/json")
        invalid = self.check(problems, "POST /v1/users/{authorId}/posts")
        if invalid is not None:
            return invalid
        with self._store_lock:
            post = self._store(body)
        return await self.finish(fault, JSONResponse({"data": post}, status_code=201))

    @endpoint(auth=False)
    async def feed(self, request: Request, fault: FakeFault | None) -> Response:
        if request.path_params["username"] != self.user["username"]:
            return Response("Not found", status_code=404)
        public = [p for p in reversed(self.posts) if p["publishStatus"] == "public"]
        items = "".join(
            "<item>"
            f"<title>{escape(post['title'])}</title>"
            f"<link>{escape(post['url'])}?source=rss-{self.user['id'][:12]}------2</link>"
            f'<guid isPermaLink="false">https://medium.com/p/{post["id"]}</guid>'
            + "".join(f"<category>{escape(tag)}</category>" for tag in post["tags"])
            + "<dc:creator><![CDATA[Ada Lovelace]]></dc:creator>"
            f"<pubDate>{email.utils.formatdate(post['publishedAt'] / 1000, usegmt=True)}</pubDate>"
            f"<content:encoded><![CDATA[{post['content']}]]></content:encoded>"
            "</item>"
            for post in public[:FEED_SIZE]
        )
        rss = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            f"<channel><title>Stories by Ada Lovelace on Medium</title>"
            f"<link>https://medium.com/@{self.user['username']}?source=rss</link>"
            f"{items}</channel></rss>"
        )
        return await self.finish(fault, Response(rss, media_type="text/xml; charset=UTF-8"))

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        post_id = secrets.token_hex(6)
        slug = "-".join(body["title"].lower().split())[:60]
        status = body.get("publishStatus", "public")
        post: dict[str, Any] = {
            "id": post_id,
            "title": body["title"],
            "authorId": self.user["id"],
            "tags": body.get("tags", []),
            "url": f"https://medium.com/@{self.user['username']}/{slug}-{post_id}",
            "publishStatus": status,
            "license": body.get("license", "all-rights-reserved"),
            "licenseUrl": "https://policy.medium.com/medium-terms-of-service-9db0094a1e0f",
        }
        if body.get("canonicalUrl"):
            post["canonicalUrl"] = body["canonicalUrl"]
        if status != "draft":
            post["publishedAt"] = int(time.time() * 1000)
        self.posts.append(post)
        # Kept for the tests and the feed, not part of Medium's answer.
        answer = dict(post)
        post.update(
            content=body["content"],
            contentFormat=body["contentFormat"],
            notifyFollowers=body.get("notifyFollowers"),
        )
        post.setdefault("publishedAt", None)
        return answer
