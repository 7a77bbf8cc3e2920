"""Agents on a schedule: each cron occurrence runs once.

The scheduler (``herald beat``, in its own process like the source monitor) looks every
few seconds for enabled agents whose ``next_run_at`` has come. For each it moves
``next_run_at`` to the next occurrence *after now* with a compare-and-set on the value it
read, and records a run for the occurrence it took (``scheduled_for``, unique per agent):
two schedulers find the occurrence once, and occurrences missed while Herald was down
run once, at start, not once each. Over quota, the run is recorded as refused with the
reason, and nothing is called.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.agents import cron, generate, reserve
from herald.agents.models import Agent, RunTrigger
from herald.core.clock import utcnow
from herald.core.errors import HeraldError

log = logging.getLogger(__name__)

# The most occurrences one pass takes; the rest wait for the next pass, seconds later.
BATCH = 100


def due_pass(session: Session) -> dict[str, Any]:
    now = utcnow()
    query = (
        select(Agent.id, Agent.next_run_at)
        .where(Agent.enabled.is_(True), Agent.next_run_at <= now)
        .order_by(Agent.next_run_at)
        .limit(BATCH)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    started = refused = 0
    for agent_id, due in session.execute(query).all():
        agent = session.get_one(Agent, agent_id)
        following = (
            cron.next_run(agent.schedule_cron, agent.timezone, now) if agent.schedule_cron else None
        )
        moved = session.execute(
            update(Agent)
            .where(Agent.id == agent_id, Agent.next_run_at == due)
            .values(next_run_at=following)
            .execution_options(synchronize_session=False)
        )
        if not getattr(moved, "rowcount", 0) or agent.schedule_cron is None:
            continue  # another scheduler took it, or the schedule was removed
        try:
            with session.begin_nested():
                generate.start_run(
                    session,
                    agent,
                    trigger=RunTrigger.SCHEDULE,
                    owner_id=agent.created_by,
                    scheduled_for=due,
                )
            started += 1
        except HeraldError as exc:  # over quota, or the provider needs reconnecting
            reserve.refused(
                session,
                agent,
                trigger=RunTrigger.SCHEDULE,
                now=now,
                error=exc.message,
                scheduled_for=due,
            )
            refused += 1
        except IntegrityError:
            log.info("agent %s already ran for %s", agent_id, due)
    settled = generate.settle_abandoned(session, now)
    return {"started": started, "refused": refused, "abandoned_settled": settled}
