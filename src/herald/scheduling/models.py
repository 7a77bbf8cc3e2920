from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.db import Base


class Heartbeat(Base):
    """Last sign of life of a long-running process (the scheduler), for health checks."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    beat_at: Mapped[datetime]
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
