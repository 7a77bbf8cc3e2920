"""A local X API v2 for the adapter tests.

What it holds to, as X does:

- OAuth 2.0 user tokens: ``Authorization: Bearer <access token>``; access tokens expire
  (``expire_access_tokens()`` ends them at once); ``POST /2/oauth2/token`` with
  ``grant_type=refresh_token`` rotates the pair, and a refresh token works once. A
  confidential client (``FakeX(confidential=True)``) must authenticate with HTTP Basic,
  a public one sends its ``client_id``. ``revoke()`` is the user removing the app.
- ``POST /2/tweets``: the body checked against X's published ``CreatePostsRequest``
  schema, 280 weighted characters (counted here on its own, the way twitter-text does,
  URLs ending at the first non-ASCII character), the reply target must exist, the media
  ids must be this user's uploads, and the same text twice is refused (403).
- ``POST /2/media/upload`` (one-shot, JSON, base64) and ``POST /2/media/metadata`` (alt
  text), both checked against the schema; ``GET /2/users/me``; ``GET /2/users/{id}/tweets``
  (newest first, ``since_id``, ``start_time``, ``max_results``), which shows text as X
  does: URLs replaced by t.co links, ``&`` as ``&amp;``.
- X's error shapes: problems (``title``/``detail``/``type``/``status``), 400s with
  ``errors[].message``, OAuth errors (``error``/``error_description``); rate-limit headers
  ``x-rate-limit-*`` on posts.

Every endpoint takes the next scripted fault after its own auth check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import itertools
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import regex
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import (
    FakeFault,
    FakeLimit,
    FakePlatform,
    LimitState,
    Seen,
    endpoint,
    json_body,
)

SPEC = "x/openapi.json"
MAX_LENGTH = 280
MAX_IMAGE_BYTES = 5 * 1024 * 1024
SCOPES = "tweet.read tweet.write users.read offline.access media.write"
INVALID_REQUEST = "https://api.x.com/2/problems/invalid-request"
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG = (
    "Your Tweet text is too long. For more information on how X counts characters, "
    "see https://docs.x.com/fundamentals/counting-characters."
)
REPLY_GONE = "You attempted to reply to a Tweet that is deleted or not visible to you."
# twitter-text's URL: a scheme, then ASCII URL characters; it does not end in punctuation.
_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)
_URL_TAIL = ".,;:!?'()"
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")


def _urls(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _URL.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in _URL_TAIL:
            end -= 1
        spans.append((start, end))
    return spans


def _weight(char: str) -> int:
    point = ord(char)
    light = 0 <= point <= 4351 or 8192 <= point <= 8205 or 8208 <= point <= 8223
    return 1 if light or 8242 <= point <= 8247 else 2


def weighted_length(text: str) -> int:
    """X's count: NFC, each URL 23, each emoji 2, other code points 1 or 2 by range."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    pieces: list[str] = []
    for start, end in _urls(text):
        pieces.append(text[position:start])
        total += 23
        position = end
    pieces.append(text[position:])
    for piece in pieces:
        for grapheme in regex.findall(r"\X", piece):
            total += 2 if _EMOJI.search(grapheme) else sum(map(_weight, grapheme))
    return total


def shown(text: str) -> str:
    """A post's text as X's API shows it back: t.co links, HTML-escaped ``& < >``."""
    out: list[str] = []
    position = 0
    for start, end in _urls(text):
        out.append(html.escape(text[position:start], quote=False))
        digest = hashlib.sha1(text[start:end].encode()).hexdigest()[:10]  # noqa: S324
        out.append(f"https://t.co/{digest}")
        position = end
    out.append(html.escape(text[position:], quote=False))
    return "".join(out)


