"""The adapter contract: what every platform integration implements.

Errors an adapter raises (the publishing engine decides what to do with each)::

    AdapterError
    ├── RetryableError     nothing was posted; safe to try again (connect error, 5xx, 429)
    ├── PermanentError     the platform refused the content (validation); retrying won't help
    ├── AuthError          the credentials no longer work: the channel needs reconnecting
    └── AmbiguousError     the request may have reached the platform (timeout after sending)
"""

from __future__ import annotations

import copy
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from herald.core.errors import InvalidInput
from herald.core.exceptions import ControlFlow, HeraldException


class AdapterError(HeraldException):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(AdapterError, ControlFlow):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AdapterError):
    pass


class AuthError(AdapterError, ControlFlow):
    pass


class AmbiguousError(AdapterError):
    pass


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoSettings(StrictModel):
    pass


@dataclass(frozen=True)
class MediaItem:
    """An image attached to a post: a file in the data directory, already validated."""

    id: uuid.UUID
    path: Path
    content_type: str  # image/png, image/jpeg, image/gif or image/webp
    size: int  # bytes
    filename: str
    alt_text: str = ""
    width: int | None = None
    height: int | None = None

    def read(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True)
class PostContent:
    """What an adapter sees of a post: plain data, never an ORM object."""

    id: uuid.UUID
    title: str
    body: str  # Markdown
    excerpt: str | None = None
    tags: tuple[str, ...] = ()
    canonical_url: str | None = None
    media: tuple[MediaItem, ...] = ()
    # The post's own text for short-post platforms (Markdown); None: they build theirs
    # from the title and body.
    short_body: str | None = None


@dataclass(frozen=True)
class Rendition:
    """Exactly what will be sent: one part, or several for a thread.

    ``media`` is what will be attached (at most ``limits.max_media``); for a thread it
    goes with the first part unless the adapter says otherwise in ``extra``.
    """

    format: str  # "html", "markdown", "text", "json"
    parts: tuple[str, ...]
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    media: tuple[MediaItem, ...] = ()


@dataclass(frozen=True)
class Receipt:
    external_id: str
    url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def receipt_in(progress: Mapping[str, Any] | None) -> Receipt | None:
    """The receipt a delivery kept in its progress when it was done (see
    :meth:`ChannelStore.save_receipt`), or ``None`` while it is not."""
    kept = (progress or {}).get("receipt")
    if not isinstance(kept, dict):
        return None
    return Receipt(
        external_id=str(kept["external_id"]),
        url=kept.get("url"),
        data=dict(kept.get("data") or {}),
    )


@dataclass(frozen=True)
class Identity:
    """Who the credentials act as, from ``verify``."""

    name: str
    detail: dict[str, Any] = field(default_factory=dict)


class Scope(StrEnum):
    """Who a platform's rate limit is shared by: the channel alone, or every channel with
    the same token, account, app or chat (see :meth:`Adapter.budget_scope`)."""

    CHANNEL = "channel"
    TOKEN = "token"  # noqa: S105 - a scope's name, not a secret
    ACCOUNT = "account"
    APP = "app"
    CHAT = "chat"


@dataclass(frozen=True)
class Bucket:
    """One documented rate limit, as a token bucket: ``capacity`` tokens, refilled evenly
    over ``period_seconds``; a publish takes ``cost`` per part sent (a thread of three
    statuses costs three), a media upload ``media_cost`` per file.

    ``corrected_by``: paths (parts of them) whose answers' rate headers (``X-RateLimit-*``,
    ``ratelimit-*``) and 429s describe this bucket, so they correct it (a login's
    headers say nothing of the posting limit). ``source`` cites where the limit is
    documented."""

    name: str
    capacity: int
    period_seconds: float
    scope: Scope = Scope.CHANNEL
    cost: int = 1
    media_cost: int = 0
    corrected_by: tuple[str, ...] = ()
    source: str = ""
    # Discord's per-route buckets: the platform names the bucket a route belongs to
    # (``X-RateLimit-Bucket``) and its size (``X-RateLimit-Limit``); routes answered with
    # the same name share one budget. Until an answer names it, a route uses the numbers
    # declared here (Adapter.budget_route: the route a delivery sends on).
    named_by_platform: bool = False

    def cost_of(self, parts: int, media: int) -> int:
        return self.cost * parts + self.media_cost * media

    @property
    def usable(self) -> int:
        """The capacity Herald fills up to: a tenth (at least one token) below the
        platform's, so requests that reach it later than they were paid for (a busy
        worker, the network) still find room. It refills at the documented rate."""
        return usable_shape(self.capacity, self.period_seconds)[0]

    @property
    def usable_period(self) -> float:
        """The period that refills :attr:`usable` tokens: at the documented rate, or for
        a bucket of one (no tenth to keep) a tenth slower, so its headroom is in time: a
        request a little late does not meet the next one at the platform."""
        return usable_shape(self.capacity, self.period_seconds)[1]


