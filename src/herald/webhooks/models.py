"""Endpoints, what each subscribes to, the outbox of events and one delivery per
(endpoint, event)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.clock import utcnow
from herald.core.db import Base, IdMixin, TimestampMixin

# Subscribes to every event type.
ALL_EVENTS = "*"


class WebhookState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # by a person, after repeated failure, or on 410 Gone


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for due_at (a first try, or a retry)
    SENDING = "sending"  # claimed by a worker until lease_until
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: 24 h of failures, or a 410


FINISHED = frozenset({DeliveryState.DELIVERED, DeliveryState.FAILED})


class Webhook(IdMixin, TimestampMixin, Base):
    __tablename__ = "webhooks"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(500))
    # MultiFernet token of {"current": ..., "previous": ..., "previous_until": ...}.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[WebhookState] = mapped_column(String(20), default=WebhookState.ACTIVE)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    # The first failed attempt since the last success (None: the last attempt succeeded).
    failing_since: Mapped[datetime | None] = mapped_column()


class WebhookSubscription(Base):
    """One event type (or ``*``) an endpoint receives. The workspace is repeated here so
    that "does anyone listen?" is one probe of (workspace_id, event_type)."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_lookup", "workspace_id", "event_type"),)

    webhook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True
    )
    event_type: Mapped[str] = mapped_column(String(60), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))


class WebhookEvent(Base):
    """The outbox: one row per event that at least one endpoint subscribed to."""

    __tablename__ = "webhook_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebhookDelivery(IdMixin, Base):
    """One event to one endpoint: its attempts, its state, its last answer."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "state", "due_at"),
        Index("ix_webhook_deliveries_log", "webhook_id", "created_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    state: Mapped[DeliveryState] = mapped_column(String(20), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    # sending: the attempt's lease; pending: a pointer is on the broker until then (the
    # periodic pass sends another only once it has passed).
    lease_until: Mapped[datetime | None] = mapped_column()
    last_status: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)  # at most 1 KB
    duration_ms: Mapped[int | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
