from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.db import Base


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
