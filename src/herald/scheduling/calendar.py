"""The calendar: a workspace's deliveries in a range, grouped by day in the reader's zone.

A delivery is placed at its ``due_at``; a published one at its ``published_at`` (when it
actually went out). Days without deliveries are left out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from herald.channels.models import Channel
from herald.channels.service import get_channel
from herald.posts.models import Post
from herald.publishing.models import Publication, PublicationState
from herald.scheduling.slots import parse_range, zone_or_422
from herald.users.principal import Principal

S = PublicationState
# Cancelled deliveries are not on the calendar; published ones are placed by published_at.
BY_DUE_AT = (S.SCHEDULED, S.QUEUED, S.PUBLISHING, S.RETRY_WAIT, S.FAILED, S.UNCONFIRMED)


@dataclass(frozen=True)
class CalendarItem:
    publication_id: uuid.UUID
    post_id: uuid.UUID
    post_title: str
    channel_id: uuid.UUID
    channel_name: str
    platform: str
    state: PublicationState
    at: datetime  # in the reader's zone


@dataclass(frozen=True)
class CalendarDay:
    date: date
    items: list[CalendarItem]


@dataclass(frozen=True)
class Calendar:
    timezone: str
    start: datetime
    end: datetime
    days: list[CalendarDay]


def _in_range(
    principal: Principal, begin: datetime, finish: datetime
) -> Select[Publication, str, str, str]:
    """The workspace's deliveries due (or published) in [begin, finish), with their post's
    title and their channel's name and platform."""
    return (
        select(Publication, Post.title, Channel.name, Channel.platform)
        .join(Post, Post.id == Publication.post_id)
        .join(Channel, Channel.id == Publication.channel_id)
        .where(
            Publication.workspace_id == principal.workspace_id,
            or_(
                and_(
                    Publication.state.in_(BY_DUE_AT),
                    Publication.due_at >= begin,
                    Publication.due_at < finish,
                ),
                and_(
                    Publication.state == S.PUBLISHED,
                    Publication.published_at >= begin,
                    Publication.published_at < finish,
                ),
            ),
        )
    )


def calendar(
    session: Session,
    principal: Principal,
    *,
    start: str | None = None,
    end: str | None = None,
    channel_id: uuid.UUID | None = None,
    tz: str = "UTC",
) -> Calendar:
    zone = zone_or_422(tz, field="tz")
    begin, finish = parse_range(start, end, zone)
    query = _in_range(principal, begin, finish)
    if channel_id is not None:
        get_channel(session, principal, channel_id)  # another workspace's: 404
        query = query.where(Publication.channel_id == channel_id)

    items = []
    for publication, title, channel_name, platform in session.execute(query):
        moment = (
            publication.published_at if publication.state == S.PUBLISHED else publication.due_at
        )
        if moment is None:
            continue
        items.append(
            CalendarItem(
                publication_id=publication.id,
                post_id=publication.post_id,
                post_title=title,
                channel_id=publication.channel_id,
                channel_name=channel_name,
                platform=platform,
                state=publication.state,
                at=moment.astimezone(zone),
            )
        )
    items.sort(key=lambda i: (i.at, i.channel_name, str(i.publication_id)))
    days: dict[date, list[CalendarItem]] = {}
    for item in items:
        days.setdefault(item.at.date(), []).append(item)
    return Calendar(
        timezone=tz,
        start=begin.astimezone(zone),
        end=finish.astimezone(zone),
        days=[CalendarDay(day, day_items) for day, day_items in days.items()],
    )
