"""A local LinkedIn: the Posts API, the Images API, OpenID userinfo and the OAuth refresh.

It checks what LinkedIn checks: ``Authorization: Bearer`` (invalid, expired and missing
tokens answer 401 with LinkedIn's ``serviceErrorCode``), the ``LinkedIn-Version`` header
(YYYYMM) and ``X-Restli-Protocol-Version: 2.0.0`` on ``/rest``, URN formats, who may post
as which author (403 ``ACCESS_DENIED``), the body's shape, the commentary's little format
(an unescaped reserved character is recorded as a violation: LinkedIn would silently cut
the post there) and its 3,000 characters, that attached images were uploaded, and (when
``reject_duplicates`` is on) repeats of a post (422 ``DUPLICATE_POST``). It
answers ``201`` with the post's URN in ``x-restli-id``, and errors as
``{"status", "serviceErrorCode", "code", "message"}``.

LinkedIn publishes no machine-readable schema, so there is no spec layer; the shape
checks below follow the Posts API reference.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakePlatform, json_body

PERSON = re.compile(r"^urn:li:person:[A-Za-z0-9_-]+$")
ORGANIZATION = re.compile(r"^urn:li:organization:\d+$")
IMAGE = re.compile(r"^urn:li:image:[A-Za-z0-9_-]+$")
RESERVED = set("\\|{}@[]()<>#*_~")
POST_FIELDS = {
    "author",
    "commentary",
    "visibility",
    "distribution",
    "lifecycleState",
    "isReshareDisabledByAuthor",
    "content",
    "contentLandingPage",
    "contentCallToActionLabel",
    "container",
    "reshareContext",
    "adContext",
}


def parse_little(commentary: str) -> tuple[str, list[str], list[str]]:
    """The text a reader sees, the hashtags, and problems (unescaped reserved characters)."""
    text: list[str] = []
    hashtags: list[str] = []
    problems: list[str] = []
    i = 0
    while i < len(commentary):
        char = commentary[i]
        if char == "\\" and i + 1 < len(commentary):
            text.append(commentary[i + 1])
            i += 2
            continue
        if char == "#":
            word = re.match(r"#(\w+)", commentary[i:])
            starts_word = i == 0 or commentary[i - 1].isspace()
            if word and starts_word:
                hashtags.append(word.group(1))
                text.append(word.group(0))
                i += len(word.group(0))
                continue
        if char in RESERVED:
            problems.append(f"unescaped {char!r} at {i}: LinkedIn cuts the commentary here")
        text.append(char)
        i += 1
    return "".join(text), hashtags, problems


class FakeLinkedIn(FakePlatform):
    name = "linkedin"

    def __init__(self) -> None:
        super().__init__()
        self.member_id = "aBc123XyZ"
        self.member_name = "Zoë Ångström"
        self.organization_id = "2414183"  # a page the member administers
        self.client_id = "86abcdefgh1234"
        self.client_secret = "WPL_AP1." + secrets.token_urlsafe(12)
        self.token = "AQV" + secrets.token_urlsafe(48)
        self.refresh_token = "AQX" + secrets.token_urlsafe(48)
        self.tokens: dict[str, str] = {self.token: self.member_id}  # token → member id
        self.expired: set[str] = set()
        self.can_read_posts = True  # r_member_social / r_organization_social granted
        # LinkedIn refuses a repeat of a recent post (422 DUPLICATE_POST); off by default,
        # since the contract suite posts the same text under two keys on purpose.
        self.reject_duplicates = False
        self.refreshes = 0
        self.posts: list[dict[str, Any]] = []
        self.images: dict[str, dict[str, Any]] = {}  # image URN → owner, bytes

    # -- helpers for tests ----------------------------------------------------------------

    @property
    def person(self) -> str:
        return f"urn:li:person:{self.member_id}"

    @property
    def organization(self) -> str:
        return f"urn:li:organization:{self.organization_id}"

    def credentials(self, **changes: Any) -> dict[str, Any]:
        values = {
            "access_token": self.token,
            "author": self.person,
            "api_url": self.base_url,
            "oauth_url": f"{self.base_url}/oauth/v2",
        }
        return values | changes

    def expire(self, token: str) -> None:
        self.expired.add(token)

    def issue_token(self, member_id: str | None = None) -> str:
        token = "AQV" + secrets.token_urlsafe(48)
        self.tokens[token] = member_id or self.member_id
        return token

    # -- the platform's shapes ------------------------------------------------------------

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        body: dict[str, Any] = {"status": status, "message": message}
        if status == 422:
            body["serviceErrorCode"] = 100
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def _refuse(self, errors: Iterable[str], where: str, status: int = 422) -> Response | None:
        """Record request-shape problems (the adapter must never send them) and refuse."""
        found = list(errors)
        if self.check(found, where) is None:
            return None
        return self.error(status, "; ".join(f"{where}: {error}" for error in found))

    def _auth(self, request: Request) -> tuple[str | None, Response | None]:
        header = request.headers.get("authorization", "")
        if not header:
            return None, self._unauthorized(65604, "EMPTY_ACCESS_TOKEN", "Empty oauth2 token")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            return None, self._unauthorized(65600, "INVALID_ACCESS_TOKEN", "Invalid access token")
        if token in self.expired:
            return None, self._unauthorized(
                65601, "EXPIRED_ACCESS_TOKEN", "The token used in the request has expired"
            )
        return self.tokens[token], None

    def _unauthorized(self, service_code: int, code: str, message: str) -> Response:
        body = {"status": 401, "serviceErrorCode": service_code, "code": code, "message": message}
        return JSONResponse(body, status_code=401)

    def _forbidden(self, what: str) -> Response:
        body = {
            "status": 403,
            "serviceErrorCode": 100,
            "code": "ACCESS_DENIED",
            "message": f"Not enough permissions to access: {what}",
        }
        return JSONResponse(body, status_code=403)

    def _rest_headers(self, request: Request) -> Response | None:
        version = request.headers.get("linkedin-version", "")
        errors = []
        if not re.fullmatch(r"\d{6}(\.\d{2})?", version):
            errors.append("LinkedIn-Version must be YYYYMM (VERSION_MISSING)")
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            errors.append("X-Restli-Protocol-Version must be 2.0.0")
        return self._refuse(errors, f"{request.method} {request.url.path}", status=400)

    def _may_act_as(self, member_id: str, urn: Any) -> bool:
        if not isinstance(urn, str):
            return False
        if PERSON.match(urn):
            return urn == f"urn:li:person:{member_id}"
        return bool(ORGANIZATION.match(urn)) and urn == self.organization

    # -- endpoints ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/userinfo", self.userinfo, methods=["GET"]),
            Route("/rest/posts", self.create_post, methods=["POST"]),
            Route("/rest/posts", self.find_posts, methods=["GET"]),
            Route("/rest/images", self.initialize_upload, methods=["POST"]),
            Route("/dms-uploads/{image_id}", self.upload, methods=["PUT"]),
            Route("/oauth/v2/accessToken", self.access_token, methods=["POST"]),
        ]

    async def userinfo(self, request: Request) -> Response:
        member, denied = self._auth(request)
        if denied is not None:
            return denied
        return JSONResponse(
            {
                "sub": member,
                "name": self.member_name,
                "given_name": "Zoë",
                "family_name": "Ångström",
                "locale": {"country": "SE", "language": "sv"},
            }
        )

    async def create_post(self, request: Request) -> Response:
        member, denied = self._auth(request)
        if denied is not None:
            return denied
        assert member is not None
        refused = self._rest_headers(request)
        if refused is not None:
            return refused
        body = await json_body(request)
        if not isinstance(body, dict):
            return self.error(400, "Request body is not valid JSON")
        if not self._may_act_as(member, body.get("author")):
            return self._forbidden("partnerApiPostsExternal.CREATE (author)")
        errors = list(self._post_errors(body))
        text, hashtags, problems = parse_little(str(body.get("commentary", "")))
        errors += problems
        if len(text) > 3000:
            errors.append(f"/commentary :: length {len(text)} exceeds 3000 characters")
        refused = self._refuse(errors, "POST /rest/posts")
        if refused is not None:
            return refused
        duplicate = self._duplicate_of(body) if self.reject_duplicates else None
        if duplicate is not None:
            return JSONResponse(
                {
                    "errorDetailType": "com.linkedin.common.error.BadRequest",
                    "message": "com.linkedin.content.common.exception."
                    f"BadRequestResponseException: Content is a duplicate of {duplicate}",
                    "errorDetails": {
                        "inputErrors": [
                            {
                                "description": "Duplicate post is detected",
                                "input": {},
                                "code": "DUPLICATE_POST",
                            }
                        ]
                    },
                    "status": 422,
                },
                status_code=422,
            )
        fault = self.take_fault()
        failed = self.fault_response(fault)
        if failed is not None:
            return failed
        with self._lock:
            urn = f"urn:li:share:{7_300_000_000_000_000_000 + len(self.posts) + 1}"
            self.posts.append(
                {
                    "id": urn,
                    "author": body["author"],
                    "commentary": body["commentary"],
                    "text": text,
                    "hashtags": hashtags,
                    "visibility": body["visibility"],
                    "content": body.get("content"),
                    "lifecycleState": body["lifecycleState"],
                    "createdAt": int(time.time() * 1000),
                }
            )
        return await self.finish(fault, Response(status_code=201, headers={"x-restli-id": urn}))

    def _duplicate_of(self, body: dict[str, Any]) -> str | None:
        with self._lock:
            for post in self.posts:
                same = (post["author"], post["commentary"], post["content"])
                if same == (body["author"], body["commentary"], body.get("content")):
                    return str(post["id"])
        return None

    def _post_errors(self, body: dict[str, Any]) -> Iterable[str]:
        for key in sorted(set(body) - POST_FIELDS):
            yield f"unrecognized field {key!r}"
        if not isinstance(body.get("commentary"), str):
            yield "commentary must be a string"
        if body.get("visibility") not in ("PUBLIC", "CONNECTIONS", "LOGGED_IN"):
            yield "visibility must be PUBLIC, CONNECTIONS or LOGGED_IN"
        if body.get("visibility") == "CONNECTIONS" and ORGANIZATION.match(str(body["author"])):
            yield "an organization cannot post to CONNECTIONS"
        distribution = body.get("distribution")
        if not isinstance(distribution, dict):
            yield "distribution is required"
        else:
            if distribution.get("feedDistribution") not in ("MAIN_FEED", "NONE"):
                yield "distribution.feedDistribution must be MAIN_FEED or NONE"
            for key in ("targetEntities", "thirdPartyDistributionChannels"):
                if not isinstance(distribution.get(key, []), list):
                    yield f"distribution.{key} must be an array"
        if body.get("lifecycleState") not in ("PUBLISHED", "DRAFT"):
            yield "lifecycleState must be PUBLISHED or DRAFT"
        if not isinstance(body.get("isReshareDisabledByAuthor", False), bool):
            yield "isReshareDisabledByAuthor must be a boolean"
        content = body.get("content")
        if content is not None:
            yield from self._content_errors(content)

    def _content_errors(self, content: Any) -> Iterable[str]:
        if not isinstance(content, dict) or len(content) != 1:
            yield "content holds exactly one of article, media, multiImage"
            return
        ((kind, value),) = content.items()
        if kind == "article":
            source = value.get("source") if isinstance(value, dict) else None
            if not isinstance(source, str) or not re.match(r"^https?://\S+$", source):
                yield "content.article.source must be an http(s) URL"
            if not isinstance(value, dict) or not isinstance(value.get("title"), str):
                yield "content.article.title must be a string"
        elif kind == "media":
            yield from self._image_errors(value, "content.media")
        elif kind == "multiImage":
            images = value.get("images") if isinstance(value, dict) else None
            if not isinstance(images, list) or not 2 <= len(images) <= 20:
                yield "content.multiImage.images takes 2 to 20 images"
                return
            for index, image in enumerate(images):
                yield from self._image_errors(image, f"content.multiImage.images[{index}]")
        else:
            yield f"content.{kind} is not a content type Herald should send"

    def _image_errors(self, value: Any, where: str) -> Iterable[str]:
        if not isinstance(value, dict) or not IMAGE.match(str(value.get("id", ""))):
            yield f"{where}.id must be an image URN"
            return
        image = self.images.get(value["id"])
        if image is None or image["bytes"] is None:
            yield f"{where}.id {value['id']} was never uploaded (not AVAILABLE)"
        alt = value.get("altText", "")
        if not isinstance(alt, str) or len(alt) > 4086:
            yield f"{where}.altText must be a string of at most 4,086 characters"

    async def find_posts(self, request: Request) -> Response:
        member, denied = self._auth(request)
        if denied is not None:
            return denied
        assert member is not None
        refused = self._rest_headers(request)
        if refused is not None:
            return refused
        # Rest.li 2.0: a URN in a query parameter is percent-encoded (urn%3Ali%3A...).
        raw = request.url.query
        query = parse_qs(raw)
        author = query.get("author", [""])[0]
        errors = []
        if query.get("q") != ["author"]:
            errors.append("the posts finder needs q=author")
        if "author=urn:" in raw:
            errors.append("author must be URL-encoded in the query")
        refused = self._refuse(errors, "GET /rest/posts", status=400)
        if refused is not None:
            return refused
        if not self.can_read_posts or not self._may_act_as(member, author):
            return self._forbidden("partnerApiPostsExternal.FINDER-author")
        fault = self.take_fault()
        failed = self.fault_response(fault)
        if failed is not None:
            return failed
        count = int(query.get("count", ["10"])[0])
        with self._lock:
            mine = [p for p in reversed(self.posts) if p["author"] == author][:count]
        elements = [{k: v for k, v in p.items() if k not in ("text", "hashtags")} for p in mine]
        return await self.finish(fault, JSONResponse({"elements": elements, "paging": {}}))

    async def initialize_upload(self, request: Request) -> Response:
        member, denied = self._auth(request)
        if denied is not None:
            return denied
        assert member is not None
        refused = self._rest_headers(request)
        if refused is not None:
            return refused
        body = await json_body(request)
        owner = (body or {}).get("initializeUploadRequest", {}).get("owner")
        errors = []
        if request.query_params.get("action") != "initializeUpload":
            errors.append("POST /rest/images needs ?action=initializeUpload")
        if not isinstance(owner, str):
            errors.append("initializeUploadRequest.owner is required")
        refused = self._refuse(errors, "POST /rest/images", status=400)
        if refused is not None:
            return refused
        if not self._may_act_as(member, owner):
            return self._forbidden("images.ACTION-initializeUpload (owner)")
        fault = self.take_fault()
        failed = self.fault_response(fault)
        if failed is not None:
            return failed
        image_id = "D4E10AQ" + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")
        urn = f"urn:li:image:{image_id}"
        with self._lock:
            self.images[urn] = {"owner": owner, "bytes": None}
        value = {
            "uploadUrlExpiresAt": int(time.time() * 1000) + 3_600_000,
            "uploadUrl": f"{self.base_url}/dms-uploads/{image_id}",
            "image": urn,
        }
        return await self.finish(fault, JSONResponse({"value": value}))

    async def upload(self, request: Request) -> Response:
        _, denied = self._auth(request)
        if denied is not None:
            return denied
        urn = f"urn:li:image:{request.path_params['image_id']}"
        if urn not in self.images:
            return self.error(404, "No upload registered for this URL")
        fault = self.take_fault()
        failed = self.fault_response(fault)
        if failed is not None:
            return failed
        data = await request.body()
        with self._lock:
            self.images[urn]["bytes"] = data
        return await self.finish(fault, Response(status_code=201))

    async def access_token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        field = {key: values[0] for key, values in form.items()}
        if field.get("grant_type") != "refresh_token":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "grant_type"}, 400
            )
        if field.get("client_id") != self.client_id or (
            field.get("client_secret") != self.client_secret
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                401,
            )
        if field.get("refresh_token") != self.refresh_token:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "The provided refresh token is invalid or expired",
                },
                400,
            )
        with self._lock:
            self.refreshes += 1
        token = self.issue_token()
        return JSONResponse(
            {
                "access_token": token,
                "expires_in": 5_184_000,
                "refresh_token": self.refresh_token,
                "refresh_token_expires_in": 25_000_000,
                "scope": "openid,profile,w_member_social",
            }
        )