def usable_shape(capacity: int, period_seconds: float) -> tuple[int, float]:
    """A limit of ``capacity`` per ``period_seconds`` as Herald fills it (``Bucket.usable``,
    ``Bucket.usable_period``): a tenth (at least one token) below, or for a bucket of one
    a tenth slower."""
    if capacity <= 1:
        return 1, period_seconds * 1.1
    usable = capacity - max(1, capacity // 10)
    return usable, period_seconds * usable / capacity


@dataclass(frozen=True)
class Limits:
    max_length: int | None = None  # per part, in the platform's own unit (see measure)
    max_media: int = 0
    max_media_bytes: int | None = None  # per file
    requests_per_minute: int | None = None  # the platform's documented write limit
    # The documented rate limits a delivery is paced by (herald.channels.budgets).
    buckets: tuple[Bucket, ...] = ()


class ChannelStore(ABC):
    """What an adapter may keep between deliveries, shared by every worker.

    The engine's store keeps it in the database (encrypted); :class:`MemoryStore` keeps it
    in memory, for tests and one-off use.

    - ``session``: a cached login (say, Bluesky's JWTs), so a channel logs in once, not
      once per post. Losing it costs one login. What was read is kept for the adapter's
      lifetime; ``fresh=True`` reads what other workers stored since.
    - ``refresh_credentials``: replace credentials that expired (OAuth refresh), with no
      other refresh of the same channel running, and the result stored before it is
      used: single-use refresh tokens survive a crash after the refresh.
    - ``progress``: how far a delivery got (the parts of a thread already posted), so a
      retry carries on instead of posting the first parts again.

    Writing: outside :meth:`batch`, each save is stored at once. Inside it, saves are
    kept in memory and stored together at a :meth:`checkpoint`: an adapter calls that
    before a request whose effect a retry must know about (a record key chosen before the
    post that uses it, an upload that is not idempotent). When the outermost batch ends
    with an exception, everything saved is stored (the delivery will be tried again and
    carries on from it); when it ends with a result, only a changed login is: the caller
    records the result (the engine, the receipt with the outcome), and a retry after a
    lost outcome looks the post up or resends what the platform deduplicates. So a
    delivery costs a write per checkpoint, not one per save, and no store ever waits on
    the database while the adapter waits on the platform.
    """

    @abstractmethod
    def session(self, *, fresh: bool = False) -> dict[str, Any] | None: ...

    @abstractmethod
    def save_session(self, data: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def refresh_credentials(
        self,
        stale: Mapping[str, Any],
        refresh: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """If the stored credentials still equal ``stale``, store ``refresh(stale)`` and
        return it; otherwise another worker refreshed first: return what is stored.
        Whatever ``refresh`` raises (an AuthError, say) propagates and nothing changes."""

    @abstractmethod
    def progress(self, idempotency_key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def save_progress(self, idempotency_key: str, data: dict[str, Any]) -> None: ...

    def receipt(self, idempotency_key: str) -> Receipt | None:
        """The receipt this delivery kept when it was done: a retry returns it instead of
        posting again."""
        return receipt_in(self.progress(idempotency_key))

    def save_receipt(
        self,
        idempotency_key: str,
        receipt: Receipt,
        progress: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep a finished delivery's receipt in its progress, beside what the delivery
        saved there (``progress``)."""
        kept = {"external_id": receipt.external_id, "url": receipt.url, "data": receipt.data}
        self.save_progress(idempotency_key, {**(progress or {}), "receipt": kept})

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Keep the saves made inside in memory; store them when the outermost batch
        ends. A store that writes nowhere slow (this default) has nothing to batch."""
        yield

    def checkpoint(self) -> None:  # noqa: B027 - nothing to do for an in-memory store
        """Store what was saved so far, now: before a request a retry must know about."""


class MemoryStore(ChannelStore):
    """A :class:`ChannelStore` in this process's memory."""

    def __init__(self, credentials: Mapping[str, Any] | None = None) -> None:
        self.credentials: dict[str, Any] = dict(credentials or {})
        self._session: dict[str, Any] | None = None
        self._progress: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def session(self, *, fresh: bool = False) -> dict[str, Any] | None:
        return copy.deepcopy(self._session)

    def save_session(self, data: dict[str, Any] | None) -> None:
        self._session = copy.deepcopy(data)

    def refresh_credentials(
        self,
        stale: Mapping[str, Any],
        refresh: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        with self._lock:
            if self.credentials and self.credentials != dict(stale):
                return dict(self.credentials)
            self.credentials = dict(refresh(dict(stale)))
            return dict(self.credentials)

    def progress(self, idempotency_key: str) -> dict[str, Any] | None:
        return copy.deepcopy(self._progress.get(idempotency_key))

    def save_progress(self, idempotency_key: str, data: dict[str, Any]) -> None:
        self._progress[idempotency_key] = copy.deepcopy(data)


def _urls(
    value: Any, location: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every http(s) URL in a JSON document, with where it is."""
    if isinstance(value, str):
        return [(location, value)] if value[:8].lower().startswith(("http://", "https://")) else []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _urls(item, (*location, key))]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _urls(item, (*location, i))]
    return []


C = TypeVar("C", bound=BaseModel)
S = TypeVar("S", bound=BaseModel)


class Adapter(ABC, Generic[C, S]):
    platform: ClassVar[str]
    display_name: ClassVar[str]
    credentials_model: ClassVar[type[BaseModel]]
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    # The platform's documented limits; an adapter whose limits depend on the server (a
    # Mastodon instance) sets its own on the instance.
    limits: Limits = Limits()
    length_unit: ClassVar[str] = "characters"  # what measure() counts
    # True when the platform deduplicates by our idempotency key, so a resend after an
    # ambiguous failure cannot post twice.
    honours_idempotency_key: ClassVar[bool] = False

    def __init__(self, credentials: C, settings: S, store: ChannelStore | None = None) -> None:
        self.credentials = credentials
        self.settings = settings
        self.store: ChannelStore = store or MemoryStore(credentials.model_dump(mode="json"))

    @classmethod
    def build(
        cls,
        credentials: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
        store: ChannelStore | None = None,
    ) -> Self:
        """The adapter for plain credentials and settings, validated by its models."""
        return cls(
            cls.credentials_model.model_validate(dict(credentials)),  # type: ignore[arg-type]
            cls.settings_model.model_validate(dict(settings or {})),  # type: ignore[arg-type]
            store,
        )

    def check_destination(self) -> None:
        """Refuse, before a channel is saved, a destination Herald must never reach, by
        its text alone: this runs inside the request's transaction, so no DNS and no
        network. Raises :class:`~herald.core.errors.InvalidInput` (a 422).

        By default every http(s) URL anywhere in the credentials and settings must pass
        :func:`herald.core.http.check_url` (no loopback, private, link-local... address in
        any notation). That is the early, friendly refusal; the guarded HTTP client
        checks the address it actually connects to. An adapter whose destination is not
        a URL (a folder) checks it here too."""
        # The guarded client's module loads httpx: imported here, not with this module,
        # which every `herald post ...` command imports (for MediaItem) and must start fast.
        from herald.core.http import AddressNotAllowed, check_url  # noqa: PLC0415

        for part, values in (("credentials", self.credentials), ("settings", self.settings)):
            for location, url in _urls(values.model_dump(mode="json")):
                try:
                    check_url(url)
                except AddressNotAllowed as exc:
                    where = ".".join(str(step) for step in (part, *location))
                    raise InvalidInput(
                        f"{where}: {exc.message}",
                        errors=[
                            {
                                "loc": ["body", part, *location],
                                "msg": exc.message,
                                "type": "address_not_allowed",
                            }
                        ],
                    ) from None

    def budget_scope(self, scope: Scope) -> str | None:
        """What identifies the holder of a limit shared at ``scope`` (an account, a token,
        a chat), from the credentials and settings; the budget keys it by a hash of this,
        never the text itself. ``None`` (the default): the channel's own budget."""
        return None

    def budget_route(self) -> str:
        """The route a delivery sends on ("POST /api/v10/webhooks/…", as the rate
        observer is told it), for a bucket the platform names per route
        (``Bucket.named_by_platform``); empty when the adapter has none."""
        return ""

    def measure(self, text: str) -> int:
        """A part's length in the unit of ``limits.max_length`` (characters by default;
        graphemes on Bluesky, weighted characters on X)."""
        return len(text)

    @abstractmethod
    def verify(self) -> Identity:
        """Check the credentials can post; raise AuthError if not."""

    def refresh_ahead(self, within: timedelta) -> bool:
        """Refresh credentials that expire within ``within`` (an OAuth access token),
        through the store's ``refresh_credentials``; True if they were refreshed. The
        channel check calls it before :meth:`verify`. Credentials that do not expire, or
        whose expiry is unknown, keep this default: nothing to do."""
        return False

    @abstractmethod
    def render(self, post: PostContent) -> Rendition:
        """Turn a post into what this platform takes."""

    @abstractmethod
    def publish(self, rendition: Rendition, idempotency_key: str) -> Receipt:
        """Send it. Must be safe to call again with the same key after a RetryableError."""

    def find_existing(self, rendition: Rendition, idempotency_key: str) -> Receipt | None:
        """Look up a post sent earlier with this key; ``None`` when it can't be told."""
        return None
