"""A local Ghost Admin API (``/ghost/api/admin``): posts (add, browse with a filter),
image uploads and the public ``/site/`` read.

- Auth exactly as Ghost checks an Admin API key (``services/auth/api-key/admin.js``):
  ``Authorization: Ghost <JWT>``; the JWT's ``kid`` header names a known key, the HS256
  signature verifies with that key's *hex-decoded* secret, ``aud`` matches ``/admin/``,
  the token is not expired and at most five minutes old (Ghost's ``maxAge``), and its
  ``exp`` lies at most five minutes after ``iat`` (Ghost's documented lifetime). Errors
  as Ghost answers them: 400 ``BadRequestError`` for a token that does not decode or has
  no ``kid``, 401 ``UnauthorizedError`` ("Unknown Admin API Key", "Invalid token: …"),
  403 ``NoPermissionError`` without an Authorization header.
- Bodies are validated with Ghost's own JSON Schemas (``posts.add``, ``images.upload``
  through ``tests/fakes/specs.py``); a violation is a 422 ``ValidationError``, in
  ``{"errors": [{"message", "context", "type"}]}``. ``html`` is only read with
  ``?source=html``, as Ghost does (without it the post is saved empty).
- Tags are found by id, slug or name, else created; a name starting with ``#`` makes an
  internal tag whose slug is ``hash-…``. Browsing lists published posts only unless the
  filter names statuses (Ghost's default filter).
- Every route but ``/site/`` takes the shared fault queue, after the auth check.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, FakePlatform, endpoint, json_body
from tests.fakes.specs import ghost_errors

ERROR_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "NoPermissionError",
    404: "NotFoundError",
    413: "RequestEntityTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "ValidationError",
    429: "TooManyRequestsError",
}
MAX_AGE = 5 * 60
IMAGE_TYPES = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "image/svg+xml": (),
    "image/x-icon": (),
}
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".svgz", ".ico"})


def tag_slug(name: str) -> str:
    """Ghost's slug for a tag name: internal tags (``#name``) get ``hash-``."""
    prefix = "hash-" if name.startswith("#") else ""
    text = re.sub(r"[^\w\s-]", "", name.removeprefix("#").lower())
    return prefix + re.sub(r"[\s_-]+", "-", text).strip("-")


def _split_filter(text: str) -> list[str]:
    """``a:b+c:[d,e]`` → clauses, splitting on ``+`` outside brackets."""
    clauses, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "+" and depth == 0:
            clauses.append(current)
            current = ""
        else:
            current += char
    return [*clauses, current]


