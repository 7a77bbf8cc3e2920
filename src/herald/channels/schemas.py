from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from herald.channels.models import ChannelState
from herald.core.documents import DOCUMENT_LIMITS, BoundedDocument
from herald.core.types import StrictFloat, StrictInt


class RetryPolicy(BaseModel):
    max_retries: StrictInt = Field(3, ge=0, le=20, description="Retries after the first attempt.")
    retry_base_seconds: StrictFloat = Field(2.0, gt=0, le=3600)
    retry_max_seconds: StrictFloat = Field(600.0, gt=0, le=86400)


class ChannelCreate(BaseModel):
    platform: str = Field(
        max_length=50, examples=["webhook"], description="See GET /api/v1/platforms."
    )
    name: str = Field(min_length=1, max_length=100, examples=["Team webhook"])
    credentials: BoundedDocument = Field(
        description="Platform credentials; encrypted at rest and never returned. "
        + DOCUMENT_LIMITS,
        examples=[{"url": "https://example.com/hook", "secret": "a-long-shared-secret"}],
    )
    settings: BoundedDocument = Field(default_factory=dict, description=DOCUMENT_LIMITS)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class ChannelUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    credentials: BoundedDocument | None = Field(
        None,
        description="Replaces the stored credentials (and clears needs_reconnect). "
        + DOCUMENT_LIMITS,
    )
    settings: BoundedDocument | None = Field(None, description=DOCUMENT_LIMITS)
    state: ChannelState | None = Field(
        None, description="`paused` stops deliveries; `active` resumes them."
    )
    retry: RetryPolicy | None = None


class ChannelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    platform: str
    name: str
    settings: dict[str, Any]
    state: ChannelState
    state_reason: str | None
    max_retries: int
    retry_base_seconds: float
    retry_max_seconds: float
    checked_at: datetime | None = Field(
        description="When the credentials were last checked (a test, or the health pass)."
    )
    last_check_ok: bool | None = Field(
        description="Whether that check passed; null: never checked."
    )
    last_check_error: str | None = Field(
        description="What the platform said when the last check failed."
    )
    next_check_at: datetime | None = Field(
        description="When the health pass checks the channel next (HERALD_CHANNEL_CHECK_"
        "HOURS); null while checks are off. Not checked while paused or needs_reconnect."
    )
    created_at: datetime
    updated_at: datetime


class BucketRead(BaseModel):
    """One of the channel's rate budgets: a documented platform limit as a token bucket
    shared by every worker (see docs/operations.md, "Rate limits")."""

    name: str = Field(examples=["statuses"])
    scope: str = Field(
        description="Who shares it: channel, token, account, app or chat.", examples=["account"]
    )
    capacity: int = Field(examples=[300])
    period_seconds: float = Field(
        description="Refills from empty to full in this time.", examples=[10800]
    )
    remaining: float = Field(description="Tokens left now (0 while blocked).")
    resets_at: datetime = Field(description="When it is full again (or unblocked).")
    blocked_until: datetime | None = Field(
        None, description="Until when the platform said to stop (429, or remaining 0)."
    )
    source: str = Field(description="Where the platform documents the limit.")


class ChannelDetail(ChannelRead):
    budget: list[BucketRead] | None = Field(
        None,
        description="The channel's rate budgets now; null when Redis does not answer "
        "(deliveries are then sent unpaced).",
    )


class PlatformRead(BaseModel):
    platform: str
    display_name: str
    credentials_schema: dict[str, Any]
    settings_schema: dict[str, Any]


class JobStarted(BaseModel):
    job_id: str
    status: str = "PENDING"
    message: str
