"""A local Mastodon instance: the endpoints Herald calls, with Mastodon's rules.

- Auth: ``Authorization: Bearer <token>``; an unknown or missing token is a 401
  ``{"error": "The access token is invalid"}``, a token without the endpoint's scope a
  403 ``{"error": "This action is outside the authorized scopes"}``.
- ``POST /api/v1/statuses`` (JSON): checked against ``mastodon/schema.json``; the status
  length counted as Mastodon does (grapheme clusters, each link as
  ``characters_reserved_per_url``, a mention as its username, the content warning
  included) against ``max_characters``; ``in_reply_to_id`` must exist (404);
  ``media_ids`` must be this account's, unattached, processed and at most
  ``max_media_attachments`` (422); a repeated ``Idempotency-Key`` answers the first
  status and stores nothing.
- ``POST /api/v2/media`` (multipart, ``file`` + ``description``): image type, size and
  description length checked (422); with ``processing_polls`` set it answers 202 and
  ``GET /api/v1/media/:id`` answers 206 that many times before 200 with a URL.
- ``GET /api/v2/instance`` publishes the configuration; ``GET
  /api/v1/accounts/verify_credentials`` the account.

Every endpoint takes a scripted fault after its auth check. Answers carry Mastodon's
``X-RateLimit-*`` headers (the reset as an ISO 8601 time); ``rate_limit_remaining`` makes
them count down.
"""

from __future__ import annotations

import html
import math
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import regex
from starlette.datastructures import UploadFile
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
from tests.fakes.specs import openapi

SPEC = "mastodon/schema.json"
TOKEN = "mastodon-fake-token-4f1c2a9e7b3d"
ALL_SCOPES = frozenset({"read", "write:statuses", "write:media", "read:accounts"})

# Mastodon's own words (config/locales/en.yml).
INVALID_TOKEN = "The access token is invalid"
OUT_OF_SCOPE = "This action is outside the authorized scopes"
REPLY_NOT_FOUND = "The post you are trying to reply to does not appear to exist."
NOT_FOUND = "Record not found"

# What Mastodon treats as a link when counting (twitter-text's valid URL, simplified): a
# real domain name, then ASCII path and query characters, not ending in punctuation.
_LINK = re.compile(
    r"https?://(?:[\w-]+\.)+(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)(?::\d+)?"
    r"(?:[/?#][A-Za-z0-9!*';:=+,.$/%#\[\]\-_~&|@?()]*)?",
    re.IGNORECASE,
)
_LINK_END = re.compile(r"[.,;:!?'()\[\]*$%~|@]+$")
_MENTION = re.compile(
    r"(?<![=/\w])@(([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@[\w.-]+\w+)?)", re.I
)


def mastodon_length(text: str, spoiler_text: str = "", url_length: int = 23) -> int:
    """StatusLengthValidator: links count ``url_length``, mentions their username."""

    def stand_in(match: re.Match[str]) -> str:
        link = match.group(0)
        trailing = _LINK_END.search(link)
        cut = trailing.start() if trailing else len(link)
        return "x" * url_length + link[cut:]

    countable = _MENTION.sub(r"@\2", _LINK.sub(stand_in, text))
    return len(regex.findall(r"\X", spoiler_text + countable))


def _bearer(seen: Seen) -> str:
    return seen.headers.get("authorization", "")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Account:
    id: str
    username: str
    scopes: frozenset[str]


@dataclass
class Media:
    id: str
    owner: str
    filename: str
    content_type: str
    size: int
    description: str | None
    polls_left: int
    status_id: str | None = None

    @property
    def ready(self) -> bool:
        return self.polls_left <= 0


@dataclass
class Status:
    id: str
    account: str
    text: str
    in_reply_to_id: str | None
    visibility: str
    spoiler_text: str
    language: str | None
    sensitive: bool
    media_ids: list[str] = field(default_factory=list)
    idempotency_key: str | None = None


