from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, select
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from herald.core.db import Base, IdMixin, TimestampMixin
from herald.media.models import PostMedia
from herald.users.models import User


class PostState(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"  # an agent's draft waiting for a person's approval
    REJECTED = "rejected"  # a reviewer turned it down (with a note)
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"


class Post(IdMixin, TimestampMixin, Base):
    __tablename__ = "posts"
    __table_args__ = (Index("ix_posts_workspace_created", "workspace_id", "created_at", "id"),)

    # Indexed by ix_posts_workspace_created, which it leads.
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    excerpt: Mapped[str | None] = mapped_column(Text)
    canonical_url: Mapped[str | None] = mapped_column(String(2048))
    state: Mapped[PostState] = mapped_column(String(20), default=PostState.DRAFT, index=True)
    # The words the post is written for (SEO keyword density); empty: its tags.
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The text for short-post platforms (X, Bluesky, Mastodon...); None: made from the
    # title, excerpt and link.
    short_body: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    # SEO metrics, computed on every save (herald.posts.seo).
    seo: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The agent (and its run) that wrote it; None for a person's post.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    agent_run_id: Mapped[uuid.UUID | None]
    # Review: who decided, when, what, and why.
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    reviewed_at: Mapped[datetime | None]
    review_decision: Mapped[str | None] = mapped_column(String(20))  # approved | rejected
    review_note: Mapped[str | None] = mapped_column(Text)
    # The reviewer's email, read with the post (a subquery, not a relationship: that
    # would make every flush resolve all of posts' foreign keys, agents' included, which
    # the command line has not always imported).
    reviewed_by_email: Mapped[str | None] = column_property(
        select(User.email).where(User.id == reviewed_by).correlate_except(User).scalar_subquery()
    )

    tag_rows: Mapped[list[PostTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PostTag.position"
    )

    media_rows: Mapped[list[PostMedia]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PostMedia.position"
    )

    @property
    def media_ids(self) -> list[uuid.UUID]:
        return [row.media_id for row in self.media_rows]

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]

    @tags.setter
    def tags(self, values: list[str]) -> None:
        self.tag_rows = [PostTag(tag=tag, position=i) for i, tag in enumerate(values)]


class PostTag(Base):
    """A post's tags, one row each, so filtering by tag is an indexed lookup everywhere."""

    __tablename__ = "post_tags"
    __table_args__ = (Index("ix_post_tags_tag", "tag"),)

    post_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)