class FakeGhost(FakePlatform):
    name = "ghost"

    def __init__(self) -> None:
        super().__init__()
        self.key_id = secrets.token_hex(12)  # Ghost ids are 24 hex digits
        self.secret = secrets.token_hex(32)
        self.keys = {self.key_id: self.secret}
        self.posts: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}  # by id
        self.images: list[dict[str, Any]] = []
        self.title = "The Herald Test Blog"

    # -- control surface -----------------------------------------------------------------

    @property
    def admin_api_key(self) -> str:
        return f"{self.key_id}:{self.secret}"

    def credentials(self) -> dict[str, Any]:
        return {"url": self.base_url, "admin_api_key": self.admin_api_key}

    def images_on_posts(self) -> list[dict[str, Any]]:
        by_url = {image["url"]: image for image in self.images}
        return [
            {"alt": post["feature_image_alt"], "size": by_url[post["feature_image"]]["size"]}
            for post in self.posts.values()
            if post["feature_image"] in by_url
        ]

    # -- helpers -------------------------------------------------------------------------

    def ghost_error(
        self,
        status: int,
        message: str,
        context: str | None = None,
        headers: Any = None,
    ) -> Response:
        error = {
            "message": message,
            "context": context,
            "type": ERROR_TYPES.get(status, "InternalServerError"),
            "details": None,
            "property": None,
            "help": None,
            "code": None,
            "id": str(uuid.uuid4()),
            "ghostErrorCode": None,
        }
        return JSONResponse({"errors": [error]}, status_code=status, headers=dict(headers or {}))

    def error(self, status: int, message: str, headers: Any = None) -> Response:
        return self.ghost_error(status, message, headers=headers)

    def _invalid(self, problems: list[str], where: str, message: str) -> Response | None:
        if self.check(problems, where) is None:
            return None
        # Ghost names the field that failed; jsonschema also quotes the value, kept short.
        short = [p if len(p) <= 160 else p[:157] + "..." for p in problems]
        return self.ghost_error(422, message, "; ".join(short))

    async def refused(self, request: Request) -> Response | None:
        """None when the request carries a valid Admin API token, else Ghost's answer."""
        header = request.headers.get("authorization")
        if not header:
            return self.ghost_error(
                403,
                "Authorization failed",
                "Unable to determine the authenticated user or integration. Check that "
                "cookies are being passed through if using session authentication.",
            )
        scheme, _, token = header.partition(" ")
        if not re.fullmatch(r"ghost", scheme, re.I) or not token:
            return self.ghost_error(
                401, 'Authorization header format is "Authorization: Ghost [token]"'
            )
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
        except jwt.DecodeError:
            return self.ghost_error(400, "Invalid token")
        if not key_id:
            return self.ghost_error(400, "Admin API kid missing.")
        secret = self.keys.get(str(key_id))
        if secret is None:
            return self.ghost_error(401, "Unknown Admin API Key")
        problem = self._token_problem(token, bytes.fromhex(secret))
        if problem:
            return self.ghost_error(401, f"Invalid token: {problem}")
        return None

    @staticmethod
    def _token_problem(token: str, secret: bytes) -> str | None:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"verify_aud": False, "require": ["iat", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return "jwt expired"
        except jwt.InvalidSignatureError:
            return "invalid signature"
        except jwt.InvalidTokenError as exc:
            return str(exc)
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not any(isinstance(a, str) and re.fullmatch(r"/?admin/?", a) for a in audiences):
            return "jwt audience invalid. expected: /?admin/?$"
        if time.time() - claims["iat"] > MAX_AGE:
            return "maxAge exceeded"
        if claims["exp"] - claims["iat"] > MAX_AGE:
            return "exp must be at most 5 minutes after iat"
        return None

    def _tag(self, given: Any) -> dict[str, Any] | None:
        """Find the tag a post names, or create it (Ghost does both on post add)."""
        spec = {"name": given} if isinstance(given, str) else dict(given)
        for tag in self.tags.values():
            if (
                spec.get("id") == tag["id"]
                or spec.get("slug") == tag["slug"]
                or str(spec.get("name", "")).casefold() == tag["name"].casefold()
            ):
                return tag
        if not spec.get("name"):
            return None
        name = str(spec["name"])
        tag = {
            "id": secrets.token_hex(12),
            "name": name,
            "slug": spec.get("slug") or tag_slug(name),
            "visibility": "internal" if name.startswith("#") else "public",
        }
        self.tags[tag["id"]] = tag
        return tag

    def _unique_slug(self, title: str) -> str:
        base = tag_slug(title) or "untitled"
        slug, n = base, 1
        taken = {post["slug"] for post in self.posts.values()}
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        return slug

    def _matches(self, post: dict[str, Any], clauses: list[tuple[str, list[str]]]) -> bool:
        for key, values in clauses:
            if key in ("tag", "tags"):
                if not any(tag["slug"] in values for tag in post["tags"]):
                    return False
            elif post.get(key) not in values:
                return False
        return True

    # -- routes --------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ghost/api/admin/site/", self.site, methods=["GET"]),
            Route("/ghost/api/admin/posts/", self.browse_posts, methods=["GET"]),
            Route("/ghost/api/admin/posts/", self.add_post, methods=["POST"]),
            Route("/ghost/api/admin/images/upload/", self.upload_image, methods=["POST"]),
        ]

    async def site(self, request: Request) -> Response:
        # Public: Ghost serves it without authentication.
        site = {"title": self.title, "url": self.base_url + "/", "version": "5.96"}
        return JSONResponse({"site": site})

    @endpoint()
    async def browse_posts(self, request: Request, fault: FakeFault | None) -> Response:
        clauses: list[tuple[str, list[str]]] = []
        for clause in _split_filter(request.query_params.get("filter", "")):
            if not clause:
                continue
            match = re.fullmatch(r"(tag|tags|status|id|slug):(\[[^\]]*\]|[\w.-]+)", clause)
            if not match:
                return self.ghost_error(400, "Error parsing filter", f"Cannot parse {clause!r}")
            values = match.group(2).strip("[]").split(",")
            clauses.append((match.group(1), [v.strip().strip("'") for v in values]))
        if not any(key == "status" for key, _ in clauses):
            clauses.append(("status", ["published"]))  # the Admin API's default filter
        raw_limit = request.query_params.get("limit", "15")
        limit = 100 if raw_limit == "all" else int(raw_limit) if raw_limit.isdigit() else 15
        found = [p for p in self.posts.values() if self._matches(p, clauses)]
        found.sort(key=lambda p: p["created_at"], reverse=True)
        fields = [f for f in request.query_params.get("fields", "").split(",") if f]
        page = [{k: v for k, v in p.items() if not fields or k in fields} for p in found[:limit]]
        pagination = {"page": 1, "limit": limit, "pages": 1, "total": len(found)}
        meta = {"pagination": pagination | {"next": None, "prev": None}}
        return await self.finish(fault, JSONResponse({"posts": page, "meta": meta}))

    @endpoint()
    async def add_post(self, request: Request, fault: FakeFault | None) -> Response:
        body = await json_body(request)
        if body is None:
            return self.ghost_error(400, "Request not understood error, cannot save post.")
        message = "Validation error, cannot save post."
        if refused := self._invalid(ghost_errors("posts.add", body), "posts.add", message):
            return refused
        given = body["posts"][0]
        if given.get("mobiledoc") and given.get("lexical"):
            return self.ghost_error(422, message, "Cannot set both mobiledoc and lexical")
        html = given.get("html") if request.query_params.get("source") == "html" else None
        tags = [tag for tag in map(self._tag, given.get("tags") or []) if tag is not None]
        status = given.get("status", "draft")
        slug = self._unique_slug(given["title"])
        post_uuid = str(uuid.uuid4())
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        post = {
            "id": secrets.token_hex(12),
            "uuid": post_uuid,
            "title": given["title"],
            "slug": slug,
            "html": html or "",
            "status": status,
            "url": f"{self.base_url}/{slug}/"
            if status == "published"
            else f"{self.base_url}/p/{post_uuid}/",
            "tags": tags,
            "custom_excerpt": given.get("custom_excerpt"),
            "canonical_url": given.get("canonical_url"),
            "feature_image": given.get("feature_image"),
            "feature_image_alt": given.get("feature_image_alt"),
            "created_at": now,
            "updated_at": now,
            "published_at": now if status == "published" else None,
        }
        self.posts[post["id"]] = post
        return await self.finish(fault, JSONResponse({"posts": [post]}, status_code=201))

    @endpoint()
    async def upload_image(self, request: Request, fault: FakeFault | None) -> Response:
        async with request.form() as form:
            upload = form.get("file")
            fields = {k: v for k, v in form.multi_items() if k != "file" and isinstance(v, str)}
            message = "Validation error, cannot upload image."
            if refused := self._invalid(
                ghost_errors("images.upload", fields), "images.upload", message
            ):
                return refused
            if not isinstance(upload, UploadFile) or not upload.filename:
                return self.ghost_error(422, "Please select an image.")
            data = await upload.read()
            content_type = upload.content_type or ""
            extension = (
                "." + upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
            )
            signatures = IMAGE_TYPES.get(content_type)
            if (
                signatures is None
                or extension not in IMAGE_EXTENSIONS
                or (signatures and not data.startswith(signatures))
            ):
                return self.ghost_error(
                    415,
                    "Please select a valid image.",
                    f"{upload.filename} ({content_type}) is not a supported image",
                )
        name = f"{secrets.token_hex(4)}-{upload.filename}"
        image = {
            "url": f"{self.base_url}/content/images/2026/11/{name}",
            "ref": fields.get("ref"),
            "size": len(data),
            "content_type": content_type,
        }
        self.images.append(image)
        uploaded = {"images": [{"url": image["url"], "ref": image["ref"]}]}
        return await self.finish(fault, JSONResponse(uploaded, status_code=201))
