"""The channel health pass: every minute, in ``herald beat``, claim the active channels
whose check is due and start the channel test for each (``herald.channels.health``).

- **Order.** A channel with a delivery waiting to go out in the next
  :data:`SOON` (scheduled, queued or waiting to retry) comes first, then the longest
  due; at most :data:`CLAIM_BATCH` a pass, the rest a minute later. So when checks pile
  up (the scheduler was down), the channel a post is about to use is checked before the
  post fails, and the person hears of it while there is time to reconnect.
- **Claim.** One conditional UPDATE moves each claimed channel's ``next_check_at`` past
  :data:`CHECK_LEASE`, only while it is still active and due (a compare-and-set; on
  PostgreSQL also ``FOR UPDATE SKIP LOCKED``): two schedulers, or the pass and
  ``herald channel check-all``, never start two checks of one channel. A check that is
  lost (its message, its worker) is claimed again when the lease runs out; a check
  that ends puts the next one a period later (``record_check``).
- **Skipped.** Paused channels, and channels already marked ``needs_reconnect``: they
  are not checked again until a person reconnects them (new credentials are checked at
  the next pass).
- **Queue.** The checks go to ``maintenance``, not ``publishing`` where a person's test
  goes: a check may wait minutes without harm, but a slow platform holding a
  publishing slot would make a scheduled delivery late.
- **Placing.** A channel with no ``next_check_at`` (made before this pass existed, or
  while the checks were off) gets its place in the period first, as a new one does.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from herald.channels import health
from herald.channels import service as channels
from herald.channels.models import Channel, ChannelState
from herald.core.clock import utcnow
from herald.core.tx import after_commit
from herald.publishing.models import WAITING, Publication

# Channels claimed per pass (a pass a minute: 72,000 checks a day at most).
CLAIM_BATCH: Final = 50
# Channels given their first place per pass.
PLACE_BATCH: Final = 1000
# A claimed check not recorded by then is presumed lost and claimed again. Longer than a
# check takes (its calls time out within minutes) and than it may wait in its queue.
CHECK_LEASE: Final = timedelta(hours=1)
# A channel with a delivery due this soon is checked first.
SOON: Final = timedelta(hours=24)
CHECK_QUEUE: Final = "maintenance"


def place_unplaced(session: Session, now: datetime, period: timedelta) -> int:
    """Give active channels without a next check their place in the period."""
    ids = list(
        session.scalars(
            select(Channel.id)
            .where(Channel.state == ChannelState.ACTIVE, Channel.next_check_at.is_(None))
            .limit(PLACE_BATCH)
        )
    )
    for channel_id in ids:
        session.execute(
            update(Channel)
            .where(Channel.id == channel_id, Channel.next_check_at.is_(None))
            .values(next_check_at=health.first_check_at(channel_id, now, period))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def claim_due(
    session: Session, now: datetime, limit: int = CLAIM_BATCH
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Claim due checks: (channel id, workspace id) each, those with a delivery due
    within :data:`SOON` first, then by due time."""
    soon = select(Publication.channel_id).where(
        Publication.state.in_(WAITING),
        or_(Publication.due_at.is_(None), Publication.due_at <= now + SOON),
    )
    # Two statements, not UPDATE ... IN (SELECT ... LIMIT): PostgreSQL may run such a
    # subquery again for each row, and FOR UPDATE SKIP LOCKED then skips the rows this
    # very statement updated and finds more: a limit of 1 claimed all of them.
    due = list(
        session.scalars(
            select(Channel.id)
            .where(Channel.state == ChannelState.ACTIVE, Channel.next_check_at <= now)
            .order_by(case((Channel.id.in_(soon), 0), else_=1), Channel.next_check_at, Channel.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
    )
    if not due:
        return []
    claimed = session.execute(
        update(Channel)
        # Checked again here, on the row as it is now: the compare-and-set.
        .where(
            Channel.id.in_(due),
            Channel.state == ChannelState.ACTIVE,
            Channel.next_check_at <= now,
        )
        .values(next_check_at=now + CHECK_LEASE)
        .returning(Channel.id, Channel.workspace_id)
        .execution_options(synchronize_session=False)
    )
    return [(channel_id, workspace_id) for channel_id, workspace_id in claimed]


def health_pass(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """One pass: place new channels, claim the due checks, start a test job for each
    (sent once this transaction commits)."""
    period = health.check_period()
    if period is None:
        return {"off": True}
    now = now or utcnow()
    placed = place_unplaced(session, now, period)
    claims = claim_due(session, now)
    job_ids = [
        channels.create_verify_job(
            session,
            workspace_id=workspace_id,
            channel_id=channel_id,
            owner_id=None,
            trigger="health",
        ).id
        for channel_id, workspace_id in claims
    ]
    if job_ids:
        after_commit(session, lambda: channels.send_verify_jobs(job_ids, queue=CHECK_QUEUE))
    return {"placed": placed, "claimed": len(job_ids), "jobs": job_ids}
