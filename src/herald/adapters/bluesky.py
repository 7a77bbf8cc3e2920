"""Bluesky: posts (threads, link facets, images) through the account's PDS over XRPC.

Logging in: ``com.atproto.server.createSession`` with the handle and an app password
gives an access JWT (about two hours) and a refresh JWT (about two months). Bluesky
allows 30 logins per 5 minutes and 300 a day per account, so the session is kept in the
channel store and shared by every delivery: an access token about to expire (its
``exp``) or answered with ``ExpiredToken`` is renewed with
``com.atproto.server.refreshSession``; only when the refresh is refused does Herald log in
again. A worker process logs in to one account once at a time: a burst of first
deliveries waits for one login and shares its session (workers on other hosts each log in
once).

Posting: ``com.atproto.repo.createRecord`` of an ``app.bsky.feed.post`` record. Text is
at most 300 graphemes and 3000 UTF-8 bytes; longer text becomes a thread of replies.
Links are not detected by the platform: each URL gets a link facet whose indices are
UTF-8 *byte* offsets. Images are uploaded with ``com.atproto.repo.uploadBlob`` and
attached to the first part (at most 4, each at most 2,000,000 bytes, with alt text).

Idempotency: Herald names every record itself (its record key, a TID) and saves the
names in the delivery's progress before anything is sent. A resend reuses them, and a
repository holds one record per key, so a resend cannot make a second post; a part whose
create got no clear answer is looked up with ``com.atproto.repo.getRecord`` first.

Why one module over 500 lines: the session, rich-text facets, threads and blob uploads
are one API's rules that refer to each other, kept together as every adapter is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import Field, HttpUrl, StringConstraints, field_validator

from herald.adapters import base
from herald.adapters.http import (
    MAX_MESSAGE,
    HttpAdapter,
    HttpSettings,
    is_retryable_status,
    retry_after_seconds,
)
from herald.adapters.registry import register
from herald.adapters.text import (
    find_urls,
    graphemes,
    markdown_to_text,
    short_variant,
    split_thread,
)

PUBLIC_SERVICE = "https://bsky.social"
APP_URL = "https://bsky.app"
POST = "app.bsky.feed.post"
LINK = "app.bsky.richtext.facet#link"
IMAGES = "app.bsky.embed.images"

# From the app.bsky.feed.post and app.bsky.embed.images lexicons.
MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 2_000_000
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

# Renew the access token this long before its ``exp``, so it does not lapse in flight.
EXPIRY_MARGIN = 60.0

# Errors that mean "these credentials or this session no longer work" whatever the status.
AUTH_ERRORS = frozenset(
    {
        "AuthenticationRequired",
        "AuthFactorTokenRequired",
        "AccountTakedown",
        "AccountDeactivated",
        "InvalidToken",
        "ExpiredToken",
    }
)
# Bluesky's app passwords look like this; an account password almost never does.
APP_PASSWORD = re.compile(r"^[a-z0-9]{4}(-[a-z0-9]{4}){3}$")

Language = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$")]


class BlueskyCredentials(base.StrictModel):
    identifier: str = Field(
        min_length=3,
        max_length=253,
        description="The account's handle (alice.bsky.social) or DID (did:plc:…).",
    )
    app_password: str = Field(
        description=(
            "An app password (xxxx-xxxx-xxxx-xxxx) from Settings → Privacy and security → "
            "App passwords; never the account's own password."
        )
    )
    service: HttpUrl = Field(
        HttpUrl(PUBLIC_SERVICE),
        description="The account's PDS or entryway; https://bsky.social for Bluesky accounts.",
    )

    @field_validator("identifier")
    @classmethod
    def _bare_identifier(cls, value: str) -> str:
        return value.strip().removeprefix("@")

    @field_validator("app_password")
    @classmethod
    def _is_app_password(cls, value: str) -> str:
        value = value.strip().lower()
        if not APP_PASSWORD.match(value):
            raise ValueError(
                "must be an app password (xxxx-xxxx-xxxx-xxxx, from Settings → Privacy and "
                "security → App passwords), not the account's password"
            )
        return value


class BlueskySettings(HttpSettings):
    langs: list[Language] = Field(
        default_factory=list,
        max_length=3,
        description="Languages of the posts' text (BCP-47 codes such as 'en'), at most 3.",
    )
    link_to_original: bool = Field(
        True, description="End the post with its canonical URL when the text lacks it."
    )
    thread_numbering: bool = Field(
        True, description="End each part of a thread with its number, as ' 1/3'."
    )


# -- record keys ------------------------------------------------------------------------

_BASE32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"
_CLOCK_ID = secrets.randbelow(1024)  # per process, so two workers never make the same TID
_tid_lock = threading.Lock()

# One lock per account (the credentials' fingerprint) for logging in, in this process,
# and the last login's session with a count, for the deliveries that waited for it.
_login_locks: dict[str, threading.Lock] = {}
_login_locks_guard = threading.Lock()
_logged_in: dict[str, tuple[int, dict[str, Any]]] = {}


def _login_lock(fingerprint: str) -> threading.Lock:
    with _login_locks_guard:
        return _login_locks.setdefault(fingerprint, threading.Lock())


_last_micros = 0


def next_tid() -> str:
    """A new timestamp identifier: microseconds since 1970 and a clock id, base32-sortable,
    13 characters, increasing within this process."""
    global _last_micros  # noqa: PLW0603
    with _tid_lock:
        micros = max(time.time_ns() // 1000, _last_micros + 1)
        _last_micros = micros
    value = (micros << 10) | _CLOCK_ID
    return "".join(_BASE32_SORTABLE[(value >> shift) & 31] for shift in range(60, -1, -5))


# -- text -------------------------------------------------------------------------------


def link_facets(text: str) -> list[dict[str, Any]]:
    """A link facet for every URL in ``text``; indices are UTF-8 byte offsets."""
    facets: list[dict[str, Any]] = []
    for start, end in find_urls(text):
        byte_start = len(text[:start].encode())
        uri = text[start:end]
        facets.append(
            {
                "index": {"byteStart": byte_start, "byteEnd": byte_start + len(uri.encode())},
                "features": [{"$type": LINK, "uri": uri}],
            }
        )
    return facets


def _token_expiry(token: str) -> float | None:
    """A JWT's ``exp``, read without checking the signature (only the PDS can)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    return float(expiry) if isinstance(expiry, int | float) else None


