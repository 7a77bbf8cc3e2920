from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.db import Base, IdMixin, TimestampMixin


class ChannelState(StrEnum):
    ACTIVE = "active"
    NEEDS_RECONNECT = "needs_reconnect"  # the platform refused our credentials
    PAUSED = "paused"  # paused by a person


class Channel(IdMixin, TimestampMixin, Base):
    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    # Indexed by the unique (workspace_id, name) it leads.
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    # MultiFernet token of the JSON credentials; never leaves the server decrypted.
    credentials_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    # The adapter's cached login (e.g. Bluesky's JWTs), encrypted like the credentials.
    session_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[ChannelState] = mapped_column(String(20), default=ChannelState.ACTIVE)
    state_reason: Mapped[str | None] = mapped_column(Text)
    # Retry policy for deliveries: exponential back-off with full jitter.
    max_retries: Mapped[int] = mapped_column(default=3)
    retry_base_seconds: Mapped[float] = mapped_column(default=2.0)
    retry_max_seconds: Mapped[float] = mapped_column(default=600.0)
