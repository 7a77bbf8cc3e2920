from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from herald.publishing.schemas import PublicationRead


class ScheduleRequest(BaseModel):
    scheduled_at: str = Field(
        max_length=100,
        description="ISO 8601 with an offset, or a local time and a zone name.",
        examples=["2026-12-03T10:00:00+01:00", "2026-12-03 10:00 Europe/Warsaw"],
    )
    channel_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class RescheduleRequest(BaseModel):
    scheduled_at: str = Field(max_length=100, examples=["2026-12-03 11:30 Europe/Warsaw"])
    channel_ids: list[uuid.UUID] | None = Field(
        None, description="Only these channels' deliveries; unset: all still scheduled."
    )


class Scheduled(BaseModel):
    post_id: uuid.UUID
    scheduled_at: datetime
    publications: list[PublicationRead]


class Unscheduled(BaseModel):
    post_id: uuid.UUID
    cancelled: int = Field(description="How many waiting deliveries were cancelled for certain.")


class PeriodicJob(BaseModel):
    name: str
    task: str
    schedule: str
    last_run_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None
    last_error: str | None
    next_run_at: datetime | None