def _expires_soon(token: str) -> bool:
    expiry = _token_expiry(token)
    return expiry is not None and expiry - EXPIRY_MARGIN <= time.time()


# -- XRPC answers -------------------------------------------------------------------------


def _xrpc_error(response: httpx.Response) -> tuple[str, str]:
    """``(error, message)`` from an XRPC error body ``{"error": …, "message": …}``."""
    try:
        data = response.json()
    except ValueError:
        return "", response.text.strip()[:MAX_MESSAGE]
    if not isinstance(data, dict):
        return "", ""
    error, message = data.get("error"), data.get("message")
    return (
        error if isinstance(error, str) else "",
        message[:MAX_MESSAGE] if isinstance(message, str) else "",
    )


def _raise_for_xrpc(response: httpx.Response, nsid: str) -> None:
    status = response.status_code
    if status < 300:
        return
    error, message = _xrpc_error(response)
    text = f"bluesky {nsid} answered {status}"
    text += f" {error}" if error else f" {response.reason_phrase}"
    if message:
        text += f": {message}"
    if error == "AuthFactorTokenRequired":
        text += " (the account asks for an emailed code; an app password does not need one)"
    if status in (401, 403) or error in AUTH_ERRORS:
        raise base.AuthError(text)
    if is_retryable_status(status):
        raise base.RetryableError(text, retry_after=retry_after_seconds(response))
    raise base.PermanentError(text)


def _json(response: httpx.Response, nsid: str, *, may_post: bool = False) -> Any:
    try:
        return response.json()
    except ValueError:
        message = f"bluesky {nsid} answered {response.status_code} without JSON"
        if may_post:
            raise base.AmbiguousError(
                f"{message}; the post may or may not have been made"
            ) from None
        raise base.PermanentError(message) from None


