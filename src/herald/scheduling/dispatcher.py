"""The dispatcher: run inside the scheduler (herald beat), at least once a second.

Each pass fails deliveries missed by more than the limit, moves due ones to ``queued``
(claimed with FOR UPDATE SKIP LOCKED on PostgreSQL, so a second scheduler is harmless)
and enqueues them after the commit. The wait is in the database (``due_at``); the
broker never holds a message (no ETA, no countdown).
"""

from __future__ import annotations

import logging
from datetime import datetime

from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.publishing import actions
from herald.scheduling import service
from herald.worker import PRIORITY_BACKLOG, PRIORITY_TURN

log = logging.getLogger(__name__)
MAX_SLEEP = 1.0
MIN_SLEEP = 0.01
BATCH = 500


def dispatch_once() -> int:
    """One pass; returns how many deliveries were queued."""
    total = 0
    while True:
        with session_scope() as session:
            missed = actions.fail_missed(session)
            turns = actions.dispatch_due(session, limit=BATCH, budget_turns=True)
            pairs = actions.dispatch_due(session, limit=BATCH, budget_turns=False)
        if missed:
            log.warning("%d delivery(ies) missed by more than the limit; marked failed", missed)
        # Deliveries back at their rate-budget turn go first (see PRIORITY_TURN); the rest
        # behind deliveries asked for now: a due backlog must not hold them up.
        actions.send_all(turns, PRIORITY_TURN)
        actions.send_all(pairs, PRIORITY_BACKLOG)
        total += len(turns) + len(pairs)
        if len(turns) < BATCH and len(pairs) < BATCH:  # drained; else more may be due now
            return total


def seconds_until_next(now: datetime | None = None) -> float:
    """How long the scheduler may sleep: until the earliest due time, at most a second."""
    now = now or utcnow()
    with session_scope() as session:
        due = service.next_due_at(session)
    if due is None:
        return MAX_SLEEP
    return max(MIN_SLEEP, min(MAX_SLEEP, (due - now).total_seconds()))
