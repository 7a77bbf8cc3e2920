"""The agents' Celery tasks: thin, ids in (STYLE.md). They route to the `generation`
queue by their name (herald.worker.TASK_ROUTES)."""

from __future__ import annotations

import uuid
from typing import Any

from herald.agents import generate, schedule
from herald.core.db import session_scope
from herald.jobs.runner import run_job
from herald.scheduling.service import epoch_key, run_periodic
from herald.worker import AGENT_SCHEDULE_EVERY_SECONDS, app

# A run makes at most MAX_ATTEMPTS calls of at most a provider's timeout each (60 s by
# default, 600 at most) and waits at most MAX_WAIT_SECONDS between them.
SOFT_TIME_LIMIT = 15 * 60
TIME_LIMIT = SOFT_TIME_LIMIT + 60


@app.task(name="herald.agents.schedule", ignore_result=True)
def run_schedules() -> dict[str, Any]:
    """Start the run of every agent whose cron occurrence has come (in the scheduler)."""
    return run_periodic(
        "agent-schedules",
        lambda now: epoch_key(now, AGENT_SCHEDULE_EVERY_SECONDS),
        schedule.due_pass,
    )


@app.task(name="herald.agents.draft_items", ignore_result=True)
def draft_items(agent_id: str, item_ids: list[str]) -> dict[str, Any]:
    """Items a source handed to its agent (auto-generate): one run each, in order, until
    the agent's quota refuses one."""
    with session_scope() as session:
        return generate.runs_for_items(
            session, uuid.UUID(agent_id), [uuid.UUID(i) for i in item_ids]
        )


@app.task(name=generate.GENERATE_TASK, soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT)
def generate_post(job_id: str) -> dict[str, Any]:
    """One run of an agent (a job): `{success, post_id, title, word_count, status}`."""
    return run_job(job_id, generate.prepare, generate.call, generate.record)
