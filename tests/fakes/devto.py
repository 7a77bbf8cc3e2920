"""A local Forem (dev.to) for the adapter tests: the three endpoints Herald uses.

- ``GET /api/users/me``, ``POST /api/articles``, ``GET /api/articles/me/all``.
- Auth as Forem does it: an ``api-key`` header naming a known key, else 401
  ``{"error": "unauthorized", "status": 401}``. Requests without
  ``Accept: application/vnd.forem.api-v1+json`` are recorded as violations (Forem would
  route them to the retired v0 API).
- Every create body is checked against Forem's published OpenAPI extract
  (``forem/api_v1.articles-extract.json``), then against Forem's own model rules: a
  title of at most 128 characters, a body, at most 4 tags of ASCII letters and digits
  (30 at most), a unique ``canonical_url``, a body unique per title. Refusals answer 422
  in Forem's shape.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, FakePlatform, endpoint, json_body

ACCEPT = "application/vnd.forem.api-v1+json"
SPEC = "forem/api_v1.articles-extract.json"


class FakeForem(FakePlatform):
    name = "forem"

    def __init__(self) -> None:
        super().__init__()
        self.api_key = "devto-" + secrets.token_hex(12)
        self.user = {"type_of": "user", "id": 4242, "username": "ada", "name": "Ada Lovelace"}
        self.articles: list[dict[str, Any]] = []  # in creation order
        self._ids = iter(range(1001, 10**9))
        self._store_lock = threading.Lock()

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "base_url": self.base_url}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/users/me", self.me, methods=["GET"]),
            Route("/api/articles", self.create, methods=["POST"]),
            Route("/api/articles/me/all", self.mine, methods=["GET"]),
        ]

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return JSONResponse(
            {"error": message, "status": status}, status_code=status, headers=dict(headers or {})
        )

    # -- checks -------------------------------------------------------------------------

    async def refused(self, request: Request) -> Response | None:
        """Forem's own checks on every request: the v1 Accept header, then the key."""
        accept = request.headers.get("accept", "")
        wrong = self.check(
            [] if ACCEPT in accept else [f"Accept is {accept!r}, not {ACCEPT}"], "headers"
        )
        if wrong is not None:
            return wrong
        if request.headers.get("api-key") != self.api_key:
            return self.error(401, "unauthorized")
        return None

    def _article_errors(self, article: dict[str, Any]) -> list[str]:
        """Forem's model validations, as ``errors_as_sentence`` phrases them."""
        errors: list[str] = []
        title = article.get("title")
        if not isinstance(title, str) or not title.strip():
            errors.append("Title can't be blank")
        elif len(title) > 128:
            errors.append("Title is too long (maximum is 128 characters)")
        body = article.get("body_markdown")
        if not isinstance(body, str) or not body.strip():
            errors.append("Body markdown can't be blank")
        tags = article.get("tags", "")
        names = [t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str) else []
        if not isinstance(tags, str):
            errors.append("Tags must be a comma-separated string")
        if len(names) > 4:
            errors.append("Tag list exceed the maximum of 4 tags")
        for name in names:
            if len(name) > 30:
                errors.append(f"Tag {name} is too long (maximum is 30 characters)")
            if not re.fullmatch(r"[a-z0-9]+", name, re.IGNORECASE):
                errors.append(f"Tag {name} contains non-ASCII characters")
        canonical = article.get("canonical_url")
        if canonical:
            if not re.match(r"https?://[^\s/]+\.[^\s]+$", str(canonical)):
                errors.append("Canonical url is not a valid URL")
            elif any(a["canonical_url"] == canonical for a in self.articles):
                errors.append("Canonical url has already been taken")
        if any(a["title"] == title and a["body_markdown"] == body for a in self.articles):
            errors.append("Body markdown has already been taken")
        return errors

    # -- endpoints ----------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        return await self.refused(request) or JSONResponse(self.user)

    @endpoint()
    async def create(self, request: Request, fault: FakeFault | None) -> Response:
        body = await json_body(request)
        if (invalid := self.openapi_check(SPEC, "POST", "/api/articles", body)) is not None:
            return invalid
        article = body.get("article") if isinstance(body, dict) else None
        if not isinstance(article, dict):
            return self.error(422, "article param must be a JSON object")
        with self._store_lock:
            errors = self._article_errors(article)
            if errors:
                return self.error(422, ", ".join(errors))
            stored = self._store(article)
        return await self.finish(fault, JSONResponse(stored, status_code=201))

    @endpoint()
    async def mine(self, request: Request, fault: FakeFault | None) -> Response:
        per_page = int(request.query_params.get("per_page", "30"))
        page = int(request.query_params.get("page", "1"))
        # Drafts first, newest first; then published, newest first (as Forem orders them).
        newest = self.articles[::-1]
        ordered = [a for a in newest if a["published_at"] is None] + [
            a for a in newest if a["published_at"] is not None
        ]
        chosen = ordered[(page - 1) * per_page : page * per_page]
        return await self.finish(fault, JSONResponse(chosen))

    def _store(self, article: dict[str, Any]) -> dict[str, Any]:
        article_id = next(self._ids)
        slug = re.sub(r"[^a-z0-9]+", "-", article["title"].lower()).strip("-") or "post"
        path = f"/{self.user['username']}/{slug}-{article_id:x}"
        url = f"https://forem.test{path}"
        published = bool(article.get("published", False))
        tags = [t.strip().lower() for t in article.get("tags", "").split(",") if t.strip()]
        stored = {
            "type_of": "article",
            "id": article_id,
            "title": article["title"],
            "description": article.get("description") or article["body_markdown"][:100],
            "body_markdown": article["body_markdown"],
            "published": published,
            "published_at": datetime.now(UTC).isoformat() if published else None,
            "slug": f"{slug}-{article_id:x}",
            "path": path,
            "url": url,
            # Forem points an article without one at itself.
            "canonical_url": article.get("canonical_url") or url,
            "tag_list": tags,
            "tags": ", ".join(tags),
            "series": article.get("series"),
            "organization_id": article.get("organization_id"),
            "user": self.user,
        }
        self.articles.append(stored)
        return stored