class FakeX(FakePlatform):
    name = "x"

    def __init__(self, *, confidential: bool = False, token_lifetime: int = 7200) -> None:
        super().__init__()
        self.client_id = "herald-client-" + secrets.token_hex(6)
        self.client_secret = "cs-" + secrets.token_hex(16) if confidential else None
        self.token_lifetime = token_lifetime
        self.user = {"id": "1850000000000000042", "name": "Herald Tester", "username": "herald"}
        self.access_tokens: dict[str, float] = {}  # token → expiry (epoch seconds)
        self.refresh_token = ""
        self.spent_refresh_tokens: list[str] = []
        self.refreshes = 0  # refresh requests X granted
        self.posts: dict[str, dict[str, Any]] = {}  # by id, in the order they were made
        self.media: dict[str, dict[str, Any]] = {}
        self.reject_duplicates = True
        self.not_yet_in_timeline: set[str] = set()  # posts the timeline lags behind on
        self._ids = itertools.count(1_860_000_000_000_000_001, 7)
        self.access_token, self.refresh_token = self._issue()

    # -- control surface -------------------------------------------------------------------

    def credentials(self) -> dict[str, Any]:
        """What a user pastes into Herald after the OAuth dance with this fake."""
        values: dict[str, Any] = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
            "expires_at": datetime.fromtimestamp(
                self.access_tokens[self.access_token], UTC
            ).isoformat(),
            "api_base": self.base_url,
        }
        if self.client_secret:
            values["client_secret"] = self.client_secret
        return values

    def expire_access_tokens(self) -> None:
        with self._lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0.0

    def revoke(self) -> None:
        """The user removed the app: no token of this grant works any more."""
        with self._lock:
            self.access_tokens.clear()
            self.spent_refresh_tokens.append(self.refresh_token)
            self.refresh_token = ""

    def delete(self, post_id: str) -> None:
        with self._lock:
            del self.posts[post_id]

    def thread(self) -> list[str]:
        """The newest thread's texts, root first, following the replies."""
        roots = [p for p in self.posts.values() if p["reply_to"] is None]
        if not roots:
            return []
        texts = [roots[-1]["text"]]
        current = roots[-1]["id"]
        while True:
            replies = [p for p in self.posts.values() if p["reply_to"] == current]
            if not replies:
                return texts
            texts.append(replies[0]["text"])
            current = replies[0]["id"]

    def attached_media(self) -> list[dict[str, Any]]:
        return [self.media[m] for post in self.posts.values() for m in post["media_ids"]]

    # -- X's answers -----------------------------------------------------------------------

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        if status == 400:
            body: dict[str, Any] = {
                "errors": [{"parameters": {}, "message": message}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": INVALID_REQUEST,
            }
        else:
            phrase = HTTPStatus(status).phrase
            body = {"title": phrase, "detail": message or phrase, "type": "about:blank"}
            body["status"] = status
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def _oauth_error(self, status: int, error: str, description: str) -> Response:
        return JSONResponse({"error": error, "error_description": description}, status)

    def _issue(self) -> tuple[str, str]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = time.time() + self.token_lifetime
        return access, refresh

    async def refused(self, request: Request) -> Response | None:
        """401 unless the request carries a live Bearer access token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            expiry = self.access_tokens.get(token, 0.0)
        if scheme == "Bearer" and expiry > time.time():
            return None
        return self.error(401, "Unauthorized")

    def _new_id(self) -> str:
        with self._lock:
            return str(next(self._ids))

    # -- endpoints -------------------------------------------------------------------------

    def rate_limits(self) -> list[FakeLimit]:
        # docs.x.com/x-api/fundamentals/rate-limits: POST /2/tweets, 100 per 15 min per user.
        return [FakeLimit("posts", 100, 15 * 60, ("/2/tweets",), key=self._user_of)]

    def _user_of(self, seen: Seen) -> str:
        """Whose budget a request spends: the user its token was issued to (every token of
        this fake is its one user's, refreshed or not), else the header as sent."""
        header = seen.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        # Called under the fake's lock: a plain read of the dict, no lock taken.
        return self.user["id"] if scheme == "Bearer" and token in self.access_tokens else header

    def limit_headers(self, state: LimitState) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(state.limit.capacity),
            "x-rate-limit-remaining": str(max(0, math.floor(state.remaining))),
            "x-rate-limit-reset": str(math.ceil(state.now + state.reset_in)),
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/2/oauth2/token", self._token, methods=["POST"]),
            Route("/2/users/me", self._me, methods=["GET"]),
            Route("/2/users/{id}/tweets", self._timeline, methods=["GET"]),
            Route("/2/tweets", self._create, methods=["POST"]),
            Route("/2/media/upload", self._upload, methods=["POST"]),
            Route("/2/media/metadata", self._metadata, methods=["POST"]),
        ]

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        if self.client_secret is not None:
            pair = f"{self.client_id}:{self.client_secret}".encode()
            if request.headers.get("authorization") != "Basic " + base64.b64encode(pair).decode():
                return self._oauth_error(
                    401, "unauthorized_client", "Missing valid authorization header"
                )
        client_id = form.get("client_id")
        if client_id is None and self.client_secret is None:
            return self._oauth_error(
                400, "invalid_request", "Missing required parameter [client_id]."
            )
        if client_id is not None and client_id != self.client_id:
            return self._oauth_error(
                400, "invalid_request", "Value passed for the client_id was invalid."
            )
        fault = self.take_fault()
        if (answer := self.fault_response(fault)) is not None:
            return answer
        if form.get("grant_type") != "refresh_token":
            return self._oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
        with self._lock:
            if not self.refresh_token or form.get("refresh_token") != self.refresh_token:
                return self._oauth_error(
                    400, "invalid_request", "Value passed for the token was invalid."
                )
            # The old refresh token is spent; the old access token lives out its time.
            self.spent_refresh_tokens.append(self.refresh_token)
            self.access_token, self.refresh_token = self._issue()
            self.refreshes += 1
            body = {
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
                "access_token": self.access_token,
                "scope": SCOPES,
                "refresh_token": self.refresh_token,
            }
        return await self.finish(fault, JSONResponse(body))

    @endpoint()
    async def _me(self, request: Request, fault: FakeFault | None) -> Response:
        return await self.finish(fault, JSONResponse({"data": dict(self.user)}))

    @endpoint()
    async def _timeline(self, request: Request, fault: FakeFault | None) -> Response:
        user_id = request.path_params["id"]
        if user_id != self.user["id"]:
            problem = {
                "value": user_id,
                "detail": f"Could not find user with id: [{user_id}].",
                "title": "Not Found Error",
                "resource_type": "user",
                "parameter": "id",
                "resource_id": user_id,
                "type": "https://api.x.com/2/problems/resource-not-found",
            }
            return await self.finish(fault, JSONResponse({"errors": [problem]}))
        query = request.query_params
        limit = int(query.get("max_results", "10"))
        if not 5 <= limit <= 100:
            return self.error(
                400, "The `max_results` query parameter value is not between 5 and 100"
            )
        fields = set(query.get("tweet.fields", "").split(","))
        since_id = int(query.get("since_id", "0"))
        start = query.get("start_time")
        start_time = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        with self._lock:
            posts = list(reversed(self.posts.values()))
        found = [
            p
            for p in posts
            if int(p["id"]) > since_id
            and (start_time is None or p["created_at"] >= start_time)
            and p["id"] not in self.not_yet_in_timeline
        ][:limit]
        data = []
        for post in found:
            item = {"id": post["id"], "text": shown(post["text"])}
            item["edit_history_tweet_ids"] = [post["id"]]
            if "created_at" in fields:
                item["created_at"] = post["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if "referenced_tweets" in fields and post["reply_to"]:
                item["referenced_tweets"] = [{"type": "replied_to", "id": post["reply_to"]}]
            data.append(item)
        body: dict[str, Any] = {"meta": {"result_count": len(data)}}
        if data:
            body["data"] = data
            body["meta"] |= {"newest_id": data[0]["id"], "oldest_id": data[-1]["id"]}
        return await self.finish(fault, JSONResponse(body))

    @endpoint()
    async def _create(self, request: Request, fault: FakeFault | None) -> Response:
        body = await json_body(request)
        if (invalid := self.openapi_check(SPEC, "POST", "/2/tweets", body)) is not None:
            return invalid
        if not isinstance(body, dict):
            return self.error(400, "Request body must be a JSON object")
        text = str(body.get("text", ""))
        media_ids = list((body.get("media") or {}).get("media_ids", []))
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if not text and not media_ids:
            return self.error(400, "Post text or media is required")
        if weighted_length(text) > MAX_LENGTH:
            return self.error(403, TOO_LONG)
        with self._lock:
            if reply_to is not None and reply_to not in self.posts:
                return self.error(403, REPLY_GONE)
            if any(m not in self.media for m in media_ids):
                return self.error(400, "Your media IDs are invalid.")
            if (
                self.reject_duplicates
                and text
                and any(p["text"] == text for p in self.posts.values())
            ):
                return self.error(403, DUPLICATE)
            post_id = str(next(self._ids))
            self.posts[post_id] = {
                "id": post_id,
                "text": text,
                "reply_to": reply_to,
                "media_ids": media_ids,
                "created_at": datetime.now(UTC),
            }
            remaining = max(0, 100 - len(self.posts))
        headers = {
            "x-rate-limit-limit": "100",
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(int(time.time()) + 900),
        }
        answer_body = {
            "data": {"id": post_id, "text": shown(text), "edit_history_tweet_ids": [post_id]}
        }
        return await self.finish(fault, JSONResponse(answer_body, 201, headers=headers))

    @endpoint()
    async def _upload(self, request: Request, fault: FakeFault | None) -> Response:
        body = await json_body(request)
        if (invalid := self.openapi_check(SPEC, "POST", "/2/media/upload", body)) is not None:
            return invalid
        try:
            content = base64.b64decode(str(body["media"]), validate=True)
        except (KeyError, TypeError, binascii.Error):
            return self.error(400, "media must be base64-encoded")
        if len(content) > MAX_IMAGE_BYTES:
            return self.error(400, "File size exceeds 5242880 bytes.")
        if not content.startswith(_IMAGE_MAGIC):
            return self.error(400, "Unsupported media type.")
        media_id = self._new_id()
        with self._lock:
            self.media[media_id] = {"size": len(content), "alt": "", "content": content}
        data = {
            "id": media_id,
            "media_key": f"3_{media_id}",
            "size": len(content),
            "expires_after_secs": 86400,
        }
        return await self.finish(fault, JSONResponse({"data": data}))

    @endpoint()
    async def _metadata(self, request: Request, fault: FakeFault | None) -> Response:
        body = await json_body(request)
        if (invalid := self.openapi_check(SPEC, "POST", "/2/media/metadata", body)) is not None:
            return invalid
        media_id = str(body.get("id")) if isinstance(body, dict) else ""
        if media_id not in self.media:
            return self.error(400, f"Media id {media_id} is not valid.")
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text", "")
        with self._lock:
            self.media[media_id]["alt"] = alt
        data = {"id": media_id, "associated_metadata": body.get("metadata") or {}}
        return await self.finish(fault, JSONResponse({"data": data}))
