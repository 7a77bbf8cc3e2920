"""Research jobs: "what do the communities say about X", searched across Reddit, Hacker
News and Discourse forums as one long background job.

``POST /api/v1/research`` makes a jobs row (kind ``research``, one unit of progress per
site) and sends the task after commit. The task (:func:`run_research`, queue
``sources``, soft/hard time limits 25/30 min) searches each site page by page, newest
first, until ``limit`` items of that site, the last page, or items older than
``since``. No transaction is open while a site answers: each page is stored in a short
transaction of its own (the items tagged with the job's id), with the job's progress
("hackernews: page 3, 57 items"), which the jobs service sends as a live ``job.state``
event. Between pages the job
looks at ``cancel_requested``: a cancelled job stops before its next page and ends
REVOKED, keeping what it stored. A site that asks for a longer wait than one request
spends (a ``Retry-After`` of up to ten minutes) is waited for between pages, once,
looking for a cancel every few seconds. A site that still fails after its retries is
recorded with its error and the others go on; the job fails only when every site failed.

**Ranking.** Results are sorted by ``rank = (ln(1 + score) + ½·ln(1 + comments)) ·
½^(age / 7 days)``: logarithms so that one site's large numbers (Reddit's scores) do
not drown the others, and a half-life of a week counted from when the job was started
(so a finished job's order never changes). An undated item counts as found then.

**Retention.** :func:`clean_old_research` deletes finished research jobs older than
``HERALD_RESEARCH_RETENTION_DAYS``, their items with them.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.core.db import read_scope, session_scope
from herald.core.errors import InvalidInput, NotFound
from herald.core.settings import get_settings
from herald.core.tx import after_commit
from herald.jobs import service as jobs
from herald.jobs.models import READY_STATES, Job, JobState
from herald.sources import sites
from herald.sources.entries import Entry
from herald.sources.items import store_entries
from herald.sources.models import SourceItem
from herald.sources.research_schemas import (
    ResearchCreate,
    ResearchItem,
    ResearchRead,
    ResearchSummary,
    SiteDigest,
)
from herald.sources.sites import SiteError
from herald.sources.sites.base import pause
from herald.sources.sites.discourse import normalise_url
from herald.users.principal import Principal
from herald.worker import app as celery_app

log = logging.getLogger(__name__)

RESEARCH_TASK = "herald.sources.research"
KIND = "research"  # in jobs.models.OWN_RETENTION_KINDS
SOFT_TIME_LIMIT = 25 * 60
TIME_LIMIT = 30 * 60
HALF_LIFE_DAYS = 7.0
TOP_TITLES = 3
# The longest wait a site may ask for (Retry-After) that a job spends between two pages,
# and how often it looks for a cancel meanwhile.
MAX_SITE_WAIT = 10 * 60
CANCEL_CHECK_SECONDS = 5.0


# --- starting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One site a job searches: ``url`` is a forum's, None for the fixed sites."""

    site: str
    url: str | None = None

    @property
    def label(self) -> str:
        return urlsplit(self.url).netloc if self.url else self.site

    def as_param(self) -> dict[str, Any]:
        return {"site": self.site, "url": self.url}


def targets_of(sources: list[str | dict[str, str]]) -> list[Target]:
    """The request's sites, forum URLs normalised; each at most once."""
    found: list[Target] = []
    for source in sources:
        if isinstance(source, str):
            target = Target(source)
        else:
            base, _ = normalise_url(source.get("discourse"), field="sources")
            target = Target("discourse", base)
        if target in found:
            raise InvalidInput(f"{target.label} is listed twice in sources", field="sources")
        found.append(target)
    return found


def start_research(session: Session, principal: Principal, body: ResearchCreate) -> Job:
    """Record the job and send its task once this transaction commits."""
    targets = targets_of(body.sources)
    since = body.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    job = jobs.create_job(
        session,
        workspace_id=principal.workspace_id,
        owner_id=principal.user_id,
        kind=KIND,
        params={
            "query": body.query,
            "sites": [t.as_param() for t in targets],
            "since": since.isoformat() if since else None,
            "limit": body.limit,
        },
        total=len(targets),
    )
    job_id = job.id
    after_commit(session, lambda: celery_app.send_task(RESEARCH_TASK, (job_id,), task_id=job_id))
    return job


# --- the job ---------------------------------------------------------------------------------


@dataclass
class SiteOutcome:
    site: str
    label: str
    url: str | None
    items: int = 0
    pages: int = 0
    waits: int = 0  # long waits the site asked for, spent between pages
    done: bool = False
    error: str | None = None


@dataclass
class Run:
    job_id: str
    workspace_id: uuid.UUID
    query: str
    targets: list[Target]
    since: datetime | None
    limit: int
    outcomes: list[SiteOutcome] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(o.items for o in self.outcomes)

    def result(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "items": self.items,
            "sites": [asdict(o) for o in self.outcomes],
        }


