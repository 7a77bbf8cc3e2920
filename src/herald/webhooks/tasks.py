"""The webhooks' Celery tasks (thin: the bodies are herald.webhooks.delivery); the
`maintenance` queue."""

from __future__ import annotations

import uuid
from typing import Any

from herald.core.db import session_scope
from herald.webhooks import delivery
from herald.webhooks.outbox import DELIVER_TASK
from herald.worker import app

DISPATCH_TASK = "herald.webhooks.dispatch"


@app.task(name=DELIVER_TASK, ignore_result=True)
def deliver(delivery_id: str) -> dict[str, Any]:
    """One attempt of one event to one endpoint: claim, POST, record."""
    state = delivery.deliver(uuid.UUID(delivery_id))
    return {"state": str(state) if state else None}


@app.task(name=DISPATCH_TASK, ignore_result=True)
def dispatch() -> dict[str, Any]:
    """Send a pointer for every due delivery (runs in the scheduler, every few seconds;
    harmless when two schedulers run it: each claims its own rows)."""
    with session_scope() as session:
        return delivery.dispatch_due(session)
