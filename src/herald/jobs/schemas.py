from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from herald.jobs.models import READY_STATES, Job, JobState


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    state: JobState
    ready: bool
    params: dict[str, Any]
    progress_done: int
    progress_total: int | None
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobRead:
        return cls.model_validate(
            {
                **{k: getattr(job, k) for k in cls.model_fields if k != "ready"},
                "ready": job.state in READY_STATES,
            }
        )
