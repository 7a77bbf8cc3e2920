"""Read-only views of deliveries for people: which channels a post went to and how each
went, and what is waiting for its time, with the names a person knows them by."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.channels.models import Channel
from herald.posts.models import Post
from herald.publishing.models import Publication, PublicationState


@dataclass(frozen=True)
class Delivery:
    """One delivery of a post, as `herald post status` shows it."""

    publication_id: uuid.UUID
    task_id: str
    channel: str  # the channel's name
    platform: str
    state: PublicationState
    attempt: int
    external_url: str | None
    error: str | None


def deliveries_of_post(session: Session, post_id: uuid.UUID) -> list[Delivery]:
    """Every delivery of a post, oldest first. Not scoped to a workspace: the command
    line, its caller, acts for the whole server."""
    rows = session.execute(
        select(Publication, Channel.name, Channel.platform)
        .join(Channel, Channel.id == Publication.channel_id)
        .where(Publication.post_id == post_id)
        .order_by(Publication.created_at)
    ).all()
    return [
        Delivery(
            publication_id=pub.id,
            task_id=pub.task_id,
            channel=name,
            platform=platform,
            state=pub.state,
            attempt=pub.attempt,
            external_url=pub.external_url,
            error=pub.last_error,
        )
        for pub, name, platform in rows
    ]


@dataclass(frozen=True)
class NamedDelivery:
    """A delivery with its post's title and its channel's name."""

    publication_id: uuid.UUID
    due_at: datetime | None
    post: str  # the post's title
    channel: str  # the channel's name
    state: PublicationState


def name_deliveries(session: Session, publications: Sequence[Publication]) -> list[NamedDelivery]:
    """The deliveries in the order given, each with its post's title and channel's name
    (two queries, however many deliveries)."""
    post_ids = {pub.post_id for pub in publications}
    channel_ids = {pub.channel_id for pub in publications}
    titles = dict(session.execute(select(Post.id, Post.title).where(Post.id.in_(post_ids))).all())
    names = dict(
        session.execute(select(Channel.id, Channel.name).where(Channel.id.in_(channel_ids))).all()
    )
    return [
        NamedDelivery(
            publication_id=pub.id,
            due_at=pub.due_at,
            post=titles[pub.post_id],
            channel=names[pub.channel_id],
            state=pub.state,
        )
        for pub in publications
    ]