class FakeMastodon(FakePlatform):
    name = "mastodon"

    def __init__(
        self,
        *,
        max_characters: int = 500,
        characters_reserved_per_url: int = 23,
        max_media_attachments: int = 4,
        image_size_limit: int = 16 * 1024 * 1024,
        description_limit: int = 1500,
        processing_polls: int = 0,
    ) -> None:
        super().__init__()
        self.max_characters = max_characters
        self.characters_reserved_per_url = characters_reserved_per_url
        self.max_media_attachments = max_media_attachments
        self.image_size_limit = image_size_limit
        self.description_limit = description_limit
        self.processing_polls = processing_polls
        self.rate_limit_remaining: int | None = None  # counts down per request when set
        self.tokens: dict[str, Account] = {
            TOKEN: Account("109000000000000001", "herald", ALL_SCOPES),
            "mastodon-fake-readonly-9a8b7c": Account(
                "109000000000000002", "reader", frozenset({"read:statuses"})
            ),
        }
        self.statuses: dict[str, Status] = {}  # in creation order
        self.media: dict[str, Media] = {}
        self.idempotency: dict[tuple[str, str], str] = {}  # (account, key) → status id
        self._next_id = 110000000000000000
        self._ids = threading.Lock()

    def __enter__(self) -> FakeMastodon:
        self.start()
        return self

    # -- helpers ---------------------------------------------------------------------------

    def new_id(self) -> str:
        with self._ids:
            self._next_id += 1
            return str(self._next_id)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/accounts/verify_credentials", self.verify_credentials),
            Route("/api/v2/instance", self.instance),
            Route("/api/v1/statuses", self.create_status, methods=["POST"]),
            Route("/api/v2/media", self.upload_media, methods=["POST"]),
            Route("/api/v1/media/{id}", self.show_media),
        ]

    def rate_limits(self) -> list[FakeLimit]:
        # docs.joinmastodon.org/api/rate-limits/ and app/lib/rate_limiter.rb.
        return [
            FakeLimit("statuses", 300, 3 * 3600, ("/api/v1/statuses",), key=_bearer),
            FakeLimit(
                "requests", 300, 5 * 60, ("/api/",), ("GET", "POST", "PUT", "DELETE"), _bearer
            ),
            FakeLimit("media", 30, 30 * 60, ("/api/v1/media", "/api/v2/media"), key=_bearer),
        ]

    def limit_headers(self, state: LimitState) -> dict[str, str]:
        if self.rate_limit_remaining is not None:
            return {}  # a test scripts the window itself
        reset = datetime.fromtimestamp(state.now + state.reset_in, UTC)
        return {
            "X-RateLimit-Limit": str(state.limit.capacity),
            "X-RateLimit-Remaining": str(max(0, math.floor(state.remaining))),
            "X-RateLimit-Reset": _iso(reset),
        }

    def rate_headers(self) -> dict[str, str]:
        remaining = 299
        if self.rate_limit_remaining is not None:
            self.rate_limit_remaining = max(0, self.rate_limit_remaining - 1)
            remaining = self.rate_limit_remaining
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": _iso(datetime.now(UTC) + timedelta(minutes=5)),
        }

    def answer(self, data: Any, status: int = 200) -> Response:
        return JSONResponse(data, status_code=status, headers=self.rate_headers())

    def authorise(self, request: Request, scope: str) -> Account | Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        account = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if account is None:
            return self.error(401, INVALID_TOKEN)
        if scope not in account.scopes and scope.partition(":")[0] not in account.scopes:
            return self.error(403, OUT_OF_SCOPE)
        return account

    def admit(self, request: Request, scope: str) -> tuple[Account, FakeFault | None] | Response:
        """Auth, then the rate limit, then a scripted fault: what every endpoint does first."""
        account = self.authorise(request, scope)
        if isinstance(account, Response):
            return account
        if self.rate_limit_remaining == 0:
            return self.error(429, "Too many requests", self.rate_headers())
        fault = self.take_fault()
        refused = self.fault_response(fault)
        return refused if refused is not None else (account, fault)

    def status_url(self, status: Status) -> str:
        return f"{self.base_url}/@{self.account_name(status.account)}/{status.id}"

    def account_name(self, account_id: str) -> str:
        return next(a.username for a in self.tokens.values() if a.id == account_id)

    def media_entity(self, media: Media) -> dict[str, Any]:
        url = f"{self.base_url}/system/media/{media.id}/original.png" if media.ready else None
        return {
            "id": media.id,
            "type": "image",
            "url": url,
            "preview_url": url,
            "remote_url": None,
            "description": media.description,
            "blurhash": None,
            "meta": {},
        }

    def status_entity(self, status: Status) -> dict[str, Any]:
        return {
            "id": status.id,
            "created_at": _iso(datetime.now(UTC)),
            "in_reply_to_id": status.in_reply_to_id,
            "in_reply_to_account_id": status.account if status.in_reply_to_id else None,
            "sensitive": status.sensitive,
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": status.language,
            "uri": f"{self.base_url}/users/{self.account_name(status.account)}/statuses/"
            f"{status.id}",
            "url": self.status_url(status),
            "content": "<p>" + html.escape(status.text).replace("\n", "<br />") + "</p>",
            "media_attachments": [self.media_entity(self.media[m]) for m in status.media_ids],
            "account": {"id": status.account, "username": self.account_name(status.account)},
        }

    # -- endpoints -------------------------------------------------------------------------

    async def verify_credentials(self, request: Request) -> Response:
        admitted = self.admit(request, "read:accounts")
        if isinstance(admitted, Response):
            return admitted
        account, fault = admitted
        host = urlsplit(self.base_url).netloc
        return await self.finish(
            fault,
            self.answer(
                {
                    "id": account.id,
                    "username": account.username,
                    "acct": account.username,
                    "display_name": "Herald test account",
                    "url": f"{self.base_url}/@{account.username}",
                    "source": {"privacy": "public", "language": "en", "note": host},
                }
            ),
        )

    @endpoint(auth=False)  # Public: no token needed; one sent is not checked.
    async def instance(self, request: Request, fault: FakeFault | None) -> Response:
        return await self.finish(
            fault,
            self.answer(
                {
                    "domain": urlsplit(self.base_url).hostname,
                    "title": "Fake Mastodon",
                    "version": "4.4.0",
                    "configuration": {
                        "urls": {"streaming": None},
                        "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                        "statuses": {
                            "max_characters": self.max_characters,
                            "max_media_attachments": self.max_media_attachments,
                            "characters_reserved_per_url": self.characters_reserved_per_url,
                        },
                        "media_attachments": {
                            "supported_mime_types": [
                                "image/jpeg",
                                "image/png",
                                "image/gif",
                                "image/webp",
                                "video/mp4",
                            ],
                            "description_limit": self.description_limit,
                            "image_size_limit": self.image_size_limit,
                            "image_matrix_limit": 33177600,
                            "video_size_limit": 103809024,
                            "video_frame_rate_limit": 120,
                            "video_matrix_limit": 8294400,
                        },
                        "polls": {
                            "max_options": 4,
                            "max_characters_per_option": 50,
                            "min_expiration": 300,
                            "max_expiration": 2629746,
                        },
                        "translation": {"enabled": False},
                    },
                }
            ),
        )

    async def create_status(self, request: Request) -> Response:
        admitted = self.admit(request, "write:statuses")
        if isinstance(admitted, Response):
            return admitted
        account, fault = admitted
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self.error(422, "Validation failed: Text can't be blank")
        body = await json_body(request)
        if (invalid := self.check(self.schema_errors(body), "POST /api/v1/statuses")) is not None:
            return invalid
        key = request.headers.get("idempotency-key")
        if key and (account.id, key) in self.idempotency:
            # Mastodon answers the status made with this key the first time.
            earlier = self.statuses[self.idempotency[(account.id, key)]]
            return await self.finish(fault, self.answer(self.status_entity(earlier)))
        refusal = self.refusal(account, body)
        if refusal is not None:
            return refusal
        status = Status(
            id=self.new_id(),
            account=account.id,
            text=body.get("status", ""),
            in_reply_to_id=body.get("in_reply_to_id"),
            visibility=body.get("visibility", "public"),
            spoiler_text=body.get("spoiler_text", ""),
            language=body.get("language"),
            sensitive=bool(body.get("sensitive", False)),
            media_ids=list(body.get("media_ids", [])),
            idempotency_key=key,
        )
        with self._lock:
            self.statuses[status.id] = status
            for media_id in status.media_ids:
                self.media[media_id].status_id = status.id
            if key:
                self.idempotency[(account.id, key)] = status.id
        return await self.finish(fault, self.answer(self.status_entity(status)))

    def schema_errors(self, body: Any) -> list[str]:
        spec = openapi(SPEC)
        if spec is None:
            return [] if isinstance(body, dict) else ["(body): not a JSON object"]
        schema = spec.request_schema("POST", "/api/v1/statuses")
        # The generated schema's ``oneOf`` (text | media | poll) rejects a status with
        # both text and media_ids, which the documentation allows and every client sends:
        # any of the three shapes will do.
        return spec.errors_for({"anyOf": schema["oneOf"]}, body)

    def refusal(self, account: Account, body: dict[str, Any]) -> Response | None:
        """Mastodon's own checks of a status, after the schema's."""
        text = body.get("status", "")
        media_ids = body.get("media_ids") or []
        if not text.strip() and not media_ids:
            return self.error(422, "Validation failed: Text can't be blank")
        length = mastodon_length(
            text, body.get("spoiler_text", ""), self.characters_reserved_per_url
        )
        if length > self.max_characters:
            return self.error(
                422, f"Validation failed: Text character limit of {self.max_characters} exceeded"
            )
        parent = body.get("in_reply_to_id")
        if parent is not None and parent not in self.statuses:
            return self.error(404, REPLY_NOT_FOUND)
        if len(media_ids) > self.max_media_attachments:
            return self.error(422, f"Cannot attach more than {self.max_media_attachments} files")
        for media_id in media_ids:
            media = self.media.get(media_id)
            if media is None or media.owner != account.id or media.status_id is not None:
                return self.error(422, "Validation failed: Media attachments are invalid")
            if not media.ready:
                return self.error(
                    422,
                    "Cannot attach files that have not finished processing. Try again in a moment!",
                )
        return None

    async def upload_media(self, request: Request) -> Response:
        admitted = self.admit(request, "write:media")
        if isinstance(admitted, Response):
            return admitted
        account, fault = admitted
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return self.error(422, "Validation failed: File can't be blank")
        # The form's temporary files are closed when the block ends.
        async with request.form() as form:
            upload = form.get("file")
            # What of the multipart body a schema can see: the fields and their kinds.
            fields: dict[str, Any] = {
                name: "(binary)" if isinstance(value, UploadFile) else value
                for name, value in form.multi_items()
            }
            data = await upload.read() if isinstance(upload, UploadFile) else b""
            description = form.get("description")
        form_type = "multipart/form-data"
        invalid = self.openapi_check(SPEC, "POST", "/api/v2/media", fields, form_type)
        if invalid is not None:
            return invalid
        if not isinstance(upload, UploadFile):
            return self.error(422, "Validation failed: File can't be blank")
        content_type = upload.content_type or ""
        if not content_type.startswith("image/"):
            return self.error(422, "Validation failed: File content type is invalid")
        if len(data) > self.image_size_limit:
            limit = self.image_size_limit // (1024 * 1024)
            return self.error(
                422, f"Validation failed: File file size must be less than {limit} MB"
            )
        if isinstance(description, str) and len(description) > self.description_limit:
            return self.error(
                422,
                "Validation failed: Description is too long (maximum is "
                f"{self.description_limit} characters)",
            )
        media = Media(
            id=self.new_id(),
            owner=account.id,
            filename=upload.filename or "",
            content_type=content_type,
            size=len(data),
            description=description if isinstance(description, str) else None,
            polls_left=self.processing_polls,
        )
        with self._lock:
            self.media[media.id] = media
        status = 200 if media.ready else 202
        return await self.finish(fault, self.answer(self.media_entity(media), status))

    async def show_media(self, request: Request) -> Response:
        admitted = self.admit(request, "write:media")
        if isinstance(admitted, Response):
            return admitted
        account, fault = admitted
        media = self.media.get(request.path_params["id"])
        if media is None or media.owner != account.id:
            return self.error(404, NOT_FOUND)
        if not media.ready:
            entity = self.media_entity(media)  # still without a URL
            media.polls_left -= 1
            return await self.finish(fault, self.answer(entity, 206))
        return await self.finish(fault, self.answer(self.media_entity(media)))

    # -- what the tests read ---------------------------------------------------------------

    def thread(self) -> list[Status]:
        """The newest status and its ancestors, root first."""
        if not self.statuses:
            return []
        chain = [list(self.statuses.values())[-1]]
        while chain[-1].in_reply_to_id is not None:
            chain.append(self.statuses[chain[-1].in_reply_to_id])
        return chain[::-1]

    def attached_media(self) -> list[Media]:
        return [m for m in self.media.values() if m.status_id is not None]