def _claim(job_id: str) -> Run | None:
    with session_scope() as session:
        if not jobs.mark_started(session, job_id):
            return None
        job = session.get_one(Job, job_id)
        params = job.params
        since = params.get("since")
        return Run(
            job_id=job_id,
            workspace_id=job.workspace_id,
            query=str(params["query"]),
            targets=[Target(t["site"], t.get("url")) for t in params["sites"]],
            since=datetime.fromisoformat(since) if since else None,
            limit=int(params.get("limit") or 100),
        )


def _cancel_requested(job_id: str) -> bool:
    # A read: on SQLite it neither takes nor waits for the write lock.
    with read_scope() as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def _record_page(run: Run, done_sites: int, entries: list[Entry], message: str) -> int:
    """Store one page's entries and the job's progress in one short transaction; the
    number of items that were new to this job."""
    with session_scope() as session:
        stored = store_entries(
            session, workspace_id=run.workspace_id, entries=entries, research_id=run.job_id
        )
        jobs.set_progress(session, run.job_id, done_sites, message)
        return len(stored.new)


def _worth_waiting(exc: SiteError, outcome: SiteOutcome) -> bool:
    """A site that asked for a wait longer than one request spends (``base.MAX_WAIT``)
    is waited for here, between pages, once per site and up to ``MAX_SITE_WAIT``: the job
    has the time, and the site said when it will answer."""
    hint = exc.hint_seconds
    return exc.retryable and hint is not None and hint <= MAX_SITE_WAIT and outcome.waits < 1


def _wait_unless_cancelled(job_id: str, seconds: float) -> bool:
    """Wait ``seconds`` in slices, looking at ``cancel_requested`` after each; False if
    the job was cancelled meanwhile."""
    left = seconds
    while left > 0:
        piece = min(left, CANCEL_CHECK_SECONDS)
        pause(piece)
        left -= piece
        if _cancel_requested(job_id):
            return False
    return True


def _search_site(run: Run, index: int, target: Target) -> bool:
    """Search one site page by page; False if the job was cancelled on the way."""
    outcome = SiteOutcome(target.site, target.label, target.url)
    run.outcomes.append(outcome)
    cursor: str | None = None
    while True:
        if _cancel_requested(run.job_id):
            return False
        try:
            page = sites.search(
                target.site, run.query, base_url=target.url, since=run.since, cursor=cursor
            )
        except SiteError as exc:
            if _worth_waiting(exc, outcome):
                outcome.waits += 1
                wait = f"{target.label}: the site asked to wait {exc.hint_seconds} s"
                _record_page(run, index, [], f"{wait}, {run.items} items")
                if not _wait_unless_cancelled(run.job_id, float(exc.hint_seconds or 0)):
                    return False
                continue
            outcome.error = exc.message
            log.info("research %s: %s failed: %s", run.job_id, target.label, exc.message)
            _record_page(run, index + 1, [], f"{target.label}: failed, {run.items} items")
            break
        outcome.pages += 1
        wanted = page.entries[: max(run.limit - outcome.items, 0)]
        cursor = page.next_cursor
        # The site is done with this page: its last, empty, or enough items.
        last = cursor is None or not page.entries or outcome.items + len(wanted) >= run.limit
        message = f"{target.label}: page {outcome.pages}, {run.items + len(wanted)} items"
        outcome.items += _record_page(run, index + 1 if last else index, wanted, message)
        if last:
            break
    outcome.done = True
    return True


def _finish(run: Run, state: JobState, error: str | None = None) -> dict[str, Any]:
    result = run.result()
    with session_scope() as session:
        done = sum(1 for o in run.outcomes if o.done)
        summary = f"{done} of {len(run.targets)} sites, {run.items} items"
        jobs.set_progress(session, run.job_id, done, summary)
        jobs.finish(session, run.job_id, state, result=result, error=error)
    return result


def run_research(job_id: str) -> dict[str, Any]:
    """The task's body: claim the job, search each site, record the outcome."""
    run = _claim(job_id)
    if run is None:
        log.info("research %s is not pending (finished, cancelled or unknown); skipping", job_id)
        return {"skipped": True}
    try:
        for index, target in enumerate(run.targets):
            if not _search_site(run, index, target):
                return _finish(run, JobState.REVOKED, "cancelled; the items found before are kept")
    except SoftTimeLimitExceeded:
        return _finish(
            run,
            JobState.FAILURE,
            f"stopped after {SOFT_TIME_LIMIT // 60} minutes; the items found before are kept",
        )
    except Exception as exc:
        with session_scope() as session:
            jobs.finish(
                session,
                job_id,
                JobState.FAILURE,
                result=run.result(),
                error=f"{type(exc).__name__}: {exc}",
            )
        raise
    failed = [o for o in run.outcomes if o.error]
    if len(failed) == len(run.outcomes):
        reasons = "; ".join(f"{o.label}: {o.error}" for o in failed)
        return _finish(run, JobState.FAILURE, f"every site failed ({reasons})")
    return _finish(run, JobState.SUCCESS)


