from __future__ import annotations

from typing import Any

from herald.channels.service import VERIFY_TASK, call_platform, read_check, record_check
from herald.jobs.runner import run_job
from herald.worker import app


@app.task(name=VERIFY_TASK)
def verify_channel(job_id: str) -> dict[str, Any]:
    """Test a channel's credentials: read, call the platform, record (no transaction is
    open while the platform answers)."""
    return run_job(job_id, read_check, call_platform, record_check)
