"""Monitoring: claim the sources whose check is due, then send one check each.

The claim is one statement: every enabled source with ``next_check_at`` past moves its
due time into ``claimed_due_at`` and its ``next_check_at`` past the check's lease. Two
schedulers running it at once claim disjoint sets (SQLite has one writer; PostgreSQL
skips rows another claim has locked), so each due check is sent once. A check whose
worker died is claimed again when its lease runs out; its late record, if any, finds
the claim gone and stores nothing (:mod:`herald.sources.check`).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.core.settings import get_settings
from herald.core.tx import after_commit
from herald.sources.models import Source
from herald.worker import app as celery_app

log = logging.getLogger(__name__)

CHECK_TASK = "herald.sources.check"
# Checks claimed per pass; the rest wait for the next pass, seconds later.
CLAIM_BATCH = 500


def claim_due(
    session: Session, now: datetime | None = None, limit: int = CLAIM_BATCH
) -> list[tuple[uuid.UUID, datetime]]:
    """Claim due checks: (source id, its claim) for each, oldest due first."""
    now = now or utcnow()
    lease = timedelta(seconds=get_settings().source_check_lease_seconds)
    due = (
        select(Source.id)
        .where(Source.enabled.is_(True), Source.next_check_at <= now)
        .order_by(Source.next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        .scalar_subquery()
    )
    claimed = session.execute(
        update(Source)
        .where(Source.id.in_(due))
        # The right-hand side reads the row as it was: the due time becomes the claim.
        .values(claimed_due_at=Source.next_check_at, next_check_at=now + lease)
        .returning(Source.id, Source.claimed_due_at)
        .execution_options(synchronize_session=False)
    )
    # The claim is the due time, never null: next_check_at is not nullable.
    return [(source_id, claim) for source_id, claim in claimed if claim is not None]


def next_check(
    source: Source, now: datetime, *, failed: bool, retry_after: int | None = None
) -> datetime:
    """When to check again.

    After a success: the source's interval (lengthened, never shortened, by what the
    source asked for), on the source's own phase: every source is due at
    ``k * interval + phase`` with its phase drawn from its id, so 1,000 sources with
    one interval are spread over it instead of firing in the same second.

    After a failure: exponential back-off from the interval, capped (24 h by default),
    and never sooner than the failed answer's ``retry_after`` (its Retry-After).
    """
    settings = get_settings()
    cap = settings.source_max_backoff_hours * 3600
    base = source.interval_minutes * 60
    hinted = min(source.hinted_interval_seconds or 0, cap)
    if failed:
        delay = min(base * 2 ** max(source.failures - 1, 0), cap)
        return now + timedelta(seconds=min(max(delay, retry_after or 0), cap))
    interval = max(base, hinted)
    phase = source.id.int % interval
    # The first due time at least half an interval away: a check that ran late still
    # keeps its next one on time, and none comes sooner than half the interval.
    at = now.timestamp() + interval / 2
    due = math.ceil((at - phase) / interval) * interval + phase
    return datetime.fromtimestamp(due, tz=now.tzinfo)


def send_checks(claims: Sequence[tuple[uuid.UUID, datetime]]) -> None:
    """Send one check per claim (after commit). At the first broker failure stop: the
    rest keep their claim and are sent again when their lease runs out."""
    for source_id, claim in claims:
        try:
            celery_app.send_task(
                CHECK_TASK, (str(source_id), claim.isoformat()), ignore_result=True
            )
        except Exception as exc:
            log.warning("broker unavailable; source checks wait for their lease: %s", exc)
            return


def monitor_pass(session: Session) -> dict[str, Any]:
    """One pass of the periodic job: claim what is due and send it once committed."""
    claims = claim_due(session)
    if claims:
        after_commit(session, lambda: send_checks(claims))
    return {"claimed": len(claims)}
