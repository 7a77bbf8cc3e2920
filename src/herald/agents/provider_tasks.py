"""The providers' Celery tasks: thin, ids in (STYLE.md)."""

from __future__ import annotations

from typing import Any

from herald.agents import provider_service
from herald.jobs.runner import run_job
from herald.worker import app


@app.task(name=provider_service.TEST_TASK)
def test_provider(job_id: str) -> dict[str, Any]:
    """The provider test (a job): one tiny completion, recorded in the ledger."""
    return run_job(
        job_id,
        provider_service.prepare_test,
        provider_service.call_test,
        provider_service.record_test,
    )
