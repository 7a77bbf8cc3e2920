"""A local Hashnode GraphQL endpoint for the adapter tests.

- One route, ``POST /``, as ``gql.hashnode.com``. Every document and its variables are
  checked against Hashnode's published SDL (``hashnode/schema.graphql``); a request that
  breaks it is recorded as a violation and answered 400 ``GRAPHQL_VALIDATION_FAILED``.
- The operation is then run by a small resolver over plain dicts: the root fields
  ``me``, ``publication(id)`` and ``publishPost(input)``, answering only the fields the
  document selects (no fragments; Herald sends none).
- Auth as Hashnode does it: the personal access token as the whole ``Authorization``
  header (no ``Bearer``). ``me`` and mutations without it answer HTTP 200 with
  ``UNAUTHENTICATED``; publishing in a publication the user may not publish in answers
  ``FORBIDDEN``; bad input ``BAD_USER_INPUT`` — always ``{"errors": [...], "data": null}``.
- ``publishPost`` and ``publication`` take scripted faults (after the auth check).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, SelectionSetNode, parse
from graphql.pyutils import Undefined
from graphql.utilities import value_from_ast_untyped
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakePlatform, json_body
from tests.fakes.specs import graphql_errors

SCHEMA = "hashnode/schema.graphql"
STATUS_CODES = {
    400: "GRAPHQL_VALIDATION_FAILED",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    422: "BAD_USER_INPUT",
}
FAULTED = frozenset({"publishPost", "publication"})  # what Herald calls while publishing


class GqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def object_id() -> str:
    return secrets.token_hex(12)


def connection(items: list[Any], first: int, after: str | None) -> dict[str, Any]:
    """A cursor connection over ``items``; the cursor is the index as a string."""
    start = int(after) + 1 if after else 0
    page = items[start : start + first]
    edges = [{**edge, "cursor": str(start + i)} for i, edge in enumerate(page)]
    more = start + first < len(items)
    return {
        "edges": edges,
        "pageInfo": {"hasNextPage": more, "endCursor": edges[-1]["cursor"] if edges else None},
        "totalDocuments": len(items),
    }


def project(value: Any, selection: SelectionSetNode | None, variables: dict[str, Any]) -> Any:
    """The part of ``value`` the selection asks for; a callable field gets its arguments."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [project(item, selection, variables) for item in value]
    out: dict[str, Any] = {}
    for field in selection.selections:
        assert isinstance(field, FieldNode), "the fake resolves plain fields only"
        name = field.name.value
        arguments = {
            arg.name.value: value_from_ast_untyped(arg.value, variables)
            for arg in field.arguments or ()
        }
        found = value.get(name)
        if callable(found):
            found = found(**{k: v for k, v in arguments.items() if v is not Undefined})
        out[field.alias.value if field.alias else name] = project(
            found, field.selection_set, variables
        )
    return out


