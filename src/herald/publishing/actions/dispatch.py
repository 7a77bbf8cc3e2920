"""The scheduler's and the reconciler's moves: dispatch what is due, fail what was
missed, release what a channel held, re-send or settle what a worker left behind."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.orm import Session

from herald.channels import service as channels
from herald.channels.models import Channel, ChannelState
from herald.core.clock import utcnow
from herald.core.settings import get_settings
from herald.core.tx import Tx
from herald.publishing.actions.compare_and_set import send_after_commit, transition
from herald.publishing.models import DUE, ErrorKind, Publication, PublicationState

S = PublicationState
Pointer = tuple[uuid.UUID, str]  # (publication id, task id): what goes to the broker


def waiting_to_dispatch() -> list[ColumnElement[bool]]:
    """Deliveries the dispatcher will move to queued once due: scheduled or waiting to
    retry, not cancelled, on an active channel (a paused or broken channel holds its own)."""
    return [
        Publication.state.in_(list(DUE)),
        Publication.cancel_requested.is_(False),
        Publication.channel_id.in_(select(Channel.id).where(Channel.state == ChannelState.ACTIVE)),
    ]


def budget_turn() -> ColumnElement[bool]:
    """A delivery waiting for its rate-budget turn: the only wait to retry without an
    error kind (``WaitForBudget``'s settlement; a retry after an error has one)."""
    return and_(Publication.state == S.RETRY_WAIT, Publication.error_kind.is_(None))


def dispatch_due(
    session: Session,
    *,
    limit: int = 500,
    channel_id: uuid.UUID | None = None,
    budget_turns: bool | None = None,
) -> list[Pointer]:
    """Move due scheduled/retry_wait deliveries of active channels (or of one channel) to
    queued; never one due longer ago than the missed limit (:func:`fail_missed` fails
    those). ``budget_turns``: only deliveries back at their rate-budget turn (True), only
    the others (False), or both (None).

    Claimed with FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite's single writer needs
    none), so two schedulers never take the same row. Returns the pointers to enqueue
    after commit.
    """
    now = utcnow()
    missed = now - timedelta(seconds=get_settings().missed_limit_seconds)
    conditions = [*waiting_to_dispatch(), Publication.due_at <= now, Publication.due_at >= missed]
    if channel_id is not None:
        conditions.append(Publication.channel_id == channel_id)
    if budget_turns is not None:
        turn = budget_turn()
        conditions.append(turn if budget_turns else ~turn)
    due = (
        select(Publication.id)
        .where(*conditions)
        .order_by(Publication.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    rows = transition(session, ids, DUE, S.QUEUED, values={"enqueued_at": now})
    return [(row.id, row.task_id) for row in rows]


def fail_missed(session: Session) -> int:
    """Deliveries due longer ago than the limit fail with reason `missed`, never posted late."""
    limit = timedelta(seconds=get_settings().missed_limit_seconds)
    now = utcnow()
    missed = session.execute(
        select(Publication.id, Publication.due_at).where(
            Publication.state.in_(list(DUE)), Publication.due_at < now - limit
        )
    )
    failed = 0
    for publication_id, due_at in list(missed):
        if due_at is None:  # the query's comparison excludes NULL; this tells mypy
            continue
        late = now - due_at
        message = (
            f"missed: it was due at {due_at.isoformat()} and Herald was not running until "
            f"{now.isoformat()} ({late.total_seconds() / 3600:.1f} h late, limit "
            f"{limit.total_seconds() / 3600:g} h); publish it again if it is still wanted"
        )
        values = {"error_kind": ErrorKind.MISSED, "last_error": message}
        if transition(session, publication_id, DUE, S.FAILED, values=values):
            failed += 1
    return failed


def resend(tx: Tx, pointers: Sequence[Pointer]) -> None:
    """Send queued deliveries to the broker again, after commit (their message may be
    lost, or was refused): the state stays queued, ``enqueued_at`` restarts the grace."""
    if not pointers:
        return
    tx.execute(
        update(Publication)
        .where(Publication.id.in_([p[0] for p in pointers]), Publication.state == S.QUEUED)
        .values(enqueued_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    send_after_commit(tx, pointers)


@channels.on_reactivated
def release_held(session: Session, channel_id: uuid.UUID) -> int:
    """A channel is active again (reconnected, or resumed): what waited for it goes out
    now, enqueued after this transaction commits, not at the reconciler's next look.

    Its due deliveries move to queued, as the dispatcher moves them, and every queued one
    is sent to the broker again: a worker that took its message while the channel was
    inactive could not claim it and left it queued. Returns how many were sent."""
    dispatch_due(session, channel_id=channel_id)
    queued = session.execute(
        select(Publication.id, Publication.task_id).where(
            Publication.channel_id == channel_id, Publication.state == S.QUEUED
        )
    )
    pointers = [(publication_id, task_id) for publication_id, task_id in queued]
    resend(session, pointers)
    return len(pointers)


def requeue_abandoned(tx: Tx, publication_id: uuid.UUID, attempt: int) -> bool:
    """publishing → queued for attempt ``attempt``, whose worker stopped (its lease ran
    out): safe only where the next attempt cannot post twice (the caller decides)."""
    return bool(
        transition(
            tx,
            publication_id,
            [S.PUBLISHING],
            S.QUEUED,
            where=[Publication.attempt == attempt],
            values={
                "enqueued_at": utcnow(),
                "lease_until": None,
                "last_error": "the worker stopped during the attempt; trying again",
            },
        )
    )


def settle_unconfirmed(
    tx: Tx,
    publication_id: uuid.UUID,
    from_state: PublicationState,
    where: ColumnElement[bool],
    message: str,
) -> bool:
    """queued or publishing → unconfirmed: it may have gone out, a person decides."""
    values: dict[str, Any] = {"error_kind": ErrorKind.AMBIGUOUS, "last_error": message}
    if from_state == S.PUBLISHING:
        values["lease_until"] = None
    return bool(
        transition(tx, publication_id, [from_state], S.UNCONFIRMED, where=[where], values=values)
    )
