"""A local Bluesky PDS: sessions, post records, blobs and record lookups over XRPC, answered
as the reference PDS (bluesky-social/atproto ``packages/pds``) answers them.

- Sessions: ``createSession`` takes the handle or DID and a password, and answers an
  access JWT (2 hours) and a refresh JWT (90 days), signed with this fake's key. It is
  rate-limited per account like Bluesky's (30 per 5 minutes, 300 per day): a 429
  ``RateLimitExceeded`` with ``RateLimit-Limit/-Remaining/-Reset/-Policy`` headers, reset
  in epoch seconds. ``refreshSession`` takes the refresh JWT and rotates it (the old one
  is spent). An expired access token is a 400 ``ExpiredToken``; a missing or revoked one a
  401 ``AuthenticationRequired``. The fake's clock can be moved on (``advance``).
- Writes (``createRecord``, ``uploadBlob``) and lookups (``getRecord``) take the scripted
  faults after the auth check; session calls do not (they have their own rate limit).
- Checks: every ``createSession``/``createRecord`` body and ``getRecord`` query against the
  published Lexicons (``tests/fakes/lexicon.py``), the post record against
  ``app.bsky.feed.post`` with its record key a TID; then what a schema cannot say: link
  facets cover exactly the URL's UTF-8 bytes, a reply's root and parent exist with those
  CIDs, images refer to blobs uploaded here with the same type and size, and the repo is
  the account's. Problems are recorded in ``violations`` and answered 400
  ``InvalidRequest``. A record key already taken is answered 500, as the reference PDS
  does (bluesky-social/atproto#3718).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import jwt
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
from tests.fakes.lexicon import graphemes, lexicon

POST = "app.bsky.feed.post"
ACCESS_SCOPE = "com.atproto.appPass"
REFRESH_SCOPE = "com.atproto.refresh"
SESSION_LIMITS = ((30, 300), (300, 86_400))  # createSession: (calls, window in seconds)

# The names the reference XRPC server gives each status.
ERROR_NAMES = {
    400: "InvalidRequest",
    401: "AuthenticationRequired",
    403: "Forbidden",
    404: "XRPCNotSupported",
    413: "PayloadTooLarge",
    429: "RateLimitExceeded",
    500: "InternalServerError",
    501: "MethodNotImplemented",
    502: "UpstreamFailure",
    503: "NotEnoughResources",
    504: "UpstreamTimeout",
}

_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"


def cid_for(data: bytes, *, raw: bool = False) -> str:
    """A CIDv1 (sha2-256), base32: ``bafkrei…`` for raw bytes, ``bafyrei…`` for records."""
    prefix = bytes([0x01, 0x55 if raw else 0x71, 0x12, 0x20])
    encoded = base64.b32encode(prefix + hashlib.sha256(data).digest()).decode()
    return "b" + encoded.lower().rstrip("=")


def tid(micros: int, clock_id: int = 0) -> str:
    value = (micros << 10) | clock_id
    return "".join(_SORTABLE[(value >> shift) & 31] for shift in range(60, -1, -5))


class FakeBluesky(FakePlatform):
    name = "bluesky"
    access_ttl = 2 * 3600
    refresh_ttl = 90 * 86_400

    def __init__(
        self,
        handle: str = "herald-test.bsky.social",
        app_password: str = "abcd-2345-efgh-6789",  # noqa: S107 (a fake account's)
    ) -> None:
        super().__init__()
        self.handle = handle
        self.did = "did:plc:" + "".join(secrets.choice(_SORTABLE) for _ in range(24))
        self.app_password = app_password
        self.records: dict[str, dict[str, Any]] = {}  # posts by record key, in order
        self.blobs: dict[str, dict[str, Any]] = {}  # by CID: mimeType, size, data
        self.logins = 0  # sessions created
        self.refreshes = 0  # sessions refreshed
        self.clock_offset = 0.0
        self._key = secrets.token_bytes(32)
        self._spent: set[str] = set()  # refresh token ids already used
        self._revoked_before = 0.0  # tokens issued before this time are revoked
        self._session_calls: dict[str, list[float]] = {}

    # -- control surface -----------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on (tokens expire, rate-limit windows pass)."""
        self.clock_offset += seconds

    def revoke_sessions(self) -> None:
        """Every token issued so far stops working (a password change, say)."""
        self._revoked_before = self.now()

    def change_app_password(self, new: str) -> None:
        """The user deleted the app password and made another: its sessions are revoked."""
        self.app_password = new
        self.revoke_sessions()

    def credentials(self) -> dict[str, Any]:
        return {
            "identifier": self.handle,
            "app_password": self.app_password,
            "service": self.base_url,
        }

    def issue_access(self, ttl: float) -> str:
        """An access token for the account, expiring ``ttl`` seconds from now."""
        return self._token(ACCESS_SCOPE, ttl)

    def calls(self, nsid: str) -> list[Seen]:
        return [r for r in self.requests if r.path == f"/xrpc/{nsid}"]

    def repo_requests(self) -> list[Seen]:
        """Requests other than session management (login, refresh, who-am-I)."""
        return [r for r in self.requests if not r.path.startswith("/xrpc/com.atproto.server.")]

    def posts(self) -> list[dict[str, Any]]:
        return [entry["value"] for entry in self.records.values()]

    def thread(self) -> list[dict[str, Any]]:
        """The newest thread's records (``uri``, ``cid``, ``value``), root first, following
        each part's reply to the one before."""
        roots = [e for e in self.records.values() if "reply" not in e["value"]]
        if not roots:
            return []
        chain = [roots[-1]]
        while True:
            children = [
                e
                for e in self.records.values()
                if e["value"].get("reply", {}).get("parent", {}).get("uri") == chain[-1]["uri"]
            ]
            if not children:
                return chain
            assert len(children) == 1, "a part of the thread has two replies"
            chain.append(children[0])

    # -- answers -------------------------------------------------------------------------

    def error(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
    ) -> Response:
        error = name or ERROR_NAMES.get(status, "InvalidRequest" if status < 500 else "Error")
        return JSONResponse(
            {"error": error, "message": message}, status_code=status, headers=dict(headers or {})
        )

    def _token(self, scope: str, ttl: float) -> str:
        issued = self.now()
        claims = {
            "scope": scope,
            "sub": self.did,
            "aud": "did:web:pds.fake.test",
            "iat": issued,
            "exp": int(issued + ttl),
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def _session_body(self) -> dict[str, Any]:
        return {
            "accessJwt": self._token(ACCESS_SCOPE, self.access_ttl),
            "refreshJwt": self._token(REFRESH_SCOPE, self.refresh_ttl),
            "handle": self.handle,
            "did": self.did,
            "email": "herald@example.org",
            "emailConfirmed": True,
            "active": True,
        }

    def _authorise(self, request: Request, scope: str) -> tuple[dict[str, Any] | None, Response]:
        """``(claims, _)`` for a good bearer token of ``scope``, else ``(None, error)``."""
        refused = self.error(401, "Authentication Required")
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None, refused
        try:
            claims: dict[str, Any] = jwt.decode(
                header.removeprefix("Bearer "),
                self._key,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            return None, self.error(400, "Token could not be verified", name="InvalidToken")
        if claims.get("scope") != scope:
            return None, self.error(400, "Bad token scope", name="InvalidToken")
        if claims["iat"] < self._revoked_before:
            return None, (
                refused
                if scope == ACCESS_SCOPE
                else self.error(400, "Token has been revoked", name="ExpiredToken")
            )
        if claims["exp"] <= self.now():
            return None, self.error(400, "Token has expired", name="ExpiredToken")
        return claims, refused

    async def refused(self, request: Request) -> Response | None:
        """The answer to a request without a good access token, else None."""
        claims, refused = self._authorise(request, ACCESS_SCOPE)
        return refused if claims is None else None

    def _session_limit(self, identifier: str) -> tuple[bool, dict[str, str]]:
        """Count a createSession attempt; ``(over the limit, rate-limit headers)``."""
        now = self.now()
        calls = self._session_calls.setdefault(identifier.lower(), [])
        calls.append(now)
        tightest: tuple[int, int, int, int] | None = None  # remaining, limit, reset, window
        over = False
        for limit, window in SESSION_LIMITS:
            recent = sorted(t for t in calls if t > now - window)
            remaining = max(0, limit - len(recent))
            over = over or len(recent) > limit
            reset = int(recent[0] + window)
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, limit, reset, window)
        assert tightest is not None
        remaining, limit, reset, window = tightest
        headers = {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{limit};w={window}",
        }
        return over, headers

    def _input_problem(
        self, request: Request, nsid: str, body: Any, required: tuple[str, ...]
    ) -> Response | None:
        """The JSON body of a procedure: its encoding, then its lexicon (when the specs
        are there; without them, the required fields at least)."""
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/json":
            return self.check([f"wrong request encoding {kind!r}"], nsid)
        if not isinstance(body, dict):
            return self.check(["the body must be a JSON object"], nsid)
        missing = [f"input.{name}: required" for name in required if name not in body]
        return self.check(missing or lexicon.input_errors(nsid, body), nsid)

    # -- endpoints -----------------------------------------------------------------------

    def rate_limits(self) -> list[FakeLimit]:
        # docs.bsky.app/docs/advanced-guides/rate-limits: 5,000 points per hour per
        # account, a create costs 3. (createSession's 30 per 5 min is kept below, per
        # handle, as the PDS does.)
        return [
            FakeLimit(
                "repo-write",
                5000,
                3600,
                ("com.atproto.repo.createRecord", "com.atproto.repo.applyWrites"),
                key=lambda seen: seen.headers.get("authorization", ""),
                cost=lambda seen: 3,
            )
        ]

    def limit_headers(self, state: LimitState) -> dict[str, str]:
        window = round(state.limit.period / self.rate_scale)
        return {
            "RateLimit-Limit": str(state.limit.capacity),
            "RateLimit-Remaining": str(max(0, math.floor(state.remaining))),
            "RateLimit-Reset": str(math.ceil(state.now + state.reset_in)),
            "RateLimit-Policy": f"{state.limit.capacity};w={window}",
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/xrpc/com.atproto.server.createSession", self.create_session, methods=["POST"]),
            Route(
                "/xrpc/com.atproto.server.refreshSession", self.refresh_session, methods=["POST"]
            ),
            Route("/xrpc/com.atproto.server.getSession", self.get_session, methods=["GET"]),
            Route("/xrpc/com.atproto.repo.uploadBlob", self.upload_blob, methods=["POST"]),
            Route("/xrpc/com.atproto.repo.createRecord", self.create_record, methods=["POST"]),
            Route("/xrpc/com.atproto.repo.getRecord", self.get_record, methods=["GET"]),
        ]

    async def create_session(self, request: Request) -> Response:
        nsid = "com.atproto.server.createSession"
        body = await json_body(request)
        problem = self._input_problem(request, nsid, body, ("identifier", "password"))
        if problem is not None:
            return problem
        identifier = str(body["identifier"])
        over, headers = self._session_limit(identifier)
        if over:
            return self.error(429, "Rate Limit Exceeded", headers)
        if identifier not in (self.handle, self.did) or body["password"] != self.app_password:
            return self.error(401, "Invalid identifier or password", headers)
        self.logins += 1
        return JSONResponse(self._session_body(), headers=headers)

    async def refresh_session(self, request: Request) -> Response:
        claims, refused = self._authorise(request, REFRESH_SCOPE)
        if claims is None:
            return refused
        if claims["jti"] in self._spent:
            return self.error(400, "Token has been revoked", name="ExpiredToken")
        self._spent.add(claims["jti"])
        self.refreshes += 1
        return JSONResponse(self._session_body())

    async def get_session(self, request: Request) -> Response:
        claims, refused = self._authorise(request, ACCESS_SCOPE)
        if claims is None:
            return refused
        return JSONResponse(
            {"handle": self.handle, "did": self.did, "active": True, "emailConfirmed": True}
        )

    @endpoint()
    async def upload_blob(self, request: Request, fault: FakeFault | None) -> Response:
        data = await request.body()
        mime = request.headers.get("content-type", "")
        if not data or "/" not in mime:
            rejected = self.check(["a blob needs a body and its Content-Type"], "uploadBlob")
            assert rejected is not None
            return rejected
        cid = cid_for(data, raw=True)
        self.blobs[cid] = {"mimeType": mime, "size": len(data), "data": data}
        blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}
        return await self.finish(fault, JSONResponse({"blob": blob}))

    @endpoint()
    async def create_record(self, request: Request, fault: FakeFault | None) -> Response:
        nsid = "com.atproto.repo.createRecord"
        body = await json_body(request)
        problem = self._input_problem(request, nsid, body, ("repo", "collection", "record"))
        if problem is not None:
            return problem
        rkey = body.get("rkey") or tid(int(self.now() * 1_000_000))
        record = body["record"]
        errors = []
        if body["repo"] not in (self.did, self.handle):
            errors.append(f"repo {body['repo']!r} is not this session's account")
        if body["collection"] != POST:
            errors.append(f"this fake PDS only holds {POST} records")
        else:
            errors += lexicon.record_errors(POST, record, rkey)
        if not errors:
            try:
                errors += self._post_errors(record)
            except (KeyError, TypeError, AttributeError) as exc:
                errors.append(f"record is malformed ({type(exc).__name__}: {exc})")
        problem = self.check(errors, nsid)
        if problem is not None:
            return problem
        if rkey in self.records:
            # The reference PDS has no error for a taken key yet: it fails the write.
            return self.error(500, "Internal Server Error")
        value_bytes = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        uri, cid = f"at://{self.did}/{POST}/{rkey}", cid_for(value_bytes)
        self.records[rkey] = {"uri": uri, "cid": cid, "value": record}
        rev = tid(int(self.now() * 1_000_000), 1)
        answer = {
            "uri": uri,
            "cid": cid,
            "commit": {"cid": cid_for(rev.encode()), "rev": rev},
            "validationStatus": "valid",
        }
        return await self.finish(fault, JSONResponse(answer))

    @endpoint(auth=False)
    async def get_record(self, request: Request, fault: FakeFault | None) -> Response:
        nsid = "com.atproto.repo.getRecord"
        params = dict(parse_qsl(request.url.query))
        problem = self.check(lexicon.params_errors(nsid, params), nsid)
        if problem is not None:
            return problem
        entry = self.records.get(params["rkey"])
        if (
            entry is None
            or params["collection"] != POST
            or params["repo"] not in (self.did, self.handle)
        ):
            where = f"at://{params['repo']}/{params['collection']}/{params['rkey']}"
            return self.error(400, f"Could not locate record: {where}", name="RecordNotFound")
        return await self.finish(fault, JSONResponse(entry))

    # -- what a schema cannot say ---------------------------------------------------------

    def _post_errors(self, record: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        text_bytes = record["text"].encode()
        if not lexicon.available():
            # The published limits, checked here too when the lexicons are not at hand.
            if graphemes(record["text"]) > 300 or len(text_bytes) > 3000:
                errors.append("text: longer than 300 graphemes or 3000 bytes")
            images = record.get("embed", {}).get("images", [])
            if len(images) > 4 or any(i["image"]["size"] > 2_000_000 for i in images):
                errors.append("embed.images: more than 4, or one larger than 2,000,000 bytes")
        for number, facet in enumerate(record.get("facets", [])):
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            if not 0 <= start < end <= len(text_bytes):
                errors.append(f"facets.{number}: bytes {start}..{end} are outside the text")
                continue
            try:
                covered = text_bytes[start:end].decode()
            except UnicodeDecodeError:
                errors.append(f"facets.{number}: bytes {start}..{end} cut a character")
                continue
            for feature in facet["features"]:
                link = feature.get("uri")
                if feature.get("$type") == "app.bsky.richtext.facet#link" and link != covered:
                    errors.append(f"facets.{number}: covers {covered!r}, not the link {link!r}")
        reply = record.get("reply")
        if reply is not None:
            for role in ("root", "parent"):
                ref = reply[role]
                held = [e for e in self.records.values() if e["uri"] == ref["uri"]]
                if not held or held[0]["cid"] != ref["cid"]:
                    errors.append(f"reply.{role}: no record {ref['uri']} with CID {ref['cid']}")
            parent = [e for e in self.records.values() if e["uri"] == reply["parent"]["uri"]]
            if parent:
                parent_root = parent[0]["value"].get("reply", {}).get("root", reply["parent"])
                if parent_root["uri"] != reply["root"]["uri"]:
                    errors.append("reply.root: is not the root of the parent's thread")
        embed = record.get("embed")
        if embed is not None and embed.get("$type") == "app.bsky.embed.images":
            for number, image in enumerate(embed["images"]):
                blob = image["image"]
                held_blob = self.blobs.get(blob["ref"]["$link"])
                if held_blob is None:
                    errors.append(f"embed.images.{number}: no blob {blob['ref']['$link']}")
                elif (held_blob["mimeType"], held_blob["size"]) != (blob["mimeType"], blob["size"]):
                    errors.append(f"embed.images.{number}: type or size differ from the upload")
        return errors
