"""The adapter contract: what every platform integration implements.

Errors an adapter raises (the publishing engine decides what to do with each)::

    AdapterError
    ├── RetryableError     nothing was posted; safe to try again (connect error, 5xx, 429)
    ├── PermanentError     the platform refused the content (validation); retrying won't help
    ├── AuthError          the credentials no longer work: the channel needs reconnecting
    └── AmbiguousError     the request may have reached the platform (timeout after sending)
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class AdapterError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(AdapterError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AdapterError):
    pass


class AuthError(AdapterError):
    pass


class AmbiguousError(AdapterError):
    pass


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoSettings(StrictModel):
    pass


@dataclass(frozen=True)
class PostContent:
    """What an adapter sees of a post: plain data, never an ORM object."""

    id: uuid.UUID
    title: str
    body: str  # Markdown
    excerpt: str | None = None
    tags: tuple[str, ...] = ()
    canonical_url: str | None = None


@dataclass(frozen=True)
class Rendition:
    """Exactly what will be sent: one part, or several for a thread."""

    format: str  # "html", "markdown", "text", "json"
    parts: tuple[str, ...]
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    external_id: str
    url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Identity:
    """Who the credentials act as, from ``verify``."""

    name: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    max_length: int | None = None  # per part, in the platform's own unit
    max_media: int = 0
    requests_per_minute: int | None = None


C = TypeVar("C", bound=BaseModel)
S = TypeVar("S", bound=BaseModel)


class Adapter(ABC, Generic[C, S]):
    platform: ClassVar[str]
    display_name: ClassVar[str]
    credentials_model: ClassVar[type[BaseModel]]
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    limits: ClassVar[Limits] = Limits()
    # True when the platform deduplicates by our idempotency key, so a resend after an
    # ambiguous failure cannot post twice.
    honours_idempotency_key: ClassVar[bool] = False

    def __init__(self, credentials: C, settings: S) -> None:
        self.credentials = credentials
        self.settings = settings

    @abstractmethod
    def verify(self) -> Identity:
        """Check the credentials can post; raise AuthError if not."""

    @abstractmethod
    def render(self, post: PostContent) -> Rendition:
        """Turn a post into what this platform takes."""

    @abstractmethod
    def publish(self, rendition: Rendition, idempotency_key: str) -> Receipt:
        """Send it. Must be safe to call again with the same key after a RetryableError."""

    def find_existing(self, rendition: Rendition, idempotency_key: str) -> Receipt | None:
        """Look up a post sent earlier with this key; ``None`` when it can't be told."""
        return None
