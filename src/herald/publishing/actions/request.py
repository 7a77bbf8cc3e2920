"""Publish: a post's deliveries, one per channel, now or at a time."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from herald.core import direct
from herald.core.clock import utcnow
from herald.core.errors import Conflict, NotFound
from herald.jobs.models import JobState
from herald.posts.models import PostState
from herald.publishing import statements
from herald.publishing.actions.compare_and_set import emit, refresh_post_state, send_after_commit
from herald.publishing.models import Publication, PublicationState
from herald.users.principal import Principal
from herald.webhooks import outbox
from herald.worker import PRIORITY_NOW

S = PublicationState

# A new delivery's columns before the request fills in its own: the scalar defaults the
# model declares (attempt 0, no cancel asked...), else None.
_NEW_PUBLICATION: dict[str, Any] = {
    column.key: column.default.arg
    if isinstance(column.default, ScalarElementColumnDefault)
    else None
    for column in statements.publications.c
}


def publish(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    channel_ids: Iterable[uuid.UUID],
    *,
    due_at: datetime | None = None,
    priority: int = PRIORITY_NOW,
) -> list[Publication]:
    """One delivery per channel, queued now or scheduled for ``due_at``; a channel that
    already has an active or published delivery of the post gets that one back. A batch
    sends its deliveries with ``PRIORITY_BACKLOG``, behind those a person asked for now."""
    # Core reads on the session's connection (its transaction), after one flush so that
    # they see a post made in this session: the ORM layer is only needed for deliveries
    # that already exist, which a first publish has none of.
    session.flush()
    connection = session.connection()
    wanted = list(dict.fromkeys(channel_ids))
    max_retries = _check_request(connection, principal.workspace_id, post_id, wanted)
    existing: dict[uuid.UUID, Publication] = {}
    if direct.execute(connection, statements.has_live_publications(), {"p_post_id": post_id}):
        existing = {
            p.channel_id: p
            for p in session.scalars(statements.live_publications(), {"p_post_id": post_id})
        }
    now = utcnow()
    state = S.SCHEDULED if due_at is not None and due_at > now else S.QUEUED
    job_rows: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    for channel_id in wanted:
        if channel_id not in existing:
            job, row = _new_delivery(principal, post_id, channel_id, state, now, due_at or now)
            row["max_attempts"] = max_retries[channel_id] + 1
            job_rows.append(job)
            new_rows.append(row)
    made: dict[uuid.UUID, Publication] = {}
    if new_rows:
        # Plain inserts (the jobs first: deliveries refer to them), then the new rows join
        # the session as if loaded, with every column known: no flush, no re-read.
        direct.execute(connection, statements.insert_jobs(), job_rows)
        direct.execute(connection, statements.insert_publications(), new_rows)
        made = {row["channel_id"]: _loaded(session, row) for row in new_rows}
    result = [existing.get(channel_id) or made[channel_id] for channel_id in wanted]
    for p in result:
        emit(session, p.workspace_id, p.id, p.task_id, p.post_id, p.state)
    refresh_post_state(session, post_id)
    if state == S.SCHEDULED and new_rows:
        outbox.record(
            session,
            principal.workspace_id,
            "post.scheduled",
            {
                "post_id": post_id,
                "due_at": due_at,
                "deliveries": [
                    {"delivery_id": row["id"], "channel_id": row["channel_id"]} for row in new_rows
                ],
                "rescheduled": False,
            },
        )
    queued = [(p.id, p.task_id) for p in result if p.state == S.QUEUED]
    send_after_commit(session, queued, priority)
    return result


def _check_request(
    connection: Connection,
    workspace_id: uuid.UUID,
    post_id: uuid.UUID,
    channel_ids: list[uuid.UUID],
) -> dict[uuid.UUID, int]:
    """404 unless the post and every channel are this workspace's, 409 while the post
    waits for review; returns each channel's ``max_retries``.

    Every way a delivery is made (publish, schedule, queue, batch, approve) passes here,
    so this is where a draft that a person has not approved is held back."""
    found = direct.execute(
        connection,
        statements.post_in_workspace(),
        {"p_id": post_id, "p_workspace_id": workspace_id},
    )
    if not found:  # another workspace's post is indistinguishable from a missing one
        raise NotFound(f"No post {post_id}.")
    state = found[0].state
    if state == PostState.IN_REVIEW:
        raise Conflict(
            f"Post {post_id} is waiting for review; approve it first "
            f"(POST /api/v1/posts/{post_id}/approve)."
        )
    if state == PostState.REJECTED:
        raise Conflict(
            f"Post {post_id} was rejected in review; edit it and send it back with "
            f"POST /api/v1/posts/{post_id}/submit, then have it approved."
        )
    max_retries: dict[uuid.UUID, int] = {
        row.id: row.max_retries
        for row in connection.execute(
            statements.channels_in_workspace(),
            {"p_ids": channel_ids, "p_workspace_id": workspace_id},
        )
    }
    for channel_id in channel_ids:
        if channel_id not in max_retries:
            raise NotFound(f"No channel {channel_id}.")
    return max_retries


def _new_delivery(
    principal: Principal,
    post_id: uuid.UUID,
    channel_id: uuid.UUID,
    state: PublicationState,
    now: datetime,
    due_at: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job row and the delivery row of one new delivery."""
    publication_id, task_id = uuid.uuid4(), str(uuid.uuid4())
    job = {
        "id": task_id,
        "workspace_id": principal.workspace_id,
        "owner_id": principal.user_id,
        "kind": "publish",
        "params": {
            "publication_id": str(publication_id),
            "post_id": str(post_id),
            "channel_id": str(channel_id),
        },
        "state": JobState.PENDING,
        "created_at": now,
        "updated_at": now,
    }
    row = _NEW_PUBLICATION | {
        "id": publication_id,
        "workspace_id": principal.workspace_id,
        "post_id": post_id,
        "channel_id": channel_id,
        "task_id": task_id,
        "state": state,
        "idempotency_key": f"herald-{publication_id.hex}",
        "due_at": due_at,
        "enqueued_at": now if state == S.QUEUED else None,
        "created_at": now,
        "updated_at": now,
    }
    return job, row


def _loaded(session: Session, row: dict[str, Any]) -> Publication:
    """The ORM object of a row just inserted with every column, in ``session`` as if it
    had been loaded (no history, no expired attributes; it has no attempts yet)."""
    publication = Publication(**row)
    make_transient_to_detached(publication)
    set_committed_value(publication, "attempts", [])
    session.add(publication)
    return publication
