"""publishing.reads: a post's deliveries and the waiting ones, named as a person knows them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from herald.channels.schemas import ChannelCreate
from herald.channels.service import create_channel
from herald.core.db import session_scope
from herald.posts.schemas import PostCreate
from herald.posts.service import create_post
from herald.publishing.models import Publication, PublicationState
from herald.publishing.reads import deliveries_of_post, name_deliveries
from herald.scheduling.service import schedule, upcoming
from herald.users.principal import Principal, default_principal
from herald.users.service import create_user

SOONER = datetime(2099, 12, 1, 9, 0, tzinfo=UTC)
LATER = datetime(2099, 12, 3, 9, 0, tzinfo=UTC)
LATEST = datetime(2099, 12, 5, 9, 0, tzinfo=UTC)


def arrange(tmp_path: Path) -> tuple[Principal, dict[str, uuid.UUID], dict[str, uuid.UUID]]:
    """Two posts and two channels; "First" goes to both channels, "Second" to one."""
    with session_scope() as session:
        create_user(session, email="ann@example.com")
        principal = default_principal(session)
        channels = {
            name: create_channel(
                session,
                principal,
                ChannelCreate(platform="folder", name=name, credentials={"path": str(tmp_path)}),
            ).id
            for name in ("site", "mirror")
        }
        posts = {
            title: create_post(session, principal, PostCreate(title=title)).id
            for title in ("First", "Second")
        }
        schedule(session, principal, posts["First"], [channels["site"]], LATER)
        schedule(session, principal, posts["First"], [channels["mirror"]], LATEST)
        schedule(session, principal, posts["Second"], [channels["mirror"]], SOONER)
    return principal, channels, posts


def test_a_posts_deliveries_oldest_first_with_channel_names(
    db_backend: str, tmp_path: Path
) -> None:
    _, channels, posts = arrange(tmp_path)
    with session_scope() as session:
        first = deliveries_of_post(session, posts["First"])
        stored = {
            pub.channel_id: pub
            for pub in session.scalars(
                select(Publication).where(Publication.post_id == posts["First"])
            )
        }
        assert deliveries_of_post(session, uuid.uuid4()) == []
    assert [(d.channel, d.platform, d.state) for d in first] == [
        ("site", "folder", PublicationState.SCHEDULED),
        ("mirror", "folder", PublicationState.SCHEDULED),
    ]
    site = stored[channels["site"]]
    assert (first[0].publication_id, first[0].task_id, first[0].attempt) == (
        site.id,
        site.task_id,
        site.attempt,
    )
    assert (first[0].external_url, first[0].error) == (None, None)


def test_waiting_deliveries_named_by_post_title_and_channel(
    db_backend: str, tmp_path: Path
) -> None:
    principal, _, _ = arrange(tmp_path)
    with session_scope() as session:
        named = name_deliveries(session, upcoming(session, principal))
        assert name_deliveries(session, []) == []
    assert [(d.due_at, d.post, d.channel, d.state) for d in named] == [
        (SOONER, "Second", "mirror", PublicationState.SCHEDULED),
        (LATER, "First", "site", PublicationState.SCHEDULED),
        (LATEST, "First", "mirror", PublicationState.SCHEDULED),
    ]
