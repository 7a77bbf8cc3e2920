"""X (formerly Twitter): posts and threads through the X API v2, as the signed-in user.

- Auth: an OAuth 2.0 user access token (``Authorization: Bearer``), which lives about two
  hours. It is refreshed when ``expires_at`` says it has expired or when X answers 401,
  then the call is made once more. X's refresh tokens are single-use: every refresh
  returns a new pair, which goes through ``ChannelStore.refresh_credentials`` (stored
  before the new access token is used; a worker that finds the pair already replaced
  uses that one). A refresh X refuses is an ``AuthError``: the channel needs reconnecting.
- Length: 280 *weighted* characters per post (:func:`weighted_length`); longer text is
  split with ``split_thread`` and goes out as a thread (``reply.in_reply_to_tweet_id``).
- Media: up to 4 images (JPEG, PNG, WebP; 5 MB each) through ``POST /2/media/upload``,
  with alt text through ``POST /2/media/metadata``, attached to the first post.
- X takes no idempotency key. Progress is saved after each post of a thread, and a
  marker before each one; after a timeout, the user's timeline is searched for that
  part's text (``find_existing``), so a retry never posts a part twice.
- Errors: X uses 403 both for permissions (AuthError) and for content it refuses, such
  as duplicate text (PermanentError, in X's words). 429 waits until the exhausted
  window's ``x-*-reset`` epoch. X's messages sit in ``errors[].message`` or ``detail``.

Why one module over 500 lines: single-use refresh tokens, weighted length and the media
upload are one API's rules that refer to each other, kept together as every adapter is.
"""

from __future__ import annotations

import base64
import html
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import regex
from pydantic import Field, field_validator

from herald.adapters import base
from herald.adapters.http import (
    MAX_MESSAGE,
    HttpAdapter,
    HttpSettings,
    error_message,
    is_retryable_status,
    retry_after_seconds,
)
from herald.adapters.registry import register
from herald.adapters.text import find_urls, markdown_to_text, short_variant, split_thread
from herald.core.clock import utcnow

PLATFORM = "X"
DEFAULT_API_BASE = "https://api.x.com"
# https://docs.x.com/fundamentals/counting-characters and twitter-text's config v3:
# 280 weighted characters; a URL counts as its t.co link, 23.
MAX_WEIGHTED_LENGTH = 280
TRANSFORMED_URL_LENGTH = 23
# Code points in these ranges weigh 1; everything else 2 (twitter-text v3 "ranges").
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")
# A domain without a scheme ("example.com/page"), which X may also turn into a t.co link.
_BARE_DOMAIN = re.compile(
    r"(?<![\w@./-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b(?:/\S*)?", re.IGNORECASE
)
# docs.x.com/x-api/media/quickstart/best-practices: up to 4 images per post; the one-shot
# upload takes JPEG, PNG and WebP (animated GIFs need the chunked tweet_gif flow).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
MAX_IMAGES = 4
# docs.x.com/x-api/media/quickstart/media-upload-chunked: images up to 5 MB.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_ALT_TEXT = 1000  # CreateMediaMetadataMetadataAltText.text maxLength
# Refresh a little before expires_at, so a token does not expire on the way.
REFRESH_MARGIN = timedelta(seconds=60)
# How far before our own clock a post may be stamped by X's (lookups after a timeout).
CLOCK_SLACK = timedelta(minutes=2)
# 403s that are about the post itself, not about the token or the app's permissions.
_CONTENT_REFUSAL = re.compile(
    r"duplicate content|too long|deleted or not visible|not allowed to reply", re.IGNORECASE
)
# The rate-limit families X sends, each as <prefix>-limit/-remaining/-reset (epoch s).
_RATE_LIMIT_FAMILIES = ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour")


def _code_point_weight(char: str) -> int:
    point = ord(char)
    return 1 if any(low <= point <= high for low, high in _LIGHT_RANGES) else 2


def _plain_weight(text: str) -> int:
    total = 0
    for grapheme in regex.findall(r"\X", text):
        # An emoji counts 2 however many code points (modifiers, ZWJ, flags) it takes.
        if _EMOJI.search(grapheme):
            total += 2
        else:
            total += sum(_code_point_weight(char) for char in grapheme)
    return total


