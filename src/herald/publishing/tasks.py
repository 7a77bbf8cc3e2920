from __future__ import annotations

import uuid

# Every adapter is imported with the task module, so the worker's parent loads them once
# before the pool forks, instead of each child on its first delivery.
import herald.adapters.builtin  # noqa: F401
from herald.publishing import batch, delivery
from herald.publishing.actions.compare_and_set import DELIVER_TASK
from herald.publishing.batch import BATCH_TASK
from herald.worker import app


@app.task(name=DELIVER_TASK, ignore_result=True)
def deliver(publication_id: str) -> str:
    """One delivery attempt: claim, send, record. A message for a row that is not
    queued (a duplicate, a cancelled or finished delivery) does nothing."""
    outcome = delivery.attempt_delivery(uuid.UUID(publication_id))
    return "skipped" if outcome is None else outcome.kind


@app.task(name=BATCH_TASK, ignore_result=True)
def batch_publish(job_id: str) -> dict[str, object]:
    return batch.run_batch(job_id)
