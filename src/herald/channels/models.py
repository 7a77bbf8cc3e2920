from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.db import Base, IdMixin, TimestampMixin


class ChannelState(StrEnum):
    ACTIVE = "active"
    NEEDS_RECONNECT = "needs_reconnect"  # the platform refused our credentials
    PAUSED = "paused"  # paused by a person


class Channel(IdMixin, TimestampMixin, Base):
    __tablename__ = "channels"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        # The health pass's claim: active channels whose check is due (channels.health).
        Index("ix_channels_state_next_check", "state", "next_check_at"),
    )

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
    # The last check of the credentials (a person's test or the health pass), and when
    # the health pass checks them next (herald.channels.health).
    checked_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None]
    last_check_ok: Mapped[bool | None]
    last_check_error: Mapped[str | None] = mapped_column(Text)