def _weight_without_scheme(text: str) -> int:
    # A bare domain counts 23 if X links it, else its own length: count the larger.
    total = 0
    position = 0
    for match in _BARE_DOMAIN.finditer(text):
        total += _plain_weight(text[position : match.start()])
        total += max(TRANSFORMED_URL_LENGTH, _plain_weight(match.group()))
        position = match.end()
    return total + _plain_weight(text[position:])


def weighted_length(text: str) -> int:
    """A post's length as X counts it: NFC code points weighted 1 or 2, an emoji
    sequence 2, every URL 23.

    Where X's own URL detection may differ from ours, this errs long: X ends a URL at its
    first non-ASCII character, so what follows counts as text too; a domain without a
    scheme counts as the larger of 23 and its own length.
    """
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    for start, end in find_urls(text):
        total += _weight_without_scheme(text[position:start])
        url = text[start:end]
        ascii_end = next((i for i, char in enumerate(url) if not char.isascii()), len(url))
        total += TRANSFORMED_URL_LENGTH + _plain_weight(url[ascii_end:])
        position = end
    return total + _weight_without_scheme(text[position:])


def _comparable(text: str) -> str:
    """Text as sent and text as X shows it back (URLs as t.co links, ``&amp;``) agree."""
    text = unicodedata.normalize("NFC", html.unescape(text))
    return " ".join(re.sub(r"https?://\S+", "<url>", text, flags=re.IGNORECASE).split())


