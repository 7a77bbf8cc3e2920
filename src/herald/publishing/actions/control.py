"""What a person does to deliveries: cancel, unschedule, reschedule, retry.

The one cancel rule, for every route (``DELETE /tasks/cancel/{id}``, ``DELETE
/posts/{id}/schedule``) and the CLI:

- a waiting delivery (scheduled, queued, retry_wait) is cancelled, for certain;
- a running one (publishing) gets a cancel request: the attempt under way cannot be
  taken back, so it is honoured if the attempt ends waiting to retry, and Celery is
  asked to revoke the task (best effort, after commit);
- a published one cannot be cancelled (409); a failed, unconfirmed or cancelled one is
  left as it is.

Unscheduling a post applies that rule to each of its active deliveries.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.channels.models import Channel
from herald.core.clock import utcnow
from herald.core.errors import Conflict, NotFound
from herald.core.tx import after_commit
from herald.posts.service import get_post
from herald.publishing.actions.compare_and_set import send_after_commit, transition
from herald.publishing.models import (
    ACTIVE,
    RETRYABLE,
    WAITING,
    ErrorKind,
    Publication,
    PublicationState,
)
from herald.users.principal import Principal
from herald.webhooks import outbox
from herald.worker import app

log = logging.getLogger(__name__)
S = PublicationState


class AlreadyPublished(Conflict):
    pass


def cancel(session: Session, publication: Publication, *, reason: str = "cancelled") -> str:
    """Apply the cancel rule (module docstring) to one delivery; returns ``cancelled``,
    ``cancel_requested``, or the state it was left in."""
    if transition(session, publication.id, WAITING, S.CANCELLED, values={"last_error": reason}):
        return "cancelled"
    session.refresh(publication)
    if publication.state == S.PUBLISHING:
        session.execute(
            update(Publication)
            .where(Publication.id == publication.id, Publication.state == S.PUBLISHING)
            .values(cancel_requested=True)
            .execution_options(synchronize_session=False)
        )
        revoke_after_commit(session, publication.task_id)
        return "cancel_requested"
    if publication.state == S.PUBLISHED:
        raise AlreadyPublished("This delivery was already published; it cannot be cancelled.")
    return str(publication.state)


def revoke_after_commit(session: Session, task_id: str) -> None:
    """Ask the workers to drop the task, once the cancel request is committed."""
    after_commit(session, lambda: _revoke(task_id))


def _revoke(task_id: str) -> None:
    # Best effort only: the database flag is what the task checks.
    try:
        app.control.revoke(task_id)
    except Exception as exc:
        log.warning("could not send revoke for %s: %s", task_id, exc)


def _of_post(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    states: frozenset[PublicationState],
    channel_ids: list[uuid.UUID] | None,
) -> list[Publication]:
    get_post(session, principal, post_id)
    query = select(Publication).where(
        Publication.post_id == post_id, Publication.state.in_(list(states))
    )
    if channel_ids:
        query = query.where(Publication.channel_id.in_(channel_ids))
    return list(session.scalars(query.order_by(Publication.created_at)))


def unschedule(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    channel_ids: list[uuid.UUID] | None = None,
) -> int:
    """Cancel the post's deliveries that have not gone out, by the cancel rule; returns
    how many were cancelled for certain (a running one only gets a cancel request)."""
    publications = _of_post(session, principal, post_id, ACTIVE, channel_ids)
    outcomes = [cancel(session, p, reason="unscheduled") for p in publications]
    return outcomes.count("cancelled")


def reschedule(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    when: datetime,
    channel_ids: list[uuid.UUID] | None = None,
) -> list[Publication]:
    """Move the post's scheduled deliveries to ``when``; those the scheduler already
    took are left alone. 409 when none is still scheduled."""
    scheduled = _of_post(session, principal, post_id, frozenset({S.SCHEDULED}), channel_ids)
    rows = transition(
        session, [p.id for p in scheduled], [S.SCHEDULED], S.SCHEDULED, values={"due_at": when}
    )
    if not rows:
        raise Conflict("Nothing to reschedule: no delivery of this post is still scheduled.")
    moved = {row.id for row in rows}
    outbox.record(
        session,
        principal.workspace_id,
        "post.scheduled",
        {
            "post_id": post_id,
            "due_at": when,
            "deliveries": [{"delivery_id": row.id, "channel_id": row.channel_id} for row in rows],
            "rescheduled": True,
        },
    )
    for publication in scheduled:
        session.expire(publication)
    return [p for p in scheduled if p.id in moved]


def _requeue(session: Session, publication: Publication) -> bool:
    """failed/unconfirmed → queued with a fresh set of attempts, sent after commit."""
    now = utcnow()
    channel = session.get_one(Channel, publication.channel_id)
    rows = transition(
        session,
        publication.id,
        RETRYABLE,
        S.QUEUED,
        values={
            "enqueued_at": now,
            "due_at": now,
            # A fresh set of attempts on top of those already made.
            "max_attempts": Publication.attempt + 1 + channel.max_retries,
            "cancel_requested": False,
        },
    )
    send_after_commit(session, [(row.id, row.task_id) for row in rows])
    return bool(rows)


def retry(session: Session, principal: Principal, publication_id: uuid.UUID) -> Publication:
    """Send a failed or unconfirmed delivery again (a person decided it did not go out);
    409 for any other."""
    publication = session.get(Publication, publication_id)
    if publication is None or publication.workspace_id != principal.workspace_id:
        raise NotFound(f"No publication {publication_id}.")
    if not _requeue(session, publication):
        raise Conflict(
            f"Only a failed or unconfirmed delivery can be retried; this one is "
            f"{publication.state}."
        )
    session.refresh(publication)
    return publication


def retry_failed(session: Session, principal: Principal) -> int:
    """Re-queue this workspace's deliveries that failed for a retryable reason."""
    failed = session.scalars(
        select(Publication).where(
            Publication.workspace_id == principal.workspace_id,
            Publication.state == S.FAILED,
            Publication.error_kind == ErrorKind.RETRYABLE,
        )
    )
    return sum(1 for publication in list(failed) if _requeue(session, publication))
