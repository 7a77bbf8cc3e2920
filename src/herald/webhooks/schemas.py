from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from herald.webhooks.models import DeliveryState, WebhookState

_URL = (
    "Where Herald POSTs each event: an absolute http:// or https:// address. An address on "
    "this machine or a private network is refused unless it is in "
    "HERALD_ALLOWED_PRIVATE_NETWORKS."
)
_EVENTS = 'The event types to send (see docs/webhooks.md), or `["*"]` for every one.'
_SIGNING_KEY_HELP = (
    "The signing secret (at least 16 characters). Left out, Herald makes one (`whsec_...`). "
    "It is shown once, in this answer, and never again."
)


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description=_URL)
    events: list[str] = Field(min_length=1, max_length=50, description=_EVENTS)
    description: str | None = Field(None, max_length=500)
    secret: str | None = Field(None, min_length=16, max_length=200, description=_SIGNING_KEY_HELP)


class WebhookUpdate(BaseModel):
    url: str | None = Field(None, min_length=1, max_length=2048, description=_URL)
    events: list[str] | None = Field(None, min_length=1, max_length=50, description=_EVENTS)
    description: str | None = Field(None, max_length=500)
    state: WebhookState | None = Field(
        None,
        description="`disabled` stops deliveries (pending ones wait); `active` resumes them "
        "at once and clears the failure streak.",
    )
    rotate_secret: bool = Field(
        False,
        description="Make a new secret, shown once in this answer. The old one still signs "
        "(a second `v1=` value) for 24 hours, so receivers can switch.",
    )


class WebhookRead(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    state: WebhookState
    disabled_reason: str | None = Field(
        description="Why it is disabled: by a person, after 24 h of failures, or a 410 Gone."
    )
    consecutive_failures: int = Field(description="Failed attempts since the last success.")
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        None,
        description="Only in the answer that made it (create, or `rotate_secret`): keep it "
        "now, it is never shown again.",
    )


class WebhookDeliveryRead(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="Also the `Herald-Event-Id` header: dedupe on it.")
    event_type: str
    state: DeliveryState
    attempts: int
    due_at: datetime = Field(description="When the next attempt may start (pending).")
    last_status: int | None = Field(description="The endpoint's last HTTP status.")
    last_error: str | None
    response_excerpt: str | None = Field(description="The first 1 KB of the last answer.")
    duration_ms: int | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