class XCredentials(base.StrictModel):
    access_token: str = Field(
        min_length=1, description="OAuth 2.0 user access token (sent as Authorization: Bearer)."
    )
    refresh_token: str = Field(
        min_length=1,
        description="OAuth 2.0 refresh token (needs the offline.access scope). Single-use: "
        "Herald stores the new one X returns on every refresh.",
    )
    client_id: str = Field(
        min_length=1,
        description="The app's OAuth 2.0 Client ID (developer console → your app → "
        "Keys and tokens).",
    )
    client_secret: str | None = Field(
        None,
        description="OAuth 2.0 Client Secret, for a confidential client (Web App, "
        "Automated App or Bot): refreshes then use HTTP Basic. Leave out for a Native App.",
    )
    expires_at: datetime | None = Field(
        None,
        description="When the access token expires (ISO 8601). Unknown: Herald refreshes "
        "when X answers 401.",
    )
    api_base: str = Field(
        DEFAULT_API_BASE,
        pattern=r"^https?://\S+$",
        description="X API base URL; change only to point Herald at a test server.",
    )

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without a zone is taken as UTC, as X's own timestamps are.
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class XSettings(HttpSettings):
    include_title: bool = Field(
        True, description="Start with the post's title as a paragraph of its own."
    )
    link_canonical: bool = Field(
        True,
        description="End with the post's canonical URL when the text does not contain it.",
    )
    numbering: bool = Field(True, description="End each part of a thread with i/n.")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds until the exhausted window resets: the 15-minute one, or a 24-hour cap."""
    exhausted: list[float] = []
    present: list[float] = []
    for family in _RATE_LIMIT_FAMILIES:
        try:
            reset = float(response.headers[f"{family}-reset"])
        except (KeyError, ValueError):
            continue
        present.append(reset)
        if response.headers.get(f"{family}-remaining", "0").strip() == "0":
            exhausted.append(reset)
    resets = exhausted or present
    if not resets:
        return retry_after_seconds(response)
    return max(0.0, max(resets) - utcnow().timestamp())


@register
class XAdapter(HttpAdapter[XCredentials, XSettings]):
    platform = "x"
    length_unit = "weighted characters (URLs count 23)"
    display_name = "X (Twitter)"
    name_in_errors = PLATFORM
    credentials_model = XCredentials
    settings_model = XSettings
    limits = base.Limits(
        max_length=MAX_WEIGHTED_LENGTH,
        max_media=MAX_IMAGES,
        max_media_bytes=MAX_IMAGE_BYTES,
        # docs.x.com/x-api/fundamentals/rate-limits: POST /2/tweets, 100 per 15 min per user.
        requests_per_minute=6,
        buckets=(
            # A channel is one user. Its x-rate-limit-* headers come back on every call.
            base.Bucket(
                "posts",
                100,
                15 * 60,
                base.Scope.CHANNEL,
                corrected_by=("/2/tweets",),
                source="docs.x.com/x-api/fundamentals/rate-limits "
                "(POST /2/tweets: 100 per 15 min per user)",
            ),
        ),
    )

    def measure(self, text: str) -> int:
        return weighted_length(text)

    # -- render ---------------------------------------------------------------------------

    def render(self, post: base.PostContent) -> base.Rendition:
        text = short_variant(post.short_body)
        if not text:
            paragraphs: list[str] = []
            if self.settings.include_title and post.title.strip():
                paragraphs.append(post.title.strip())
            body = markdown_to_text(post.body)
            if body:
                paragraphs.append(body)
            text = "\n\n".join(paragraphs)
        if self.settings.link_canonical and post.canonical_url and post.canonical_url not in text:
            text = f"{text}\n\n{post.canonical_url}" if text else post.canonical_url
        parts = split_thread(
            text, MAX_WEIGHTED_LENGTH, measure=self.measure, numbering=self.settings.numbering
        )
        media = tuple(
            item
            for item in post.media
            if item.content_type in IMAGE_TYPES and item.size <= MAX_IMAGE_BYTES
        )[:MAX_IMAGES]
        if not parts and not media:
            raise base.PermanentError("nothing to post on X: the post has no text and no images")
        # A post of images only goes out with empty text, which X accepts.
        return base.Rendition(format="text", parts=tuple(parts) or ("",), media=media)

    # -- verify ---------------------------------------------------------------------------

    def verify(self) -> base.Identity:
        user = self._me()
        return base.Identity(
            name=f"@{user.get('username', '?')}",
            detail={"id": user.get("id"), "name": user.get("name")},
        )

    def _me(self) -> dict[str, Any]:
        data = self._call("GET", "/2/users/me").get("data")
        if not isinstance(data, dict) or not data.get("id"):
            raise base.RetryableError("X's answer to /2/users/me had no user")
        self.store.save_session({"user_id": str(data["id"]), "username": data.get("username")})
        return data

    def _user_id(self) -> str:
        session = self.store.session() or {}
        return str(session.get("user_id") or self._me()["id"])

    # -- publish --------------------------------------------------------------------------

    def publish(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt:
        done = self.store.receipt(idempotency_key)
        if done is not None:
            return done
        ids = self._resume(rendition, idempotency_key)
        if len(ids) < len(rendition.parts):
            # Images go with the first post; uploaded again if an earlier attempt stopped
            # before it (an unused upload expires on X's side).
            media_ids = [self._upload(item) for item in rendition.media] if not ids else []
            for index in range(len(ids), len(rendition.parts)):
                ids.append(self._post_part(rendition, index, ids, media_ids, idempotency_key))
        return self._finish(idempotency_key, ids)

    def find_existing(self, rendition: base.Rendition, idempotency_key: str) -> base.Receipt | None:
        if not self.store.progress(idempotency_key):
            return None  # nothing was ever sent with this key
        done = self.store.receipt(idempotency_key)
        if done is not None:
            return done
        ids = self._resume(rendition, idempotency_key)
        if not ids or len(ids) < len(rendition.parts):
            return None
        return self._finish(idempotency_key, ids)

    def _post_part(
        self,
        rendition: base.Rendition,
        index: int,
        ids: list[str],
        media_ids: list[str],
        key: str,
    ) -> str:
        body: dict[str, Any] = {"text": rendition.parts[index]}
        if index == 0 and media_ids:
            body["media"] = {"media_ids": media_ids}
        if ids:
            body["reply"] = {"in_reply_to_tweet_id": ids[-1]}
        # Marks a send in flight: if no answer comes, _resume looks for this part.
        sent_at = utcnow().isoformat()
        self.store.save_progress(key, {"ids": ids, "pending": {"index": index, "at": sent_at}})
        try:
            data = self._call("POST", "/2/tweets", json=body, creates=True)
        except (base.RetryableError, base.PermanentError, base.AuthError):
            self.store.save_progress(key, {"ids": ids})  # X said no: nothing was posted
            raise
        post = data.get("data")
        if not isinstance(post, dict) or not post.get("id"):
            raise base.AmbiguousError("X accepted the post but its answer carried no id")
        self.store.save_progress(key, {"ids": [*ids, str(post["id"])]})
        return str(post["id"])

    def _resume(self, rendition: base.Rendition, key: str) -> list[str]:
        """The ids already posted for this key, with a send left unanswered looked up.

        The marker stays until that part is found or posted again: X's timeline can lag a
        few seconds, and a later look (the next attempt's) may see what this one did not.
        """
        progress = self.store.progress(key) or {}
        ids = [str(i) for i in progress.get("ids", [])]
        pending = progress.get("pending")
        if isinstance(pending, dict) and pending.get("index") == len(ids) < len(rendition.parts):
            found = self._find_on_timeline(rendition.parts[len(ids)], ids, str(pending["at"]))
            if found is not None:
                ids.append(found)
                self.store.save_progress(key, {"ids": ids})
        return ids

    def _find_on_timeline(self, text: str, ids: list[str], sent_at: str) -> str | None:
        """The id of our post with ``text`` (replying to ``ids[-1]``), sent at or after
        ``sent_at``; None when the timeline holds no such post."""
        params: dict[str, Any] = {
            "max_results": 100,
            "tweet.fields": "created_at,referenced_tweets",
        }
        if ids:
            params["since_id"] = ids[-1]  # a reply is newer than what it replies to
        else:
            since = datetime.fromisoformat(sent_at) - CLOCK_SLACK
            params["start_time"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        data = self._call("GET", f"/2/users/{self._user_id()}/tweets", params=params)
        wanted = _comparable(text)
        for post in data.get("data") or []:
            if not isinstance(post, dict) or _comparable(str(post.get("text", ""))) != wanted:
                continue
            replied_to = [
                ref.get("id")
                for ref in post.get("referenced_tweets") or []
                if isinstance(ref, dict) and ref.get("type") == "replied_to"
            ]
            if replied_to == ([ids[-1]] if ids else []):
                return str(post["id"])
        return None

    def _finish(self, key: str, ids: list[str]) -> base.Receipt:
        receipt = base.Receipt(
            external_id=ids[0], url=f"https://x.com/i/web/status/{ids[0]}", data={"ids": ids}
        )
        self.store.save_receipt(key, receipt, {"ids": ids})
        return receipt

    def _upload(self, item: base.MediaItem) -> str:
        encoded = base64.b64encode(item.read()).decode("ascii")
        data = self._call(
            "POST", "/2/media/upload", json={"media": encoded, "media_category": "tweet_image"}
        ).get("data")
        if not isinstance(data, dict) or not data.get("id"):
            raise base.RetryableError("X's answer to the image upload had no media id")
        media_id = str(data["id"])
        alt = item.alt_text.strip()
        if alt:
            metadata = {"alt_text": {"text": alt[:MAX_ALT_TEXT]}}
            self._call("POST", "/2/media/metadata", json={"id": media_id, "metadata": metadata})
        return media_id

    # -- HTTP -----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        creates: bool = False,
    ) -> dict[str, Any]:
        """One API call as the user: refresh first if the token is known to have expired,
        or once after a 401. Only a create (``creates``) can leave a post behind when
        the answer is lost; anything else that goes unanswered is simply retried."""
        refreshed = False
        if self._expired():
            self._refresh()
            refreshed = True
        response = self._exchange(self._request(method, path, json, params), may_post=creates)
        if response.status_code == 401 and not refreshed:
            self._refresh()
            response = self._exchange(self._request(method, path, json, params), may_post=creates)
        self._check(response)
        return _json(response)

    def _request(
        self,
        method: str,
        path: str,
        json: dict[str, Any] | None,
        params: dict[str, Any] | None,
    ) -> httpx.Request:
        return self.build_request(
            method,
            self.credentials.api_base.rstrip("/") + path,
            json=json,
            params=params,
            headers={"Authorization": f"Bearer {self.credentials.access_token}"},
        )

    def _exchange(self, request: httpx.Request, *, may_post: bool) -> httpx.Response:
        """``http.transmit``: X's 401 (refresh first), 403 (two meanings) and error bodies
        need a closer look than the status mapping gives."""
        return self.transmit(request, may_post=may_post)

    def _message(self, response: httpx.Response) -> str:
        """X's own words: ``errors[].message`` (400s) before ``detail`` (problems)."""
        data = _json(response)
        found = [
            str(e.get("message") or e.get("detail"))
            for e in data.get("errors") or []
            if isinstance(e, dict) and (e.get("message") or e.get("detail"))
        ]
        message = "; ".join(found) if found else error_message(response)
        for secret in self._secrets():
            message = message.replace(secret, "[redacted]")
        return message[:MAX_MESSAGE]

    def _secrets(self) -> list[str]:
        c = self.credentials
        values = (c.access_token, c.refresh_token, c.client_secret, c.client_id)
        return [value for value in values if value and len(value) >= 4]

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        message = f"{PLATFORM} answered {status}: {self._message(response)}"
        if status == 403 and _CONTENT_REFUSAL.search(message):
            raise base.PermanentError(message)
        if status in (401, 403):
            raise base.AuthError(message)
        if status == 429:
            raise base.RetryableError(message, retry_after=_rate_limit_wait(response))
        if is_retryable_status(status):
            raise base.RetryableError(message, retry_after=retry_after_seconds(response))
        raise base.PermanentError(message)

    # -- OAuth 2.0 refresh ----------------------------------------------------------------

    def _expired(self) -> bool:
        return self._expires_within(REFRESH_MARGIN)

    def _expires_within(self, within: timedelta) -> bool:
        expires_at = self.credentials.expires_at
        return expires_at is not None and utcnow() >= expires_at - within

    def refresh_ahead(self, within: timedelta) -> bool:
        # X's access tokens live two hours: a daily check always refreshes, which also
        # proves the (single-use) refresh token still works before a post needs it.
        if not self._expires_within(within):
            return False
        self._refresh()
        return True

    def _refresh(self) -> None:
        stale = self.credentials.model_dump(mode="json")
        fresh = self.store.refresh_credentials(stale, self._refreshed)
        self.credentials = XCredentials.model_validate(fresh)

    def _refreshed(self, stale: dict[str, Any]) -> dict[str, Any]:
        """The credentials after one refresh at X (``ChannelStore`` stores them)."""
        credentials = XCredentials.model_validate(stale)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": credentials.refresh_token,
            "client_id": credentials.client_id,
        }
        headers: dict[str, str] = {}
        if credentials.client_secret:
            pair = f"{credentials.client_id}:{credentials.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        request = self.build_request(
            "POST",
            credentials.api_base.rstrip("/") + "/2/oauth2/token",
            data=form,
            headers=headers,
        )
        # Nothing is posted by a refresh, so a lost answer is worth another try.
        response = self._exchange(request, may_post=False)
        if response.status_code in (400, 401, 403):
            raise base.AuthError(
                f"{PLATFORM} refused to refresh the access token ({self._message(response)}); "
                "reconnect the channel"
            )
        self._check(response)
        data = _json(response)
        if not data.get("access_token"):
            raise base.RetryableError(f"{PLATFORM}'s token answer carried no access token")
        lifetime = data.get("expires_in")
        refreshed = credentials.model_copy(
            update={
                "access_token": str(data["access_token"]),
                # With offline.access X always rotates it; keep ours if it ever does not.
                "refresh_token": str(data.get("refresh_token") or credentials.refresh_token),
                "expires_at": (
                    utcnow() + timedelta(seconds=float(lifetime))
                    if isinstance(lifetime, int | float)
                    else None
                ),
            }
        )
        return refreshed.model_dump(mode="json")
