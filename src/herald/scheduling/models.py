from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.clock import utcnow
from herald.core.db import Base, IdMixin

# A channel's slots are in UTC until its time zone is set.
DEFAULT_TIMEZONE = "UTC"


class Heartbeat(Base):
    """Last sign of life of a long-running process (the scheduler), for health checks."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    beat_at: Mapped[datetime]
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]


class PeriodicRun(Base):
    """The last run of a periodic job, and the period it claimed.

    Two schedulers may both send a job; the first run to claim its period does the work
    and the other sees the period taken and stops.
    """

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    period_key: Mapped[int] = mapped_column(BigInteger)
    last_run_at: Mapped[datetime]
    last_finished_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Periods claimed (runs that did the work), and runs that found their period taken.
    run_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    skipped_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


# --- posting slots (herald.scheduling.slots) ----------------------------------------------


class ChannelSchedule(Base):
    """A channel's slot settings: its time zone (the channels table stays as it is)."""

    __tablename__ = "channel_schedules"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChannelSlot(IdMixin, Base):
    """One weekly posting slot: a weekday (0 = Monday) and a local wall-clock time."""

    __tablename__ = "channel_slots"
    __table_args__ = (
        UniqueConstraint("channel_id", "weekday", "local_time"),
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday_range"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    weekday: Mapped[int]
    local_time: Mapped[time] = mapped_column(Time())


class SlotReservation(IdMixin, Base):
    """A slot instant claimed by a queued delivery; unique per channel and instant."""

    __tablename__ = "slot_reservations"
    __table_args__ = (
        UniqueConstraint("channel_id", "due_at"),
        Index("ix_slot_reservations_publication", "publication_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    due_at: Mapped[datetime]
    publication_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
