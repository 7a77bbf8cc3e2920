from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from herald.core.documents import DOCUMENT_LIMITS, BoundedDocument
from herald.core.types import StrictInt
from herald.sources.models import SourceKind

_INTERVAL = "Minutes between checks (1 to 10080); the source may ask for longer, never shorter."
_URL = (
    "feed: the feed's URL, or a page that advertises one (the feed found is stored); "
    "discourse: the forum's base URL; reddit, hackernews: leave out."
)
_QUERY = (
    "reddit: `r/<subreddit>` for its new posts, or search terms; hackernews: search terms; "
    "discourse: search terms (or leave out and set settings.category)."
)


class SourceCreate(BaseModel):
    kind: SourceKind
    name: str = Field(min_length=1, max_length=100, examples=["Python blog"])
    url: str | None = Field(
        None, max_length=2048, description=_URL, examples=["https://blog.python.org/"]
    )
    query: str | None = Field(None, min_length=1, max_length=500, description=_QUERY)
    settings: BoundedDocument = Field(
        default_factory=dict, description="Kind-specific options. " + DOCUMENT_LIMITS
    )
    credentials: BoundedDocument | None = Field(
        None,
        description="Optional site credentials; encrypted at rest and never returned. "
        + DOCUMENT_LIMITS,
    )
    interval_minutes: StrictInt = Field(30, ge=1, le=10080, description=_INTERVAL)
    enabled: bool = True
    agent_id: uuid.UUID | None = Field(
        None, description="The agent that drafts posts from new items (agents feature)."
    )
    auto_generate: bool = Field(False, description="Make drafts from new items after each check.")
    max_drafts_per_check: StrictInt = Field(3, ge=0, le=50)
    backfill: StrictInt = Field(
        0,
        ge=0,
        le=500,
        description="How many of the items found by the first check count as new; the "
        "rest are recorded as already seen (subscribing never fires a backlog).",
    )


class SourceUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=2048, description=_URL)
    query: str | None = Field(None, min_length=1, max_length=500, description=_QUERY)
    settings: BoundedDocument | None = Field(None, description=DOCUMENT_LIMITS)
    credentials: BoundedDocument | None = Field(None, description=DOCUMENT_LIMITS)
    interval_minutes: StrictInt | None = Field(None, ge=1, le=10080, description=_INTERVAL)
    enabled: bool | None = Field(
        None, description="`true` also clears a disable by Herald (e.g. after HTTP 410)."
    )
    agent_id: uuid.UUID | None = None
    auto_generate: bool | None = None
    max_drafts_per_check: StrictInt | None = Field(None, ge=0, le=50)


class SourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: SourceKind
    name: str
    url: str | None
    page_url: str | None = Field(description="The page the feed was found through, if any.")
    query: str | None
    settings: dict[str, Any]
    has_credentials: bool
    interval_minutes: int
    hinted_interval_seconds: int | None = Field(
        description="The longest interval the source asked for (Cache-Control, <ttl>, "
        "<sy:updatePeriod>, Retry-After)."
    )
    enabled: bool
    disabled_reason: str | None
    agent_id: uuid.UUID | None
    auto_generate: bool
    max_drafts_per_check: int
    backfill: int
    next_check_at: datetime
    checking: bool = Field(description="A check is running now.")
    subscribed_at: datetime | None = Field(description="When the first check took the baseline.")
    last_checked_at: datetime | None
    last_success_at: datetime | None
    last_status: int | None
    last_error: str | None
    failures: int = Field(description="Failed checks in a row (back-off grows with them).")
    title: str | None
    format: str | None
    checks: int
    not_modified: int = Field(description="Checks answered 304 Not Modified (no body sent).")
    bytes_fetched: int
    created_at: datetime
    updated_at: datetime


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_id: uuid.UUID | None
    research_id: str | None
    site: str
    title: str
    link: str | None
    summary_html: str = Field(description="Sanitised HTML.")
    summary_text: str
    author: str | None
    published_at: datetime | None = Field(description="None when the source gives no date.")
    guid: str | None
    score: int | None
    comments: int | None
    comments_url: str | None
    extra: dict[str, Any]
    first_seen_at: datetime
    changed_at: datetime | None = Field(description="The last edit the source made, if any.")
    revision: int
    seen_at_subscribe: bool = Field(description="Found by the first check: part of the baseline.")
    drafts: list[uuid.UUID] = Field(description="Posts drafted from this item.")


class CheckRequest(BaseModel):
    auto_generate: bool | None = Field(
        None, description="Make drafts from the new items (default: the source's setting)."
    )


class MonitorRequest(BaseModel):
    source_id: uuid.UUID
    auto_generate: bool = False


class TaskStarted(BaseModel):
    task_id: str
    status: str = "pending"
    message: str
