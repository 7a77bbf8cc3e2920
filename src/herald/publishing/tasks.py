from __future__ import annotations

import uuid

from herald.core.db import session_scope
from herald.publishing import service
from herald.worker import app


@app.task(name="herald.publishing.deliver", ignore_result=True)
def deliver(publication_id: str) -> str:
    """One delivery attempt: claim, send, record. A message for a row that is not
    queued (a duplicate, a cancelled or finished delivery) does nothing."""
    outcome = service.attempt_delivery(uuid.UUID(publication_id))
    return "skipped" if outcome is None else outcome.kind


@app.task(name="herald.scheduling.dispatch_due", ignore_result=True, expires=5)
def dispatch_due() -> int:
    """Due scheduled and retry_wait deliveries → queued, then enqueued after commit."""
    with session_scope() as session:
        pairs = service.dispatch_due(session)
    service.send_all(pairs)
    return len(pairs)


@app.task(name="herald.scheduling.reconcile", ignore_result=True, expires=55)
def reconcile() -> dict[str, int]:
    with session_scope() as session:
        return service.reconcile(session)


@app.task(name="herald.publishing.batch_publish", ignore_result=True)
def batch_publish(job_id: str) -> dict[str, object]:
    return service.run_batch(job_id)
