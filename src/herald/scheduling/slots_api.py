"""Posting slots, the queue and the calendar over HTTP.

Routers (include each under ``/api/v1``): ``channel_slots_router`` (/channels/{id}/slots),
``queue_router`` (/posts/{id}/queue) and ``calendar_router`` (/calendar); ``routers``
lists all three.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.core.types import StrictInt
from herald.publishing.models import PublicationState
from herald.publishing.schemas import PublicationRead
from herald.scheduling import calendar as calendar_service
from herald.scheduling import slots as service
from herald.users.deps import PrincipalDep

channel_slots_router = APIRouter(
    prefix="/channels", tags=["slots"], responses=problem_responses(401)
)
queue_router = APIRouter(prefix="/posts", tags=["slots"], responses=problem_responses(401))
calendar_router = APIRouter(prefix="/calendar", tags=["slots"], responses=problem_responses(401))
routers = (channel_slots_router, queue_router, calendar_router)

RANGE_HELP = (
    "A date (midnight in {zone}; as `to`, the whole day is included) or an ISO 8601 "
    "date and time with an offset. Default: now → +14 days; at most 92 days."
)
FromQuery = Annotated[
    str | None,
    Query(alias="from", max_length=64, description=RANGE_HELP.format(zone="the zone")),
]
ToQuery = Annotated[
    str | None, Query(alias="to", max_length=64, description="Exclusive. " + RANGE_HELP)
]


# --- schemas -----------------------------------------------------------------------------


def _weekday(value: int | str) -> int:
    return service.weekday_number(value)


class SlotRule(BaseModel):
    weekdays: list[StrictInt | Annotated[str, Field(max_length=9)]] = Field(
        min_length=1,
        max_length=7,
        description="0 = Monday ... 6 = Sunday, or names (mon, tue, ... / monday, ...).",
        examples=[["mon", "wed", "fri"]],
    )
    time: str = Field(
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local wall-clock time in the channel's zone, HH:MM.",
        examples=["09:00"],
    )

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, values: list[int | str]) -> list[int | str]:
        days: list[int | str] = sorted({_weekday(value) for value in values})
        return days


class SlotRuleRead(BaseModel):
    weekdays: list[int] = Field(description="0 = Monday ... 6 = Sunday.")
    time: str


class SlotConfigWrite(BaseModel):
    timezone: str = Field(
        "UTC", max_length=64, description="IANA zone name.", examples=["Europe/Warsaw"]
    )
    slots: list[SlotRule] = Field(default_factory=list, max_length=200)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        service.load_zone(value)
        return value


class SlotConfigRead(BaseModel):
    channel_id: uuid.UUID
    timezone: str
    slots: list[SlotRuleRead] = Field(description="One entry per time, weekdays combined.")

    @classmethod
    def of(cls, config: service.SlotConfig) -> SlotConfigRead:
        by_time: dict[time, list[int]] = {}
        for weekday, at in config.slots:
            by_time.setdefault(at, []).append(weekday)
        return cls(
            channel_id=config.channel_id,
            timezone=config.timezone,
            slots=[
                SlotRuleRead(weekdays=sorted(days), time=at.strftime("%H:%M"))
                for at, days in sorted(by_time.items())
            ],
        )


class SlotOccurrenceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime = Field(description="The slot's instant in UTC.")
    local_at: datetime = Field(description="The same instant in the channel's zone.")
    state: str = Field(description="`free` or `taken`.", examples=["free"])
    publication_id: uuid.UUID | None = Field(description="The delivery holding a taken slot.")
    post_id: uuid.UUID | None


class SlotListingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel_id: uuid.UUID
    timezone: str
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    occurrences: list[SlotOccurrenceRead]


class QueueRequest(BaseModel):
    channel_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class QueuedRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel_id: uuid.UUID
    timezone: str
    at: datetime = Field(description="The chosen slot in UTC.")
    local_at: datetime = Field(description="The chosen slot in the channel's zone.")
    existing: bool = Field(
        description="The post already had an active or published delivery on this channel: "
        "that one is returned and no slot was used."
    )
    publication: PublicationRead


class QueueAccepted(BaseModel):
    post_id: uuid.UUID
    queued: list[QueuedRead]


class CalendarItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    publication_id: uuid.UUID
    post_id: uuid.UUID
    post_title: str
    channel_id: uuid.UUID
    channel_name: str
    platform: str
    state: PublicationState
    at: datetime = Field(description="due_at (published: published_at) in the reader's zone.")


class CalendarDayRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    date: date
    items: list[CalendarItemRead]


class CalendarRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    timezone: str
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    days: list[CalendarDayRead]


# --- routes ------------------------------------------------------------------------------


@channel_slots_router.get("/{channel_id}/slots/config", responses=problem_responses(404))
def get_slot_config(
    channel_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> SlotConfigRead:
    """The channel's time zone and weekly posting slots (UTC and none until set)."""
    return SlotConfigRead.of(service.get_config(session, principal, channel_id))


@channel_slots_router.put("/{channel_id}/slots/config", responses=problem_responses(403, 404, 422))
def put_slot_config(
    channel_id: uuid.UUID, body: SlotConfigWrite, principal: PrincipalDep, session: SessionDep
) -> SlotConfigRead:
    """Replace the channel's time zone and slots; repeated weekday/time pairs count once."""
    pairs = [
        (int(day), time.fromisoformat(rule.time)) for rule in body.slots for day in rule.weekdays
    ]
    config = service.set_config(session, principal, channel_id, timezone=body.timezone, slots=pairs)
    return SlotConfigRead.of(config)


@channel_slots_router.get(
    "/{channel_id}/slots",
    responses=problem_responses(404, 422),
)
def list_slots(
    channel_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
) -> SlotListingRead:
    """Each slot occurrence in ``[from, to)``, free or taken by a delivery due at it.

    Dates are read in the channel's zone.
    """
    listing = service.list_occurrences(session, principal, channel_id, start=start, end=end)
    return SlotListingRead.model_validate(listing)


@queue_router.post(
    "/{post_id}/queue",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 409, 422),
)
def queue_post(
    post_id: uuid.UUID, body: QueueRequest, principal: PrincipalDep, session: SessionDep
) -> QueueAccepted:
    """Schedule the post into the next free slot of each channel (after now).

    A channel without slots is a 422; one whose slots are all taken for a year is a 409.
    """
    queued = service.queue_post(session, principal, post_id, body.channel_ids)
    return QueueAccepted(post_id=post_id, queued=[QueuedRead.model_validate(q) for q in queued])


@calendar_router.get("", responses=problem_responses(404, 422))
def get_calendar(
    principal: PrincipalDep,
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
    channel_id: uuid.UUID | None = None,
    tz: Annotated[str, Query(max_length=64, description="IANA zone to group days in.")] = "UTC",
) -> CalendarRead:
    """Deliveries in ``[from, to)`` grouped by day in ``tz``; dates are read in ``tz``."""
    result = calendar_service.calendar(
        session, principal, start=start, end=end, channel_id=channel_id, tz=tz
    )
    return CalendarRead.model_validate(result)
