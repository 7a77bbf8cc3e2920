"""The reconciler: what a lost message or a dead worker left behind goes on.

Deliveries stuck in queued past the grace are sent again; a publishing one whose lease
ran out had a worker that stopped mid-attempt. The attempt limit holds here too: a
delivery with no attempt left is never sent again but settled ``unconfirmed`` (its last
attempt may have gone out). The moves are :mod:`herald.publishing.actions`'.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.adapters.base import Adapter
from herald.adapters.registry import get_adapter_class
from herald.channels.models import Channel
from herald.core.clock import utcnow
from herald.core.settings import get_settings
from herald.publishing import actions
from herald.publishing.models import Publication, PublicationState

S = PublicationState


def _out_of_attempts(how: str, attempt: int, max_attempts: int) -> str:
    return (
        f"{how} and no attempt is left ({attempt} of {max_attempts} made); it may have "
        "been posted: check the platform, then retry or cancel it"
    )


def reconcile(session: Session) -> dict[str, int]:
    """One pass: re-send stuck queued deliveries, re-examine expired attempts."""
    now = utcnow()
    resent, unconfirmed = _stuck_in_queue(session, now)
    requeued, abandoned = _expired_attempts(session, now)
    actions.resend(session, resent + requeued)
    return {
        "resent": len(resent),
        "requeued": len(requeued),
        "unconfirmed": unconfirmed + abandoned,
    }


def _stuck_in_queue(session: Session, now: datetime) -> tuple[list[actions.Pointer], int]:
    stale = now - timedelta(seconds=get_settings().queued_grace_seconds)
    resend: list[actions.Pointer] = []
    unconfirmed = 0
    stuck = session.execute(
        select(
            Publication.id, Publication.task_id, Publication.attempt, Publication.max_attempts
        ).where(
            Publication.state == S.QUEUED,
            (Publication.enqueued_at.is_(None)) | (Publication.enqueued_at < stale),
        )
    )
    for publication_id, task_id, attempt, max_attempts in list(stuck):
        if attempt < max_attempts:
            resend.append((publication_id, task_id))
        # No claim takes a delivery whose attempts are spent (queued so by an older
        # version): settle it instead of sending it again every grace period.
        elif actions.settle_unconfirmed(
            session,
            publication_id,
            S.QUEUED,
            Publication.attempt >= Publication.max_attempts,
            _out_of_attempts("it was queued again", attempt, max_attempts),
        ):
            unconfirmed += 1
    return resend, unconfirmed


def _expired_attempts(session: Session, now: datetime) -> tuple[list[actions.Pointer], int]:
    expired = session.scalars(
        select(Publication).where(Publication.state == S.PUBLISHING, Publication.lease_until < now)
    )
    requeued: list[actions.Pointer] = []
    unconfirmed = 0
    for publication in list(expired):
        channel = session.get_one(Channel, publication.channel_id)
        adapter_cls = get_adapter_class(channel.platform)
        can_look_up = adapter_cls.find_existing is not Adapter.find_existing
        spent = publication.attempt >= publication.max_attempts
        # The worker died mid-attempt (a running one renews its lease). Resending is safe
        # only where the platform deduplicates by our key, or we can look the post up
        # first (the next attempt does), and only while an attempt is left.
        if not spent and (adapter_cls.honours_idempotency_key or can_look_up):
            if actions.requeue_abandoned(session, publication.id, publication.attempt):
                requeued.append((publication.id, publication.task_id))
            continue
        how = "the worker stopped during the attempt"
        message = (
            _out_of_attempts(how, publication.attempt, publication.max_attempts)
            if spent
            else f"{how}; it may have been posted"
        )
        if actions.settle_unconfirmed(
            session,
            publication.id,
            S.PUBLISHING,
            Publication.attempt == publication.attempt,
            message,
        ):
            unconfirmed += 1
    return requeued, unconfirmed