class FakeHashnode(FakePlatform):
    name = "hashnode"

    def __init__(self) -> None:
        super().__init__()
        self.token = "hn-pat-" + secrets.token_hex(16)
        self.user = {"id": object_id(), "username": "ada", "name": "Ada Lovelace"}
        self.publication_id = object_id()
        # The user's publications, with their role in each; then one that is not theirs.
        self.publications: dict[str, dict[str, Any]] = {
            self.publication_id: {"title": "Ada's notes", "host": "ada.hashnode.dev"},
        }
        self.roles: dict[str, str] = {self.publication_id: "OWNER"}
        self.team_publication_id = self.add_publication("Team blog", "team.example", "CONTRIBUTOR")
        self.foreign_publication_id = self.add_publication("Someone else", "else.example", None)
        self.posts: list[dict[str, Any]] = []  # in publication order
        self._store_lock = threading.Lock()

    def add_publication(self, title: str, host: str, role: str | None) -> str:
        publication_id = object_id()
        self.publications[publication_id] = {"title": title, "host": host}
        if role is not None:
            self.roles[publication_id] = role
        return publication_id

    def credentials(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "publication_id": self.publication_id,
            "api_url": self.base_url,
        }

    def routes(self) -> list[BaseRoute]:
        return [Route("/", self.graphql, methods=["POST"])]

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        code = STATUS_CODES.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_REQUEST")
        return self.errors(code, message, status, headers)

    @staticmethod
    def errors(
        code: str, message: str, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        body = {"errors": [{"message": message, "extensions": {"code": code}}], "data": None}
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    # -- the endpoint -------------------------------------------------------------------

    async def graphql(self, request: Request) -> Response:
        body = await json_body(request)
        query = body.get("query") if isinstance(body, dict) else None
        variables = (body.get("variables") or {}) if isinstance(body, dict) else {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return self.error(400, "POST body must be JSON with a query string")
        invalid = self.check(graphql_errors(SCHEMA, query, variables), "graphql")
        if invalid is not None:
            return invalid
        try:
            document = parse(query)
        except GraphQLError as exc:
            return self.error(400, exc.message)
        (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        fields = [f for f in operation.selection_set.selections if isinstance(f, FieldNode)]
        names = {field.name.value for field in fields}
        signed_in = request.headers.get("authorization") == self.token
        if not signed_in and names & {"me", "publishPost"}:
            return self.errors("UNAUTHENTICATED", "You must be signed in to do this.")
        fault = self.take_fault() if names & FAULTED else None
        answer = self.fault_response(fault)
        if answer is not None:
            return answer
        try:
            with self._store_lock:
                data = project(self._root(), operation.selection_set, variables)
        except GqlError as exc:
            return self.errors(exc.code, exc.message)
        return await self.finish(fault, JSONResponse({"data": data}))

    # -- resolvers ----------------------------------------------------------------------

    def _root(self) -> dict[str, Callable[..., Any]]:
        return {
            "me": self._me,
            "publication": lambda id=None, host=None: self._publication(id),
            "publishPost": self._publish,
        }

    def _me(self) -> dict[str, Any]:
        def publications(first: int, after: str | None = None, **_: Any) -> dict[str, Any]:
            mine = [
                {"role": role, "node": self._publication(publication_id)}
                for publication_id, role in self.roles.items()
            ]
            return connection(mine, first, after)

        return {**self.user, "publications": publications}

    def _publication(self, publication_id: str | None) -> dict[str, Any] | None:
        publication = self.publications.get(publication_id or "")
        if publication is None:
            return None

        def posts(first: int, after: str | None = None, **_: Any) -> dict[str, Any]:
            newest = [
                {"node": post}
                for post in reversed(self.posts)
                if post["publication_id"] == publication_id
            ]
            return connection(newest, first, after)

        return {
            "id": publication_id,
            "title": publication["title"],
            "url": f"https://{publication['host']}",
            "posts": posts,
        }

    def _publish(self, input: dict[str, Any]) -> dict[str, Any]:
        publication_id = input.get("publicationId")
        publication = self.publications.get(str(publication_id))
        if publication is None:
            raise GqlError("NOT_FOUND", "Publication not found")
        if self.roles.get(str(publication_id)) not in ("OWNER", "EDITOR"):
            raise GqlError("FORBIDDEN", "You are not allowed to publish in this publication.")
        title = input.get("title") or ""
        markdown = input.get("contentMarkdown") or ""
        if not title.strip():
            raise GqlError("BAD_USER_INPUT", "Title is required")
        if not markdown.strip():
            raise GqlError("BAD_USER_INPUT", "Content is required")
        tags = input.get("tags") or []
        if len(tags) > 5:
            raise GqlError("BAD_USER_INPUT", "A post can have at most 5 tags")
        for tag in tags:
            if not tag.get("id") and not (tag.get("slug") and tag.get("name")):
                raise GqlError("BAD_USER_INPUT", "A new tag needs a slug and a name")
            if tag.get("slug") and not re.fullmatch(r"[a-z0-9-]+", tag["slug"]):
                raise GqlError("BAD_USER_INPUT", f"Invalid tag slug: {tag['slug']}")
        post_id = object_id()
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "post"
        slug = f"{slug}-{post_id[-6:]}"
        post = {
            "id": post_id,
            "slug": slug,
            "url": f"https://{publication['host']}/{slug}",
            "title": title,
            "subtitle": input.get("subtitle"),
            "canonicalUrl": input.get("originalArticleURL"),
            "content": {"markdown": markdown, "html": "", "text": ""},
            "tags": [
                {
                    "id": tag.get("id") or object_id(),
                    "slug": tag.get("slug"),
                    "name": tag.get("name"),
                }
                for tag in tags
            ],
            "publishedAt": datetime.now(UTC).isoformat(),
            "publication_id": publication_id,
            "settings": input.get("settings") or {},
        }
        self.posts.append(post)
        return {"post": post}
