"""The research job's Celery task (thin: the body is herald.sources.research)."""

from __future__ import annotations

from typing import Any

from herald.sources.research import RESEARCH_TASK, SOFT_TIME_LIMIT, TIME_LIMIT, run_research
from herald.worker import app


@app.task(name=RESEARCH_TASK, soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT)
def research(job_id: str) -> dict[str, Any]:
    """Search each site of a research job page by page (no transaction open while a site
    answers), storing each page as it comes."""
    return run_research(job_id)
