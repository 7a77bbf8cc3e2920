from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from herald.core.clock import utcnow
from herald.core.db import Base, IdMixin, TimestampMixin


class PublicationState(StrEnum):
    SCHEDULED = "scheduled"  # waits for due_at
    QUEUED = "queued"  # a message is (or should be) on the broker
    PUBLISHING = "publishing"  # claimed by a worker, lease_until set
    PUBLISHED = "published"
    RETRY_WAIT = "retry_wait"  # failed for a retryable reason; due_at is the next try
    FAILED = "failed"  # permanent error, or out of retries
    UNCONFIRMED = "unconfirmed"  # may have been posted, cannot tell: a person decides
    CANCELLED = "cancelled"


S = PublicationState

# Named groups, as in celery/states.py. A client reads them (and TRANSITIONS) from
# GET /api/v1/publications/states instead of copying them.
DUE = frozenset({S.SCHEDULED, S.RETRY_WAIT})  # wait for due_at, then the dispatcher queues them
WAITING = DUE | {S.QUEUED}  # not started: a cancel is certain
ACTIVE = WAITING | {S.PUBLISHING}  # not over: the post is still "scheduled"
SETTLED = frozenset({S.PUBLISHED, S.FAILED, S.UNCONFIRMED, S.CANCELLED})
RETRYABLE = frozenset({S.FAILED, S.UNCONFIRMED})  # a person may send these again

# Every move a delivery may make, and who makes it. The one compare-and-set in
# herald.publishing.actions refuses any other (a bug, not a race).
TRANSITIONS: dict[PublicationState, frozenset[PublicationState]] = {
    # reschedule (same state, new due_at), dispatch, cancel, missed by too long
    S.SCHEDULED: frozenset({S.SCHEDULED, S.QUEUED, S.CANCELLED, S.FAILED}),
    # claim, cancel, reconcile (queued with no attempt left)
    S.QUEUED: frozenset({S.PUBLISHING, S.CANCELLED, S.UNCONFIRMED}),
    # the attempt's outcome; reconcile after the worker died (queued again or unconfirmed)
    S.PUBLISHING: frozenset(
        {S.PUBLISHED, S.RETRY_WAIT, S.FAILED, S.UNCONFIRMED, S.CANCELLED, S.QUEUED}
    ),
    # dispatch (due, or released by a reconnected channel), cancel, missed by too long
    S.RETRY_WAIT: frozenset({S.QUEUED, S.CANCELLED, S.FAILED}),
    S.PUBLISHED: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),  # retry: a person decided
    S.UNCONFIRMED: frozenset({S.QUEUED}),  # retry: a person checked it did not go out
    S.CANCELLED: frozenset(),
}
GROUPS: dict[str, frozenset[PublicationState]] = {
    "due": DUE,
    "waiting": WAITING,
    "active": ACTIVE,
    "settled": SETTLED,
    "retryable": RETRYABLE,
}


class ErrorKind(StrEnum):
    """Why a delivery's last attempt did not publish (stored in ``error_kind``)."""

    RETRYABLE = "retryable"  # the platform may accept it later
    PERMANENT = "permanent"  # it never will as it is
    AUTH = "auth"  # the channel's credentials were refused: held until reconnected
    AMBIGUOUS = "ambiguous"  # it may have been posted
    MISSED = "missed"  # due while Herald was down, longer ago than the limit


class Publication(IdMixin, TimestampMixin, Base):
    """One post on one channel: the unit that is delivered exactly once."""

    __tablename__ = "publications"
    __table_args__ = (
        Index("ix_publications_state_due", "state", "due_at"),
        Index("ix_publications_post", "post_id"),
        UniqueConstraint("idempotency_key"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    # The job (= Celery task id) that carries this delivery, for the task endpoints.
    task_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    state: Mapped[PublicationState] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=4)
    due_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_url: Mapped[str | None] = mapped_column(String(2048))
    last_error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[ErrorKind | None] = mapped_column(String(20))
    published_at: Mapped[datetime | None]
    # How far the adapter got (the parts of a thread already posted), kept across retries.
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    attempts: Mapped[list[PublicationAttempt]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PublicationAttempt.number"
    )


class PublicationAttempt(IdMixin, Base):
    __tablename__ = "publication_attempts"

    publication_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20))  # published, retry, failed, ...
    error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_url: Mapped[str | None] = mapped_column(String(2048))
    retry_at: Mapped[datetime | None]
