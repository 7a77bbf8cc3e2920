"""Posting slots per channel (the "queue"): local wall-clock times on chosen weekdays.

A channel's slots are kept in its IANA time zone (``channel_schedules.timezone``, UTC
when never set). Each occurrence is computed from the local date and the local time, so
a 09:00 slot stays at 09:00 on both sides of a daylight-saving change.

DST rules (PEP 495, ``fold=0``):

- a local time that does not exist (the spring gap, e.g. 02:30 on 2026-03-29 in
  Europe/Warsaw) takes the instant after the transition, shifted by the gap: 03:30 CEST;
- a local time that happens twice (the autumn hour, e.g. 02:30 on 2026-10-25) takes the
  first occurrence: 02:30 CEST (00:30 UTC).

Two slots that fall on one instant (02:30 and 03:30 on the spring day) are one occurrence.

Queueing a post takes the next free slot of each channel. A slot is taken when a delivery
of that channel in a TAKEN state is due at its instant. Two requests racing for one slot
are kept apart by ``slot_reservations``: a unique (channel_id, due_at) row inserted in the
same transaction as the delivery; the loser gets an IntegrityError inside a SAVEPOINT and
tries the next slot. A reservation whose delivery went away (cancelled, failed,
rescheduled, retrying later) no longer holds its slot and is replaced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.channels.models import Channel
from herald.channels.service import get_channel
from herald.core.clock import utcnow
from herald.core.dates import check_day, to_utc
from herald.core.errors import Conflict, InvalidInput
from herald.posts.service import get_post
from herald.publishing import actions
from herald.publishing.models import ACTIVE, Publication, PublicationState
from herald.scheduling.models import DEFAULT_TIMEZONE

# The slot models live in scheduling.models; re-exported (PEP 484's "as" form) because
# herald.models and the tests import them from here.
from herald.scheduling.models import ChannelSchedule as ChannelSchedule  # noqa: PLC0414
from herald.scheduling.models import ChannelSlot as ChannelSlot  # noqa: PLC0414
from herald.scheduling.models import SlotReservation as SlotReservation  # noqa: PLC0414
from herald.users.principal import Principal

S = PublicationState
# A delivery in one of these states at a slot's instant holds the slot.
TAKEN = ACTIVE | {S.PUBLISHED}
DEFAULT_RANGE = timedelta(days=14)
MAX_RANGE = timedelta(days=92)
# How far ahead the queue looks for a free slot, and in what steps it reads deliveries.
QUEUE_HORIZON = timedelta(days=366)
QUEUE_WINDOW = timedelta(days=31)
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def weekday_number(value: int | str) -> int:
    """0 = Monday ... 6 = Sunday, from a number or a (short or full) English name."""
    if isinstance(value, str):
        key = value.strip().lower()
        for names in (WEEKDAY_NAMES, FULL_NAMES):
            if key in names:
                return names.index(key)
        if not key.isdigit():
            raise ValueError(
                f"unknown weekday {value!r}; use 0-6 (0 = Monday) or mon, tue, ... sun"
            )
        value = int(key)
    if 0 <= value <= 6:
        return value
    raise ValueError(f"weekday {value} is not 0 (Monday) to 6 (Sunday)")


# --- time zones and ranges ---------------------------------------------------------------


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with a readable message when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Warsaw' or 'UTC'"
        ) from None


def zone_or_422(name: str, *, field: str, where: str = "query") -> ZoneInfo:
    try:
        return load_zone(name)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), errors=[{"loc": [where, field], "msg": str(exc), "type": "value_error"}]
        ) from None


def range_bound(value: str | None, zone: ZoneInfo, *, field: str, end: bool) -> datetime | None:
    """A range bound: ISO 8601 with an offset, or a date (midnight in ``zone``; an end
    date is inclusive, so it means the midnight after it)."""
    if value is None:
        return None
    text = value.strip()
    if "T" in text and " " in text:
        text = text.replace(" ", "+")  # an unencoded "+" in a query string arrives as " "
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        message = (
            f"{field}: give a date (2026-10-25) or a date and time with an offset "
            f"(2026-10-25T09:00:00+02:00), not {value!r}"
        )
        raise InvalidInput(
            message, errors=[{"loc": ["query", field], "msg": message, "type": "value_error"}]
        ) from None
    try:
        if len(text) == 10:
            # Checked before any arithmetic: the day after 9999-12-31 does not exist.
            check_day(day)
            moment = local_instant(day + timedelta(days=1) if end else day, time(0), zone)
        return to_utc(moment)
    except ValueError as exc:
        message = f"{field}: {exc}"
        raise InvalidInput(
            message, errors=[{"loc": ["query", field], "msg": message, "type": "value_error"}]
        ) from None


def parse_range(start: str | None, end: str | None, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``[from, to)`` in UTC: defaults now → +14 days, at most 92 days long."""
    begin = range_bound(start, zone, field="from", end=False) or utcnow()
    finish = range_bound(end, zone, field="to", end=True) or begin + DEFAULT_RANGE
    problem = None
    if finish <= begin:
        problem = "'to' must be after 'from'"
    elif finish - begin > MAX_RANGE:
        problem = f"the range is longer than {MAX_RANGE.days} days; ask for a shorter one"
    if problem:
        raise InvalidInput(
            problem, errors=[{"loc": ["query", "to"], "msg": problem, "type": "value_error"}]
        )
    return begin, finish


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local date and wall-clock time (fold=0, see the module doc)."""
    return datetime.combine(day, at.replace(fold=0), tzinfo=zone).astimezone(UTC)


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class SlotConfig:
    channel_id: uuid.UUID
    timezone: str
    # (weekday, local time), sorted by time then weekday, no duplicates.
    slots: tuple[tuple[int, time], ...]


def _schedule(session: Session, channel_id: uuid.UUID) -> ChannelSchedule | None:
    return session.get(ChannelSchedule, channel_id)


def _slots(session: Session, channel_id: uuid.UUID) -> tuple[tuple[int, time], ...]:
    rows = session.execute(
        select(ChannelSlot.weekday, ChannelSlot.local_time).where(
            ChannelSlot.channel_id == channel_id
        )
    )
    return tuple(sorted({(r.weekday, r.local_time) for r in rows}, key=lambda s: (s[1], s[0])))


def _config(session: Session, channel: Channel) -> SlotConfig:
    schedule = _schedule(session, channel.id)
    return SlotConfig(
        channel_id=channel.id,
        timezone=schedule.timezone if schedule else DEFAULT_TIMEZONE,
        slots=_slots(session, channel.id),
    )


def get_config(session: Session, principal: Principal, channel_id: uuid.UUID) -> SlotConfig:
    return _config(session, get_channel(session, principal, channel_id))


def set_config(
    session: Session,
    principal: Principal,
    channel_id: uuid.UUID,
    *,
    timezone: str,
    slots: Iterable[tuple[int, time]],
) -> SlotConfig:
    """Replace the channel's time zone and slots (duplicates collapse into one)."""
    principal.require_manager()
    channel = get_channel(session, principal, channel_id)
    zone_or_422(timezone, field="timezone", where="body")
    wanted = set()
    for weekday, at in slots:
        if not 0 <= weekday <= 6:
            raise InvalidInput(f"weekday {weekday} is not 0 (Monday) to 6 (Sunday)", field="slots")
        if at.tzinfo is not None:
            raise InvalidInput("slot times are local wall-clock times, without an offset")
        wanted.add((weekday, at.replace(second=0, microsecond=0)))

    # Lock the channel's schedule row, so two concurrent PUTs apply one after the other.
    schedule = session.get(ChannelSchedule, channel.id, with_for_update=True)
    if schedule is None:
        try:
            with session.begin_nested():
                session.add(
                    ChannelSchedule(
                        channel_id=channel.id, workspace_id=channel.workspace_id, timezone=timezone
                    )
                )
        except IntegrityError:  # created by a concurrent PUT in the meantime
            schedule = session.get(
                ChannelSchedule, channel.id, with_for_update=True, populate_existing=True
            )
    if schedule is not None:
        schedule.timezone = timezone
    session.execute(delete(ChannelSlot).where(ChannelSlot.channel_id == channel.id))
    for weekday, at in sorted(wanted):
        session.add(
            ChannelSlot(
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                weekday=weekday,
                local_time=at,
            )
        )
    session.flush()
    return _config(session, channel)


