"""The one compare-and-set every change of a delivery's state goes through.

:func:`transition` (a) updates the rows only from the states it names (a conditional
UPDATE: an actor that lost the race changes nothing), after checking the move against
``publishing.models.TRANSITIONS`` (a move outside it is a bug and raises at once);
(b) brings each delivery's job row along; (c) sends the ``publication.state`` event
once the transaction commits; (d) re-derives the post's state when the move can change
it. Deliveries go to the broker from here too, by task name, after commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Executable, bindparam, select, update

from herald.channels.models import Channel
from herald.core import direct
from herald.core.clock import utcnow
from herald.core.exceptions import HeraldFault
from herald.core.tx import Tx, after_commit
from herald.events.service import publish_after_commit
from herald.jobs.models import Job, JobState
from herald.publishing import statements
from herald.publishing.models import ACTIVE, SETTLED, TRANSITIONS, Publication, PublicationState
from herald.webhooks import outbox
from herald.worker import PRIORITY_NOW, app

log = logging.getLogger(__name__)
S = PublicationState

# The name the deliver task is registered under (herald.publishing.tasks).
DELIVER_TASK = "herald.publishing.deliver"

# The Celery state a client sees for each delivery state.
JOB_STATE = {
    S.SCHEDULED: JobState.PENDING,
    S.QUEUED: JobState.PENDING,
    S.PUBLISHING: JobState.STARTED,
    S.RETRY_WAIT: JobState.RETRY,
    S.PUBLISHED: JobState.SUCCESS,
    S.FAILED: JobState.FAILURE,
    S.UNCONFIRMED: JobState.FAILURE,
    S.CANCELLED: JobState.REVOKED,
}

# What a transition returns of each row it changed (RETURNING), so nothing is re-read:
# the columns statements.RETURNED names (task_id, post_id, attempt...), and the id.
CHANGED_COLUMNS = (Publication.id, *(getattr(Publication, name) for name in statements.RETURNED))
ChangedRow = Any


class IllegalTransition(HeraldFault, RuntimeError):
    """A move the transitions table does not allow: a bug in the caller, never a race."""


def check_allowed(from_states: Iterable[PublicationState], to_state: PublicationState) -> None:
    refused = [str(state) for state in from_states if to_state not in TRANSITIONS[state]]
    if refused:
        raise IllegalTransition(f"a delivery may not go from {', '.join(refused)} to {to_state}")


def transition(
    tx: Tx,
    publication_ids: uuid.UUID | Sequence[uuid.UUID],
    from_states: Collection[PublicationState],
    to_state: PublicationState,
    *,
    where: Sequence[ColumnElement[bool]] = (),
    values: Mapping[str, Any] | None = None,
    prebuilt: tuple[Any, dict[str, Any]] | None = None,
) -> list[ChangedRow]:
    """Move the deliveries that are in one of ``from_states`` (and meet ``where``) to
    ``to_state``, setting ``values``; return the rows changed (none: others got there
    first).

    ``prebuilt`` is the delivery hot path's own statement and parameters (claim, settle:
    built once in ``publishing.statements``, state guard included) for one delivery."""
    check_allowed(from_states, to_state)
    now = utcnow()
    if prebuilt is not None:
        statement, params = prebuilt
        assert isinstance(publication_ids, uuid.UUID), "a prebuilt statement is for one row"
        found = direct.execute(tx.connection(), statement, params)
        changed = [(publication_ids, row) for row in found]
    else:
        ids = [publication_ids] if isinstance(publication_ids, uuid.UUID) else list(publication_ids)
        if not ids:
            return []
        rows = tx.execute(
            update(Publication)
            .where(
                Publication.id.in_(ids) if len(ids) > 1 else Publication.id == ids[0],
                Publication.state.in_(list(from_states)),
                *where,
            )
            .values(state=to_state, updated_at=now, **(values or {}))
            .returning(*CHANGED_COLUMNS)
            .execution_options(synchronize_session=False)
        ).all()
        changed = [(row.id, row) for row in rows]
    if changed:
        _follow(
            tx,
            changed,
            to_state,
            refresh_post=not (set(from_states) <= ACTIVE and to_state in ACTIVE),
            now=now,
        )
    return [row for _, row in changed]


def _follow(
    tx: Tx,
    changed: list[tuple[uuid.UUID, ChangedRow]],
    state: PublicationState,
    *,
    refresh_post: bool,
    now: datetime,
) -> None:
    """What follows every change: the job rows, the events, the posts' states."""
    job_state = JOB_STATE[state]
    started, finished = job_state == JobState.STARTED, state in SETTLED
    if len(changed) == 1:
        ((_, row),) = changed
        direct.execute(
            tx.connection(),
            statements.sync_job(started, finished),
            {
                "p_id": row.task_id,
                "p_state": job_state,
                "p_updated_at": now,
                **({"p_started_at": now} if started else {}),
                **({"p_finished_at": now} if finished else {}),
            },
        )
    else:
        # A burst (the dispatcher's) in one statement, not one per row.
        stamps = {"started_at": now} if started else {}
        stamps |= {"finished_at": now} if finished else {}
        tx.execute(
            update(Job)
            .where(Job.id.in_([row.task_id for _, row in changed]))
            .values(state=job_state, updated_at=now, **stamps)
            .execution_options(synchronize_session=False)
        )
    for publication_id, row in changed:
        emit(tx, row.workspace_id, publication_id, row.task_id, row.post_id, state)
    if state in WEBHOOK_EVENTS:
        for publication_id, row in changed:
            record_webhook_event(tx, publication_id, row, state)
    if refresh_post:
        # A post's state depends only on whether any delivery is active, and on the
        # settled ones: a move within ACTIVE leaves it as it was.
        for post_id in dict.fromkeys(row.post_id for _, row in changed):
            refresh_post_state(tx, post_id)


