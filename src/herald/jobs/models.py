from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.clock import utcnow
from herald.core.db import Base


class JobState(StrEnum):
    """Celery's own state names, so clients written for Celery read them unchanged."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


READY_STATES = frozenset({JobState.SUCCESS, JobState.FAILURE, JobState.REVOKED})
ACTIVE_STATES = frozenset({JobState.PENDING, JobState.STARTED, JobState.RETRY})

# Job kinds kept by a retention of their own, not HERALD_JOB_RETENTION_DAYS: a research
# job's record holds its results (HERALD_RESEARCH_RETENTION_DAYS, herald.sources.research).
OWN_RETENTION_KINDS = frozenset({"research"})


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_workspace_state", "workspace_id", "state"),)

    # The Celery task id, so Flower and Herald name a job the same way.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Indexed by ix_jobs_workspace_state, which it leads.
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(60))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[JobState] = mapped_column(String(20), default=JobState.PENDING)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int | None]
    message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