# --- occurrences -------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotOccurrence:
    at: datetime  # UTC
    local_at: datetime  # the same instant in the channel's zone
    publication_id: uuid.UUID | None = None
    post_id: uuid.UUID | None = None

    @property
    def taken(self) -> bool:
        return self.publication_id is not None

    @property
    def state(self) -> str:
        return "taken" if self.taken else "free"


def iter_instants(
    slots: Iterable[tuple[int, time]], zone: ZoneInfo, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Each slot instant in ``[start, end)``, ascending, each instant once."""
    by_weekday: dict[int, list[time]] = {}
    for weekday, at in slots:
        by_weekday.setdefault(weekday, []).append(at)
    if not by_weekday:
        return
    # One day of margin each side: a local day may begin before its UTC day.
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    seen: set[datetime] = set()
    while day <= last:
        instants = sorted(
            {local_instant(day, at, zone) for at in by_weekday.get(day.weekday(), ())}
        )
        for instant in instants:
            if start <= instant < end and instant not in seen:
                seen.add(instant)
                yield instant
        day += timedelta(days=1)


def _holders(
    session: Session, channel_id: uuid.UUID, start: datetime, end: datetime
) -> dict[datetime, Publication]:
    """Deliveries of the channel holding an instant in ``[start, end)``."""
    rows = session.scalars(
        select(Publication)
        .where(
            Publication.channel_id == channel_id,
            Publication.state.in_(list(TAKEN)),
            Publication.due_at >= start,
            Publication.due_at < end,
        )
        .order_by(Publication.created_at)
    )
    holders: dict[datetime, Publication] = {}
    for publication in rows:
        if publication.due_at is not None:
            holders.setdefault(publication.due_at, publication)
    return holders


@dataclass(frozen=True)
class SlotListing:
    channel_id: uuid.UUID
    timezone: str
    start: datetime
    end: datetime
    occurrences: list[SlotOccurrence]


def list_occurrences(
    session: Session,
    principal: Principal,
    channel_id: uuid.UUID,
    *,
    start: str | None = None,
    end: str | None = None,
) -> SlotListing:
    """Every slot occurrence in the range, free or taken (with the delivery that holds it)."""
    config = get_config(session, principal, channel_id)
    zone = load_zone(config.timezone)
    begin, finish = parse_range(start, end, zone)
    holders = _holders(session, channel_id, begin, finish)
    occurrences = []
    for instant in iter_instants(config.slots, zone, begin, finish):
        holder = holders.get(instant)
        occurrences.append(
            SlotOccurrence(
                at=instant,
                local_at=instant.astimezone(zone),
                publication_id=holder.id if holder else None,
                post_id=holder.post_id if holder else None,
            )
        )
    return SlotListing(
        channel_id, config.timezone, begin.astimezone(zone), finish.astimezone(zone), occurrences
    )


# --- the queue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedDelivery:
    channel_id: uuid.UUID
    timezone: str
    at: datetime
    local_at: datetime
    publication: Publication
    # True when the post already had an active or published delivery on the channel:
    # that one is returned and no slot is used.
    existing: bool = False


def _reserve(session: Session, channel: Channel, instant: datetime) -> uuid.UUID | None:
    """Claim ``instant`` for the channel; None when another transaction holds it."""
    holder = exists().where(
        Publication.channel_id == channel.id,
        Publication.due_at == instant,
        Publication.state.in_(list(TAKEN)),
    )
    reservation_id = uuid.uuid4()
    try:
        with session.begin_nested():
            # A reservation whose delivery no longer holds the instant is stale.
            session.execute(
                delete(SlotReservation)
                .where(
                    SlotReservation.channel_id == channel.id,
                    SlotReservation.due_at == instant,
                    ~holder,
                )
                .execution_options(synchronize_session=False)
            )
            session.execute(
                insert(SlotReservation).values(
                    id=reservation_id,
                    workspace_id=channel.workspace_id,
                    channel_id=channel.id,
                    due_at=instant,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        return None
    return reservation_id


def _next_free_slot(
    session: Session, channel: Channel, config: SlotConfig, after: datetime
) -> tuple[datetime, uuid.UUID]:
    zone = load_zone(config.timezone)
    window_start = after + timedelta(microseconds=1)  # strictly after now
    horizon = after + QUEUE_HORIZON
    while window_start < horizon:
        window_end = min(window_start + QUEUE_WINDOW, horizon)
        holders = _holders(session, channel.id, window_start, window_end)
        for instant in iter_instants(config.slots, zone, window_start, window_end):
            if instant in holders:
                continue
            reservation_id = _reserve(session, channel, instant)
            if reservation_id is not None:
                return instant, reservation_id
        window_start = window_end
    raise Conflict(
        f"Channel {channel.name!r} has no free slot in the next {QUEUE_HORIZON.days} days; "
        "add slots or schedule the post at an exact time."
    )


def _already_there(publication: Publication, timezone: str, now: datetime) -> QueuedDelivery:
    """The delivery the post already has on the channel: returned, no slot used."""
    at = publication.due_at or now
    local = at.astimezone(load_zone(timezone))
    return QueuedDelivery(publication.channel_id, timezone, at, local, publication, existing=True)


def queue_post(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    channel_ids: Iterable[uuid.UUID],
) -> list[QueuedDelivery]:
    """Schedule the post into the next free slot of each channel."""
    post = get_post(session, principal, post_id)
    channels = [get_channel(session, principal, cid) for cid in dict.fromkeys(channel_ids)]
    configs = {channel.id: _config(session, channel) for channel in channels}
    without = [c.name for c in channels if not configs[c.id].slots]
    if without:
        names = ", ".join(repr(name) for name in without)
        raise InvalidInput(
            f"Channel {names} has no posting slots; set them with "
            "PUT /api/v1/channels/{id}/slots/config first.",
            field="channel_ids",
        )
    existing = {
        p.channel_id: p
        for p in session.scalars(
            select(Publication).where(
                Publication.post_id == post.id,
                Publication.channel_id.in_([c.id for c in channels]),
                Publication.state.in_(list(TAKEN)),
            )
        )
    }
    now = utcnow()
    # Every reservation first: a SAVEPOINT rolled back after create_publications would
    # also drop the after-commit callbacks it registered (core.tx listens to after_rollback).
    chosen: dict[uuid.UUID, tuple[datetime, uuid.UUID]] = {
        channel.id: _next_free_slot(session, channel, configs[channel.id], now)
        for channel in channels
        if channel.id not in existing
    }
    result = []
    for channel in channels:
        timezone = configs[channel.id].timezone
        if channel.id in existing:
            result.append(_already_there(existing[channel.id], timezone, now))
            continue
        instant, reservation_id = chosen[channel.id]
        (publication,) = actions.publish(session, principal, post.id, [channel.id], due_at=instant)
        session.execute(
            update(SlotReservation)
            .where(SlotReservation.id == reservation_id)
            .values(publication_id=publication.id)
            .execution_options(synchronize_session=False)
        )
        local = instant.astimezone(load_zone(timezone))
        result.append(QueuedDelivery(channel.id, timezone, instant, local, publication))
    session.flush()
    return result