def emit(
    tx: Tx,
    workspace_id: uuid.UUID,
    publication_id: uuid.UUID,
    task_id: str,
    post_id: uuid.UUID,
    state: PublicationState,
) -> None:
    """The live ``publication.state`` event, sent after commit."""
    publish_after_commit(
        tx,
        workspace_id,
        "publication.state",
        {
            "publication_id": str(publication_id),
            "task_id": task_id,
            "post_id": str(post_id),
            "state": str(state),
        },
    )


# The event webhooks' events of a delivery's final states.
WEBHOOK_EVENTS = {
    S.PUBLISHED: "delivery.published",
    S.FAILED: "delivery.failed",
    S.UNCONFIRMED: "delivery.unconfirmed",
}


@cache
def _event_details() -> Executable:
    """What a delivery event tells beyond the changed row: platform, URL, error."""
    return (
        select(Channel.platform, Publication.external_url, Publication.last_error)
        .join(Channel, Channel.id == Publication.channel_id)
        .where(Publication.id == bindparam("p_id"))
    )


def record_webhook_event(
    tx: Tx, publication_id: uuid.UUID, row: ChangedRow, state: PublicationState
) -> None:
    """The ``delivery.*`` event, in this transaction (outbox): one index probe when no
    endpoint of the workspace wants it, which is the delivery hot path's usual case."""

    def data() -> dict[str, Any]:
        details = direct.execute(tx.connection(), _event_details(), {"p_id": publication_id})
        platform, url, error = details[0] if details else (None, None, None)
        return {
            "delivery_id": publication_id,
            "post_id": row.post_id,
            "channel_id": row.channel_id,
            "platform": platform,
            "url": url,
            "error": error,
        }

    outbox.record(tx, row.workspace_id, WEBHOOK_EVENTS[state], data)


def refresh_post_state(tx: Tx, post_id: uuid.UUID) -> None:
    """A post's state follows its deliveries (one statement, evaluated in the database)."""
    direct.execute(tx.connection(), statements.post_state(), {"p_post_id": post_id})


# --- to the broker ---------------------------------------------------------------------


def enqueue(publication_id: uuid.UUID, task_id: str, priority: int = PRIORITY_NOW) -> None:
    """Send the pointer to the broker by the task's name (call after commit); the
    scheduler's and batches' sends go behind requests made now (``PRIORITY_BACKLOG``)."""
    # ignore_result as the task declares it: else a Redis result backend subscribes first.
    app.send_task(
        DELIVER_TASK, (str(publication_id),), task_id=task_id, ignore_result=True,
        priority=priority,
    )  # fmt: skip


def send_all(pairs: Iterable[tuple[uuid.UUID, str]], priority: int = PRIORITY_NOW) -> None:
    """Enqueue each pointer; at the first broker failure stop (each try costs time) and
    leave the rest queued in the database for the reconciler."""
    for publication_id, task_id in pairs:
        try:
            enqueue(publication_id, task_id, priority)
        except Exception as exc:
            log.warning("broker unavailable; %s and later ones stay queued: %s", task_id, exc)
            return


def send_after_commit(
    tx: Tx, pairs: Sequence[tuple[uuid.UUID, str]], priority: int = PRIORITY_NOW
) -> None:
    """Send these (publication id, task id) pointers once ``tx`` commits."""
    if pairs:
        after_commit(tx, lambda: send_all(pairs, priority))