def _strong_ref(data: Any, nsid: str) -> dict[str, str]:
    if not isinstance(data, dict):
        raise base.PermanentError(f"bluesky {nsid} answered without a record reference")
    uri, cid = data.get("uri"), data.get("cid")
    if not isinstance(uri, str) or not isinstance(cid, str):
        raise base.PermanentError(f"bluesky {nsid} answered without the record's uri and cid")
    return {"uri": uri, "cid": cid}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@register
class BlueskyAdapter(HttpAdapter[BlueskyCredentials, BlueskySettings]):
    platform = "bluesky"
    length_unit = "graphemes"
    display_name = "Bluesky"
    credentials_model = BlueskyCredentials
    settings_model = BlueskySettings
    # 300 graphemes per post and 4 images of at most 2,000,000 bytes: the app.bsky.feed.post
    # and app.bsky.embed.images lexicons. Writes: 5,000 points an hour per account, a
    # create costing 3 (docs.bsky.app/docs/advanced-guides/rate-limits): 1,666 posts an
    # hour, 27 a minute.
    limits = base.Limits(
        max_length=MAX_GRAPHEMES,
        max_media=MAX_IMAGES,
        max_media_bytes=MAX_IMAGE_BYTES,
        requests_per_minute=27,
        buckets=(
            # docs.bsky.app/docs/advanced-guides/rate-limits: 5,000 points per hour and
            # 35,000 per day per account (DID); a CREATE costs 3 points (a post, each
            # part of a thread). The PDS answers ratelimit-* headers on the write.
            base.Bucket(
                "writes",
                5000,
                3600,
                base.Scope.ACCOUNT,
                cost=3,
                corrected_by=("com.atproto.repo.createRecord", "com.atproto.repo.applyWrites"),
                source="docs.bsky.app/docs/advanced-guides/rate-limits "
                "(5,000 points per hour per account; a create costs 3)",
            ),
            base.Bucket(
                "writes-daily",
                35000,
                24 * 3600,
                base.Scope.ACCOUNT,
                cost=3,
                source="docs.bsky.app/docs/advanced-guides/rate-limits "
                "(35,000 points per day per account)",
            ),
            # createSession: 30 per 5 minutes per handle. A delivery logs in only when its
            # cached session is gone, so it costs nothing here; a 429 on login blocks it.
            base.Bucket(
                "login",
                30,
                5 * 60,
                base.Scope.ACCOUNT,
                cost=0,
                corrected_by=("com.atproto.server.createSession",),
                source="docs.bsky.app/docs/advanced-guides/rate-limits "
                "(createSession: 30 per 5 min per handle)",
            ),
        ),
    )
    # The PDS does not take an idempotency key, but Herald chooses every record key
    # before the first send and keeps it in the delivery's progress; a resend reuses it,
    # and a repository cannot hold two records under one key. So a resend after an
    # ambiguous failure cannot post twice (the part is looked up with getRecord before it
    # is sent again). find_existing works as well, from the same progress.
    honours_idempotency_key: ClassVar[bool] = True

    def budget_scope(self, scope: base.Scope) -> str | None:
        service = str(self.credentials.service).rstrip("/")
        return f"{service}|{self.credentials.identifier.lower()}"

    def __init__(
        self,
        credentials: BlueskyCredentials,
        settings: BlueskySettings,
        store: base.ChannelStore | None = None,
    ) -> None:
        super().__init__(credentials, settings, store)
        self._login_session: dict[str, Any] | None = None  # what this instance last used
        self.logins = 0  # createSession calls made by this instance
        # This process's logins to the account so far: one made later is newer than
        # anything this adapter reads from its store.
        self._logins_before = _logged_in.get(self._fingerprint(), (0, None))[0]

    def measure(self, text: str) -> int:
        # Graphemes; the second limit (3000 UTF-8 bytes) only binds for text made of long
        # emoji sequences, so it counts as a tenth of the bytes when that is more.
        return max(graphemes(text), -(-len(text.encode()) // (MAX_TEXT_BYTES // MAX_GRAPHEMES)))

    # -- XRPC ---------------------------------------------------------------------------

    @property
    def _service(self) -> str:
        return str(self.credentials.service).rstrip("/")

    def _exchange(
        self,
        method: str,
        nsid: str,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        may_post: bool = False,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = self.build_request(
            method,
            f"{self._service}/xrpc/{nsid}",
            params=params,
            json=body,
            content=content,
            headers=headers,
        )
        # The answer whatever its status: the XRPC error name decides what it means
        # (ExpiredToken asks for a refresh, not a reconnection). Only createRecord can
        # leave a post behind, so only it may_post.
        return self.transmit(request, may_post=may_post)

    def _authed(self, method: str, nsid: str, **kwargs: Any) -> httpx.Response:
        """An authenticated call, renewing an expired access token once; the answer is
        returned whatever its status."""
        session = self._session()
        response = self._exchange(method, nsid, token=session["accessJwt"], **kwargs)
        if response.status_code in (400, 401) and _xrpc_error(response)[0] == "ExpiredToken":
            session = self._refresh(session)
            response = self._exchange(method, nsid, token=session["accessJwt"], **kwargs)
        if response.status_code == 401:
            # Revoked (an app password deleted, say): the next attempt starts with a login.
            self._forget_session()
        return response

    def _call(self, method: str, nsid: str, **kwargs: Any) -> Any:
        response = self._authed(method, nsid, **kwargs)
        _raise_for_xrpc(response, nsid)
        return _json(response, nsid)

    # -- the session ----------------------------------------------------------------------

    def _fingerprint(self) -> str:
        """Which credentials a cached session belongs to (kept in the encrypted store)."""
        material = "\n".join(
            (self._service, self.credentials.identifier, self.credentials.app_password)
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def _stored_session(self, *, fresh: bool = False) -> dict[str, Any] | None:
        session = self.store.session(fresh=fresh)
        if not session or session.get("fingerprint") != self._fingerprint():
            return None
        if not all(isinstance(session.get(k), str) for k in ("accessJwt", "refreshJwt", "did")):
            return None
        return session

    def _session(self) -> dict[str, Any]:
        """A usable session: the cached one, renewed when its access token expires soon,
        or a new login when there is none."""
        session = self._login_session or self._stored_session()
        if session is None:
            return self._login()
        if _expires_soon(session["accessJwt"]):
            return self._refresh(session)
        self._login_session = session
        return session

    def _keep(self, data: Any, nsid: str) -> dict[str, Any]:
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) for k in ("accessJwt", "refreshJwt", "did", "handle")
        ):
            raise base.PermanentError(f"bluesky {nsid} answered without a session")
        session = {
            "did": data["did"],
            "handle": data["handle"],
            "accessJwt": data["accessJwt"],
            "refreshJwt": data["refreshJwt"],
            "fingerprint": self._fingerprint(),
        }
        self.store.save_session(session)
        self._login_session = session
        return session

    def _forget_session(self) -> None:
        self._login_session = None
        self.store.save_session(None)

    def _login(self, failed: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new session, one login per account at a time in this process: a burst of
        first deliveries (each adapter finds no session) waits for one login and takes
        the session it got, instead of spending one of the account's 30 logins per 5
        minutes each. ``failed``: the session whose refresh was refused (not to be taken
        again)."""
        fingerprint = self._fingerprint()
        with _login_lock(fingerprint):
            number, current = _logged_in.get(fingerprint, (0, None))
            if (
                number > self._logins_before
                and current is not None
                and (failed is None or current["accessJwt"] != failed["accessJwt"])
                and not _expires_soon(current["accessJwt"])
            ):
                # Logged in since this adapter was built (so since it read the store):
                # stored again with this delivery's own saves.
                self.store.save_session(current)
                self._login_session = current
                return current
            nsid = "com.atproto.server.createSession"
            body = {
                "identifier": self.credentials.identifier,
                "password": self.credentials.app_password,
            }
            self.logins += 1
            response = self._exchange("POST", nsid, body=body)
            _raise_for_xrpc(response, nsid)
            session = self._keep(_json(response, nsid), nsid)
            _logged_in[fingerprint] = (number + 1, session)
            return session

    def _refresh(self, stale: dict[str, Any]) -> dict[str, Any]:
        # Another delivery may have renewed it meanwhile (the refresh token rotates).
        current = self._stored_session(fresh=True)
        if (
            current is not None
            and current["accessJwt"] != stale["accessJwt"]
            and not _expires_soon(current["accessJwt"])
        ):
            self._login_session = current
            return current
        nsid = "com.atproto.server.refreshSession"
        response = self._exchange("POST", nsid, token=stale["refreshJwt"])
        try:
            _raise_for_xrpc(response, nsid)
        except (base.AuthError, base.PermanentError):
            # The refresh token expired or was revoked: log in again, once.
            return self._login(failed=stale)
        return self._keep(_json(response, nsid), nsid)

    # -- verify -------------------------------------------------------------------------

    def verify(self) -> base.Identity:
        # A login made here is stored once, with the outcome (see ChannelStore.batch).
        with self.store.batch():
            return self._verify()

    def _verify(self) -> base.Identity:
        nsid = "com.atproto.server.getSession"
        logins = self.logins
        try:
            data = self._call("GET", nsid)
        except base.AuthError:
            if self.logins != logins:
                raise  # the credentials themselves were refused
            # A revoked cached session says nothing about the credentials: try them.
            self._forget_session()
            data = self._call("GET", nsid)
        if not isinstance(data, dict) or not isinstance(data.get("handle"), str):
            raise base.PermanentError(f"bluesky {nsid} answered without a handle")
        if data.get("active") is False:
            raise base.AuthError(
                f"the Bluesky account is not active ({data.get('status') or 'no reason given'})"
            )
        return base.Identity(
            name=f"@{data['handle']}", detail={"did": data.get("did"), "handle": data["handle"]}
        )

    # -- render -------------------------------------------------------------------------

    def render(self, post: base.PostContent) -> base.Rendition:
        title = post.title.strip()
        text = short_variant(post.short_body)
        if not text:
            body = markdown_to_text(post.body)
            pieces = [title] if title and not body.startswith(title) else []
            if body:
                pieces.append(body)
            text = "\n\n".join(pieces)
        canonical = post.canonical_url
        if self.settings.link_to_original and canonical and canonical not in text:
            text = f"{text}\n\n{canonical}" if text else canonical
        parts = split_thread(
            text, MAX_GRAPHEMES, measure=self.measure, numbering=self.settings.thread_numbering
        )
        usable = [m for m in post.media if m.content_type in IMAGE_TYPES]
        usable = [m for m in usable if m.size <= MAX_IMAGE_BYTES]
        media = tuple(usable[:MAX_IMAGES])
        extra: dict[str, Any] = {}
        left_out = [m.filename for m in post.media if m not in media]
        if left_out:
            extra["media_left_out"] = left_out
        return base.Rendition(
            format="text",
            parts=tuple(parts) or ("",),
            title=title or None,
            extra=extra,
            media=media,
        )

    # -- publish ------------------------------------------------------------------------

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        # Progress and logins are stored at each checkpoint (a login also at the end, if
        # it changed), not at every step: one write transaction per part.
        with self.store.batch():
            return self._publish(rendition, idempotency_key)

    def _publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        progress = self.store.progress(idempotency_key) or {}
        kept = base.receipt_in(progress)
        if kept is not None:
            return kept
        repo = progress.get("repo") or self._session()["did"]
        rkeys: list[str] = list(progress.get("rkeys", []))
        while len(rkeys) < len(rendition.parts):
            rkeys.append(next_tid())
        posted: list[dict[str, str]] = list(progress.get("posted", []))
        pending = progress.get("pending")
        progress = {"repo": repo, "rkeys": rkeys, "posted": posted}
        self.store.save_progress(idempotency_key, progress)
        for index in range(len(posted), len(rendition.parts)):
            ref = self._lookup(repo, rkeys[index]) if pending == index else None
            if ref is None:
                record = self._record(rendition, index, posted)
                progress["pending"] = index
                self.store.save_progress(idempotency_key, progress)
                # Stored before the create goes out: a resend after a crash reuses the
                # record keys and looks this part up first, so it cannot post twice.
                self.store.checkpoint()
                ref = self._create(repo, rkeys[index], record)
            posted.append(ref)
            progress.pop("pending", None)
            self.store.save_progress(idempotency_key, progress)
        return self._finish(idempotency_key, progress)

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        with self.store.batch():
            return self._find_existing(rendition, idempotency_key)

    def _find_existing(
        self, rendition: base.Rendition, idempotency_key: str
    ) -> base.Receipt | None:
        progress = self.store.progress(idempotency_key)
        if not progress:
            return None  # nothing was ever sent under this key
        kept = base.receipt_in(progress)
        if kept is not None:
            return kept
        posted = list(progress.get("posted", []))
        pending = progress.get("pending")
        # Only a post whose last part may be there is whole; otherwise publish carries on.
        if pending is None or pending != len(posted) or pending != len(rendition.parts) - 1:
            return None
        ref = self._lookup(progress["repo"], progress["rkeys"][pending])
        if ref is None:
            return None
        posted.append(ref)
        progress["posted"] = posted
        progress.pop("pending", None)
        return self._finish(idempotency_key, progress)

    def _finish(self, idempotency_key: str, progress: dict[str, Any]) -> base.Receipt:
        posted = progress["posted"]
        root = posted[0]
        rkey = root["uri"].rsplit("/", 1)[-1]
        receipt = base.Receipt(
            external_id=root["uri"],
            url=f"{APP_URL}/profile/{progress['repo']}/post/{rkey}",
            data={"cid": root["cid"], "parts": [ref["uri"] for ref in posted]},
        )
        self.store.save_receipt(idempotency_key, receipt, progress)
        return receipt

    def _record(
        self, rendition: base.Rendition, index: int, posted: list[dict[str, str]]
    ) -> dict[str, Any]:
        text = rendition.parts[index]
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": _now()}
        if self.settings.langs:
            record["langs"] = list(self.settings.langs)
        facets = link_facets(text)
        if facets:
            record["facets"] = facets
        if posted:
            record["reply"] = {"root": posted[0], "parent": posted[-1]}
        if index == 0 and rendition.media:
            images = [self._image(item) for item in rendition.media[:MAX_IMAGES]]
            record["embed"] = {"$type": IMAGES, "images": images}
        return record

    def _image(self, item: base.MediaItem) -> dict[str, Any]:
        nsid = "com.atproto.repo.uploadBlob"
        data = self._call("POST", nsid, content=item.read(), content_type=item.content_type)
        blob = data.get("blob") if isinstance(data, dict) else None
        if not isinstance(blob, dict):
            raise base.PermanentError(f"bluesky {nsid} answered without a blob")
        image: dict[str, Any] = {"alt": item.alt_text, "image": blob}
        if item.width and item.height:
            image["aspectRatio"] = {"width": item.width, "height": item.height}
        return image

    def _create(self, repo: str, rkey: str, record: dict[str, Any]) -> dict[str, str]:
        nsid = "com.atproto.repo.createRecord"
        body = {"repo": repo, "collection": POST, "rkey": rkey, "record": record}
        response = self._authed("POST", nsid, body=body, may_post=True)
        if response.status_code == 409 or _xrpc_error(response)[0] == "RecordAlreadyExists":
            # Newer PDSes name a taken key; it can only be this delivery's own record.
            found = self._lookup(repo, rkey)
            if found is not None:
                return found
        _raise_for_xrpc(response, nsid)
        return _strong_ref(_json(response, nsid, may_post=True), nsid)

    def _lookup(self, repo: str, rkey: str) -> dict[str, str] | None:
        """The record this delivery sent under ``rkey``, if the PDS has it."""
        nsid = "com.atproto.repo.getRecord"
        params = {"repo": repo, "collection": POST, "rkey": rkey}
        response = self._authed("GET", nsid, params=params)
        if response.status_code == 400:
            error, message = _xrpc_error(response)
            # Older PDSes say InvalidRequest "Could not locate record: at://…".
            if error == "RecordNotFound" or message.startswith("Could not locate record"):
                return None
        _raise_for_xrpc(response, nsid)
        return _strong_ref(_json(response, nsid), nsid)
