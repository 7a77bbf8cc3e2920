"""Sources and the items they bring.

A source is checked when ``next_check_at`` passes. The check is claimed first (the due
time moves into ``claimed_due_at`` and ``next_check_at`` moves past the lease), so two
schedulers find each due check once; recording the outcome compares the claim, so a
check whose lease ran out and was taken again records once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.clock import utcnow
from herald.core.db import Base, IdMixin, TimestampMixin


class SourceKind(StrEnum):
    FEED = "feed"  # RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed 1.0/1.1
    REDDIT = "reddit"  # a subreddit's new posts, or a search
    HACKERNEWS = "hackernews"  # Algolia's Hacker News search
    DISCOURSE = "discourse"  # a forum's search, or a category's latest topics


class Source(IdMixin, TimestampMixin, Base):
    __tablename__ = "sources"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        # The monitor's one query: enabled sources whose check is due.
        Index("ix_sources_due", "enabled", "next_check_at"),
    )

    # Indexed by the unique (workspace_id, name) it leads.
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[SourceKind] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    # What is fetched: the feed's URL (the one found when a page was given), a forum's
    # base URL; None where the kind has a fixed site (Reddit, Hacker News).
    url: Mapped[str | None] = mapped_column(Text)
    # The page URL the user gave, when the feed was found through it.
    page_url: Mapped[str | None] = mapped_column(Text)
    query: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # MultiFernet token of optional JSON credentials (a site's API key); never returned.
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    interval_minutes: Mapped[int] = mapped_column(default=30)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The agent its new items are handed to (auto-generate); none: a draft is made from
    # the item itself.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    auto_generate: Mapped[bool] = mapped_column(default=False)
    max_drafts_per_check: Mapped[int] = mapped_column(default=3)
    # How many of the items found by the first check count as new (0: none, a baseline).
    backfill: Mapped[int] = mapped_column(default=0)

    # -- monitoring ------------------------------------------------------------------
    next_check_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The due time of the check in progress (its claim), None when none is.
    claimed_due_at: Mapped[datetime | None]
    # The validators of the last answer with a body, sent back as If-None-Match /
    # If-Modified-Since.
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    # The longest interval the source itself asked for (Cache-Control max-age, <ttl>,
    # <sy:updatePeriod>, Retry-After); it lengthens interval_minutes, never shortens it.
    hinted_interval_seconds: Mapped[int | None]
    # When the first check recorded the baseline; None until then.
    subscribed_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_status: Mapped[int | None]  # the HTTP status of the last answer
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(default=0)  # in a row; 0 after a success
    # What the last read found.
    title: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(20))  # e.g. rss20, atom10, json11
    # Running totals: every check, those answered 304, and the bytes of every body read.
    checks: Mapped[int] = mapped_column(default=0)
    not_modified: Mapped[int] = mapped_column(default=0)
    bytes_fetched: Mapped[int] = mapped_column(BigInteger, default=0)


class SourceItem(IdMixin, Base):
    """One item a source or a research job brought in (``sources.entries.Entry``, kept)."""

    __tablename__ = "source_items"
    __table_args__ = (
        # An item's identity within its source, and within a research job's results.
        UniqueConstraint("source_id", "key"),
        UniqueConstraint("research_id", "key"),
        # Newest first, per source and per workspace (cursor pagination).
        Index("ix_source_items_source_sort", "source_id", "sort_at", "id"),
        Index("ix_source_items_workspace_sort", "workspace_id", "sort_at", "id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    source_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE")
    )
    # The research job (a jobs row) that found it, for research results.
    research_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    site: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(600))
    guid: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    summary_html: Mapped[str] = mapped_column(Text, default="")
    summary_text: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    source_updated_at: Mapped[datetime | None]
    score: Mapped[int | None]
    comments: Mapped[int | None]
    comments_url: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Newest-first order: the published time, or when Herald first saw an undated item.
    sort_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last time the source changed the item (an edit); None if it never did.
    changed_at: Mapped[datetime | None]
    revision: Mapped[int] = mapped_column(default=1)
    # Found by the first check of its source: part of the baseline, never made new.
    seen_at_subscribe: Mapped[bool] = mapped_column(default=False)
    # Claimed by auto-generate (set once, by a conditional UPDATE): one draft at most.
    auto_drafted: Mapped[bool] = mapped_column(default=False)


class ItemUse(Base):
    """A draft made from an item (by auto-generate, or by an agent)."""

    __tablename__ = "source_item_uses"

    item_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("source_items.id", ondelete="CASCADE"), primary_key=True
    )
    post_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    agent_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
