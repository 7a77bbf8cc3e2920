from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from herald.core.dates import UtcDateTime
from herald.posts.schemas import PostRead
from herald.publishing.schemas import PublicationRead
from herald.review.service import NOTE_MAX_LENGTH
from herald.scheduling.slots_api import QueuedRead


class ApproveRequest(BaseModel):
    channel_ids: list[uuid.UUID] | None = Field(
        None,
        max_length=100,
        description="Deliver to these channels. Unset: the agent's channels when an agent "
        "wrote the post, else none; [] approves without publishing.",
    )
    schedule: Literal["queue"] | UtcDateTime | None = Field(
        None,
        description='Unset: publish now. "queue": each channel\'s next free posting slot. '
        "An ISO 8601 time with an offset: publish then.",
        examples=["queue", "2026-12-03T10:00:00+01:00"],
    )


class Approved(BaseModel):
    post: PostRead
    publications: list[PublicationRead] = Field(
        description="The deliveries approving made (or found already there)."
    )
    queued: list[QueuedRead] = Field(
        description='With schedule "queue": the slot each channel gave; else empty.'
    )


class RejectRequest(BaseModel):
    note: str = Field(
        min_length=1,
        max_length=NOTE_MAX_LENGTH,
        description="Why: its author reads this to fix the post.",
    )
