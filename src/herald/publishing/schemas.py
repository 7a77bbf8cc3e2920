from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from herald.jobs.models import JobState
from herald.publishing.models import PublicationState


class PublishRequest(BaseModel):
    channel_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class BatchPublishRequest(BaseModel):
    post_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    channel_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class TaskPublishRequest(BaseModel):
    post_id: uuid.UUID
    channel_id: uuid.UUID


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error: str | None
    external_id: str | None
    external_url: str | None
    retry_at: datetime | None


class PublicationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    post_id: uuid.UUID
    channel_id: uuid.UUID
    task_id: str
    state: PublicationState
    attempt: int
    max_attempts: int
    due_at: datetime | None
    external_id: str | None
    external_url: str | None
    last_error: str | None
    error_kind: str | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptRead]


class PublishAccepted(BaseModel):
    post_id: uuid.UUID
    publications: list[PublicationRead]


class TaskAccepted(BaseModel):
    task_id: str
    status: str = "pending"
    message: str


class PlatformInfo(BaseModel):
    platform: str
    data: dict[str, Any]


class TaskStatus(BaseModel):
    task_id: str
    status: JobState
    ready: bool
    successful: bool
    failed: bool
    result: dict[str, Any] | None
    error: str | None
    progress: dict[str, Any] | None = None
    platform_info: PlatformInfo | None = None
    publication: PublicationRead | None = None


class CancelResult(BaseModel):
    task_id: str
    outcome: str = Field(
        description="`cancelled` (certain), `cancel_requested` (running: best effort), "
        "or the state it had already reached."
    )


class RetryFailedResult(BaseModel):
    requeued: int


class DeliveryStates(BaseModel):
    """The delivery state machine, as ``herald.publishing.models`` declares it."""

    states: list[PublicationState] = Field(
        description="Every state, in the order of a delivery's life."
    )
    groups: dict[str, list[PublicationState]] = Field(
        description="Named groups: `due` (waits for its time), `waiting` (not started: a "
        "cancel is certain), `active` (not over), `settled` (over), `retryable` (a person "
        "may send it again)."
    )
    transitions: dict[PublicationState, list[PublicationState]] = Field(
        description="For each state, the states a delivery may move to from it."
    )
