"""The contract between a run and the provider it calls.

A provider turns a :class:`GenerationRequest` (what to write, from which items) into a
:class:`Generation` (a draft and the record of the one call it made). ``generate``
makes exactly one call and holds no database transaction: the run (herald.agents.
generate) retries it, and writes each :class:`CallRecord` to the usage ledger.

Errors::

    HeraldFault
    └── ProviderError       one call failed; ``kind`` says what a caller may do
            kind=RETRYABLE  429, 5xx, a timeout, a dropped connection: try again later
                            (``retry_after`` seconds when the server said)
            kind=AUTH       401/403: the key is wrong; the provider needs reconnecting
            kind=PERMANENT  400 and other refusals, an answer that cannot be read
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from herald.core.exceptions import HeraldFault


@dataclass(frozen=True)
class SourceText:
    """One item a draft draws on, as the provider sees it."""

    id: uuid.UUID
    title: str
    text: str  # the item's summary as plain text
    link: str | None = None
    author: str | None = None
    source_name: str = ""
    published_at: datetime | None = None


@dataclass(frozen=True)
class GenerationRequest:
    topic: str
    keywords: list[str] = field(default_factory=list)
    keyword: str | None = None  # the focus keyword of this run, if one was given
    tone: str | None = None
    target_words: int = 600
    language: str = "en"
    # The agent's instructions after the workspace's (the brand voice); None: none.
    instructions: str | None = None
    items: list[SourceText] = field(default_factory=list)
    # The most the answer may use (sent as max_tokens): the run reserves this much.
    max_output_tokens: int = 2000


@dataclass(frozen=True)
class Draft:
    title: str
    body: str  # Markdown
    excerpt: str  # the first lines, for previews and the meta description
    short_text: str  # for short-post platforms: at most 280 characters, link included


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    # True when the answer carried no usage and the tokens were counted by estimate.
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


class ErrorKind(StrEnum):
    RETRYABLE = "retryable"
    AUTH = "auth"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class CallRecord:
    """One call to a provider, as the ledger keeps it."""

    model: str
    usage: Usage
    latency_ms: int
    outcome: str = "ok"  # "ok", or an ErrorKind's value
    error: str | None = None
    status: int | None = None  # the HTTP status, where there was one


@dataclass(frozen=True)
class Generation:
    draft: Draft
    call: CallRecord


class ProviderError(HeraldFault):
    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        call: CallRecord,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.call = call
        self.retry_after = retry_after


@dataclass(frozen=True)
class ProviderConfig:
    """A provider row, read and decrypted for one run (no ORM object leaves the
    transaction). The built-in digest has no row: ``id`` None."""

    kind: str
    name: str
    id: uuid.UUID | None = None
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout_seconds: float = 60.0


class TextProvider(Protocol):
    def generate(self, request: GenerationRequest) -> Generation:
        """Make one call and return the draft; raise ProviderError when it fails."""
        ...