# --- reading -------------------------------------------------------------------------------


def get_research_job(session: Session, principal: Principal, task_id: str) -> Job:
    job = session.get(Job, task_id)
    if job is None or job.workspace_id != principal.workspace_id or job.kind != KIND:
        raise NotFound(f"No research job {task_id}.")
    return job


def rank(score: int | None, comments: int | None, when: datetime | None, now: datetime) -> float:
    """The blend of score and recency (module docstring)."""
    strength = math.log1p(max(score or 0, 0)) + 0.5 * math.log1p(max(comments or 0, 0))
    age_days = max((now - when).total_seconds(), 0.0) / 86400 if when else 0.0
    return float(strength * 0.5 ** (age_days / HALF_LIFE_DAYS))


def _label(item: SourceItem) -> str:
    if item.site == "discourse" and item.link:
        return urlsplit(item.link).netloc
    return item.site


def _progress(job: Job) -> dict[str, Any] | None:
    if job.progress_total is None:
        return None
    return {"done": job.progress_done, "total": job.progress_total}


def read_research(
    session: Session, principal: Principal, task_id: str, *, limit: int = 50
) -> ResearchRead:
    """A research job's status, a digest per site and its items, best ranked first."""
    job = get_research_job(session, principal, task_id)
    rows = list(session.scalars(select(SourceItem).where(SourceItem.research_id == job.id)))
    ranked = sorted(
        (
            (rank(r.score, r.comments, r.published_at or r.first_seen_at, job.created_at), r)
            for r in rows
        ),
        key=lambda pair: (-pair[0], pair[1].title),
    )
    by_label: dict[str, list[tuple[float, SourceItem]]] = defaultdict(list)
    for pair in ranked:
        by_label[_label(pair[1])].append(pair)
    outcomes = {o["label"]: o for o in (job.result or {}).get("sites", ())}
    digests = []
    for target in job.params.get("sites", ()):
        t = Target(target["site"], target.get("url"))
        mine = by_label.get(t.label, [])
        outcome = outcomes.get(t.label, {})
        digests.append(
            SiteDigest(
                site=t.site,
                label=t.label,
                url=t.url,
                items=len(mine),
                pages=outcome.get("pages"),
                total_score=sum(r.score or 0 for _, r in mine),
                total_comments=sum(r.comments or 0 for _, r in mine),
                top_titles=[r.title for _, r in mine[:TOP_TITLES]],
                done=bool(outcome.get("done")),
                error=outcome.get("error"),
            )
        )
    return ResearchRead(
        task_id=job.id,
        query=str(job.params.get("query", "")),
        status=job.state,
        ready=job.state in READY_STATES,
        successful=job.state == JobState.SUCCESS,
        failed=job.state == JobState.FAILURE,
        progress=_progress(job),
        message=job.message,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        item_count=len(rows),
        sites=digests,
        items=[
            ResearchItem(
                id=r.id,
                site=r.site,
                title=r.title,
                link=r.link,
                summary_text=r.summary_text,
                author=r.author,
                published_at=r.published_at,
                score=r.score,
                comments=r.comments,
                comments_url=r.comments_url,
                rank=round(value, 4),
            )
            for value, r in ranked[:limit]
        ],
    )


def list_research(
    session: Session, principal: Principal, *, limit: int = 50
) -> list[ResearchSummary]:
    found = session.scalars(
        select(Job)
        .where(Job.workspace_id == principal.workspace_id, Job.kind == KIND)
        .order_by(Job.created_at.desc())
        .limit(limit)
    )
    return [
        ResearchSummary(
            task_id=job.id,
            query=str(job.params.get("query", "")),
            sites=[Target(t["site"], t.get("url")).label for t in job.params.get("sites", ())],
            status=job.state,
            ready=job.state in READY_STATES,
            progress=_progress(job),
            message=job.message,
            created_at=job.created_at,
            finished_at=job.finished_at,
        )
        for job in found
    ]


# --- retention -----------------------------------------------------------------------------


def clean_old_research(session: Session, now: datetime | None = None) -> int:
    """Delete finished research jobs created more than ``research_retention_days`` ago,
    and their items; the number of jobs deleted."""
    now = now or utcnow()
    cutoff = now - timedelta(days=get_settings().research_retention_days)
    old = list(
        session.scalars(
            select(Job.id).where(
                Job.kind == KIND, Job.state.in_(READY_STATES), Job.created_at < cutoff
            )
        )
    )
    if not old:
        return 0
    # The foreign key cascades too; deleted explicitly so it holds whatever the backend.
    session.execute(delete(SourceItem).where(SourceItem.research_id.in_(old)))
    session.execute(delete(Job).where(Job.id.in_(old)))
    return len(old)
