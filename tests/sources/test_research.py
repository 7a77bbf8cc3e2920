"""Research jobs: accepted at once, run page by page against local Reddit, Hacker News and
Discourse fakes (progress visible while they answer slowly, cancel within one page,
a failing site recorded while the others run), read back ranked, and cleaned after
their retention; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery.exceptions import SoftTimeLimitExceeded
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.events.service import flush_events, stream_key
from herald.jobs import service as jobs
from herald.jobs.models import Job, JobState
from herald.scheduling.service import clean_old_records
from herald.sources import research
from herald.sources import sites as site_clients
from herald.sources.entries import Entry
from herald.sources.items import store_entries
from herald.sources.models import SourceItem
from herald.sources.research_schemas import ResearchCreate
from herald.sources.research_tasks import research as research_task
from herald.sources.sites import base, set_pacing
from herald.users.models import Role
from herald.users.principal import Principal
from herald.worker import TASK_MODULES
from herald.worker import app as celery_app
from tests.conftest import Account, MakeAccount
from tests.fakes.discourse import FakeDiscourse
from tests.fakes.hackernews import FakeHackerNews
from tests.fakes.reddit import FakeReddit
from tests.fakes.sites import EPOCH
from tests.sources.sites.helpers import fixed_sites, recorded_waits
from tests.workers import wait_for


@pytest.fixture
def fakes() -> Iterator[tuple[FakeReddit, FakeHackerNews, FakeDiscourse]]:
    with (
        recorded_waits(),
        FakeReddit() as reddit,
        FakeHackerNews() as hackernews,
        FakeDiscourse() as forum,
        fixed_sites(reddit, hackernews),
    ):
        reddit.add_posts("python", 150, word="asyncio")
        hackernews.add_stories(130, word="asyncio")
        forum.add_topics(60, word="asyncio")
        yield reddit, hackernews, forum


@pytest.fixture
def api(client: TestClient) -> TestClient:
    return client


def principal(account: Account) -> Principal:
    return Principal(account.user_id, account.workspace_id, account.email, Role.ADMIN)


def start(account: Account, forum: FakeDiscourse, **body: Any) -> str:
    with session_scope() as session:
        job = research.start_research(
            session,
            principal(account),
            ResearchCreate.model_validate(
                {
                    "query": "asyncio",
                    "sources": ["reddit", "hackernews", {"discourse": forum.base_url}],
                    **body,
                }
            ),
        )
        return job.id


def job_row(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        session.expunge(job)
        return job


def site_results(job: Job) -> list[dict[str, Any]]:
    assert job.result is not None
    return list(job.result["sites"])


def run_in_thread(job_id: str) -> tuple[threading.Thread, list[dict[str, Any]]]:
    results: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: results.append(research_task(job_id)), daemon=True)
    thread.start()
    return thread, results


# --- the API -------------------------------------------------------------------------------


def test_a_research_request_is_accepted_at_once_and_queued(
    api: TestClient, account: Account, make_account: MakeAccount, redis_broker: str
) -> None:
    body = {
        "query": "asyncio",
        "sources": ["reddit", "hackernews", {"discourse": "https://Forum.Example.org/"}],
        "since": "2026-11-01T00:00:00Z",
        "limit": 50,
    }
    accepted = api.post("/api/v1/research", json=body, headers=account.headers)
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    task_id = answer["task_id"]
    assert answer["status"] == "pending" and "3 site(s)" in answer["message"]

    # Sent after the commit to the sources queue, carrying only the id.
    queued = redis.Redis.from_url(redis_broker).lrange("sources", 0, -1)
    assert len(queued) == 1 and task_id.encode() in queued[0]
    assert b"forum.example.org" not in queued[0]

    read = api.get(f"/api/v1/research/{task_id}", headers=account.headers).json()
    assert (read["status"], read["ready"], read["query"]) == ("PENDING", False, "asyncio")
    assert read["progress"] == {"done": 0, "total": 3}
    assert [s["label"] for s in read["sites"]] == ["reddit", "hackernews", "forum.example.org"]
    assert read["items"] == []
    status = api.get(f"/api/v1/tasks/status/{task_id}", headers=account.headers).json()
    assert status["status"] == "PENDING"
    listed = api.get("/api/v1/research", headers=account.headers).json()
    assert [r["task_id"] for r in listed] == [task_id]
    assert listed[0]["sites"] == ["reddit", "hackernews", "forum.example.org"]

    stranger = make_account("other@example.com", workspace="elsewhere")
    assert api.get(f"/api/v1/research/{task_id}", headers=stranger.headers).status_code == 404
    assert api.get("/api/v1/research", headers=stranger.headers).json() == []
    assert api.get("/api/v1/research/nope", headers=account.headers).status_code == 404
    with session_scope() as session:
        other = jobs.create_job(
            session, workspace_id=account.workspace_id, kind="channel.verify", params={}
        ).id
    assert api.get(f"/api/v1/research/{other}", headers=account.headers).status_code == 404


REFUSED = [
    ({"query": "x", "sources": []}, "at least 1 item"),
    ({"query": "  ", "sources": ["reddit"]}, "the query is blank"),
    ({"query": "x", "sources": ["myspace"]}, "'myspace' is not a site"),
    ({"query": "x", "sources": ["discourse"]}, "is given with its URL"),
    ({"query": "x", "sources": [{"discourse": "forum.example.org"}]}, "is not a forum URL"),
    ({"query": "x", "sources": ["reddit", "reddit"]}, "reddit is listed twice"),
    ({"query": "x", "sources": ["reddit"], "limit": 0}, "greater than or equal to 1"),
    ({"query": "x", "sources": ["reddit"], "limit": "5"}, "valid integer"),
    ({"query": "x", "sources": ["reddit"], "since": 0}, "not a number"),
]


def test_a_request_that_cannot_run_is_a_422_that_says_why(
    api: TestClient, account: Account
) -> None:
    for body, message in REFUSED:
        answer = api.post("/api/v1/research", json=body, headers=account.headers)
        assert answer.status_code == 422, body
        assert answer.headers["content-type"] == "application/problem+json"
        assert message in answer.json()["detail"], answer.json()
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


# --- the job -------------------------------------------------------------------------------


def test_a_job_reports_progress_while_sites_answer_slowly_then_results_from_all_three(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
) -> None:
    reddit, hackernews, forum = fakes
    job_id = start(account, forum, limit=120)
    for fake in fakes:
        fake.hold()
    thread, results = run_in_thread(job_id)

    # Reddit's first page is held: the job has started, and nothing is stored yet.
    wait_for(lambda: reddit.waiting == 1, 10, 0.02, "Reddit's first page asked for")
    assert job_row(job_id).state == "STARTED"
    reddit.let_through()
    # Its second page is held now: the first one is stored and reported.
    wait_for(lambda: reddit.waiting == 1 and reddit.count() == 2, 10, 0.02, "second page")
    job = job_row(job_id)
    assert (job.progress_done, job.progress_total) == (0, 3)
    assert job.message == "reddit: page 1, 100 items"
    reddit.let_through()
    wait_for(lambda: hackernews.waiting == 1, 10, 0.02, "Hacker News asked")
    job = job_row(job_id)
    assert job.progress_done == 1 and job.message == "reddit: page 2, 120 items"

    for fake in fakes:
        fake.open()
    thread.join(30)
    assert not thread.is_alive()

    job = job_row(job_id)
    assert job.state == "SUCCESS" and job.error is None
    assert (job.progress_done, job.progress_total) == (3, 3)
    assert results[0] == job.result
    outcomes = {o["label"]: o for o in site_results(job)}
    assert {k: (o["items"], o["pages"], o["error"]) for k, o in outcomes.items()} == {
        "reddit": (120, 2, None),
        "hackernews": (120, 2, None),
        f"127.0.0.1:{forum.port}": (60, 2, None),
    }
    # One page at a time: nothing asked twice, nothing past the limit.
    assert reddit.count() == 2 and hackernews.count() == 2 and forum.count() == 2

    with session_scope() as session:
        read = research.read_research(session, principal(account), job_id, limit=500)
    assert (read.status, read.item_count, read.successful) == ("SUCCESS", 300, True)
    assert [(d.label, d.items, d.done) for d in read.sites] == [
        ("reddit", 120, True),
        ("hackernews", 120, True),
        (f"127.0.0.1:{forum.port}", 60, True),
    ]
    assert all(len(d.top_titles) == 3 and d.total_score > 0 for d in read.sites)
    ranks = [item.rank for item in read.items]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > 0
    assert {item.site for item in read.items} == {"reddit", "hackernews", "discourse"}
    # The digest's top titles are each site's best ranked.
    best_reddit = next(i for i in read.items if i.site == "reddit")
    assert read.sites[0].top_titles[0] == best_reddit.title


def test_since_stops_each_site_where_its_items_get_older(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
) -> None:
    reddit, hackernews, forum = fakes
    since = EPOCH - timedelta(minutes=7 * 29)  # the 30 newest of every site
    job_id = start(account, forum, since=since.isoformat())
    research_task(job_id)
    job = job_row(job_id)
    assert job.state == "SUCCESS"
    assert [o["items"] for o in site_results(job)] == [30, 30, 30]
    assert reddit.count() == hackernews.count() == forum.count() == 1


def test_a_cancelled_job_stops_within_one_page_and_keeps_what_it_found(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
) -> None:
    reddit, hackernews, forum = fakes
    job_id = start(account, forum)
    reddit.hold()
    thread, _ = run_in_thread(job_id)
    wait_for(lambda: reddit.waiting == 1, 10, 0.02, "Reddit's first page asked for")

    with session_scope() as session:
        outcome = jobs.cancel(session, session.get_one(Job, job_id))
    assert outcome == "cancel_requested"
    reddit.open()
    thread.join(30)

    job = job_row(job_id)
    assert job.state == "REVOKED" and "cancelled" in (job.error or "")
    assert reddit.count() == 1  # the page in flight, and no other
    assert hackernews.count() == forum.count() == 0
    with session_scope() as session:
        kept = session.scalar(
            select(func.count()).select_from(SourceItem).where(SourceItem.research_id == job_id)
        )
    assert kept == 100


def test_a_failing_site_is_recorded_and_the_others_still_run(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
) -> None:
    _reddit, hackernews, forum = fakes
    for _ in range(base.ATTEMPTS):
        hackernews.fail_next(503, "overloaded")
    job_id = start(account, forum, limit=10)
    research_task(job_id)
    job = job_row(job_id)
    assert job.state == "SUCCESS"
    errors = {o["label"]: o["error"] for o in site_results(job)}
    assert "overloaded" in errors["hackernews"]
    assert errors["reddit"] is None and errors[f"127.0.0.1:{forum.port}"] is None
    assert hackernews.count() == base.ATTEMPTS

    # Each step was a live job.state event: started, one per page or failure, finished.
    flush_events()
    client = redis.Redis.from_url(redis_broker, decode_responses=True)
    events = [
        json.loads(str(fields["data"]))
        for _, fields in client.xrange(stream_key(account.workspace_id)) or ()
        if fields and fields["kind"] == "job.state"
    ]
    assert {e["id"] for e in events} == {job_id}
    assert [(e["state"], e["progress_done"], e["message"]) for e in events] == [
        ("STARTED", 0, None),
        ("STARTED", 1, "reddit: page 1, 10 items"),
        ("STARTED", 2, "hackernews: failed, 10 items"),
        ("STARTED", 3, f"127.0.0.1:{forum.port}: page 1, 20 items"),
        ("STARTED", 3, "3 of 3 sites, 20 items"),
        ("SUCCESS", 3, "3 of 3 sites, 20 items"),
    ]


def test_the_job_fails_only_when_every_site_failed(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
) -> None:
    _reddit, _hackernews, forum = fakes
    for fake in fakes:
        fake.fail_next(404, "gone")
    job_id = start(account, forum)
    research_task(job_id)
    job = job_row(job_id)
    assert job.state == "FAILURE"
    assert (job.error or "").startswith("every site failed (reddit: ")
    # A finished job is not run again when its message comes twice.
    assert research_task(job_id) == {"skipped": True}


# --- ranking and retention -------------------------------------------------------------------


def test_rank_blends_score_and_recency() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    fresh = research.rank(100, 10, now, now)
    assert research.rank(1000, 10, now, now) > fresh > research.rank(10, 10, now, now)
    assert research.rank(100, 50, now, now) > fresh
    week_old = research.rank(100, 10, now - timedelta(days=7), now)
    assert week_old == pytest.approx(fresh / 2)  # a half-life of a week
    assert research.rank(None, None, None, now) == 0.0
    assert research.rank(-5, 0, now, now) == 0.0  # a downvoted item is not below nothing


def test_old_research_is_cleaned_with_its_items(account: Account) -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    entry = Entry(site="hackernews", title="kept or not", guid="hackernews:1")

    def research_job(
        age_days: int, *, kind: str = research.KIND, state: JobState = JobState.SUCCESS
    ) -> str:
        with session_scope() as session:
            job = jobs.create_job(
                session, workspace_id=account.workspace_id, kind=kind, params={"query": "x"}
            )
            job.created_at = now - timedelta(days=age_days)
            job.state = state
            session.flush()
            store_entries(
                session, workspace_id=account.workspace_id, entries=[entry], research_id=job.id
            )
            return job.id

    old = research_job(31)
    recent = research_job(29)
    running = research_job(40, state=JobState.STARTED)
    other_kind = research_job(40, kind="channel.verify")

    with session_scope() as session:
        assert research.clean_old_research(session, now) == 1
    with session_scope() as session:
        left = set(session.scalars(select(Job.id)))
        items = set(session.scalars(select(SourceItem.research_id)))
    assert left == {recent, running, other_kind}
    assert items == {recent, running, other_kind}
    assert old not in items


def test_the_task_is_limited_to_25_30_minutes_on_the_sources_queue() -> None:
    assert "herald.sources.research_tasks" in TASK_MODULES
    assert (research_task.soft_time_limit, research_task.time_limit) == (25 * 60, 30 * 60)
    route = celery_app.amqp.router.route({}, research.RESEARCH_TASK)
    assert route["queue"].name == "sources"


def test_a_job_past_its_soft_time_limit_stops_and_keeps_what_it_found(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _reddit, _hackernews, forum = fakes
    search = site_clients.search
    calls: list[str] = []

    def search_until_the_limit(site: str, query: str, **kwargs: Any) -> Any:
        calls.append(site)
        if len(calls) == 2:  # Celery raises it in the task wherever it runs
            raise SoftTimeLimitExceeded
        return search(site, query, **kwargs)

    monkeypatch.setattr(site_clients, "search", search_until_the_limit)
    job_id = start(account, forum)
    research_task(job_id)
    job = job_row(job_id)
    assert job.state == "FAILURE" and "stopped after 25 minutes" in (job.error or "")
    assert site_results(job)[0]["items"] == 100  # the first page, kept


def test_a_long_wait_the_site_asks_for_is_spent_between_pages(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
) -> None:
    _reddit, _hackernews, forum = fakes
    forum.fail_next(429, headers={"Retry-After": "300"})  # more than one request waits
    slept: list[float] = []
    set_pacing(None, slept.append)  # recorded, not spent
    job_id = start(account, forum, limit=10)
    research_task(job_id)

    job = job_row(job_id)
    assert job.state == "SUCCESS"
    (waited,) = [o for o in site_results(job) if o["site"] == "discourse"]
    assert (waited["items"], waited["waits"], waited["error"]) == (10, 1, None)
    assert sum(s for s in slept if s == research.CANCEL_CHECK_SECONDS) == 300
    assert forum.count() == 2


def test_a_job_cancelled_while_it_waits_for_a_site_stops(
    account: Account,
    redis_broker: str,
    fakes: tuple[FakeReddit, FakeHackerNews, FakeDiscourse],
) -> None:
    reddit, _hackernews, forum = fakes
    reddit.fail_next(503, headers={"Retry-After": "600"})
    job_id = start(account, forum)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:  # a person cancels while the job waits
            with session_scope() as session:
                jobs.cancel(session, session.get_one(Job, job_id))

    set_pacing(None, sleep)
    research_task(job_id)
    job = job_row(job_id)
    assert job.state == "REVOKED"
    assert len(slept) == 2 and reddit.count() == 1  # stopped within one slice of the wait


def test_the_daily_job_clean_leaves_research_to_its_own_retention(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "job_retention_days", 1)
    old = datetime.now(UTC) - timedelta(days=5)
    with session_scope() as session:
        kept = jobs.create_job(
            session, workspace_id=account.workspace_id, kind=research.KIND, params={}
        )
        gone = jobs.create_job(
            session, workspace_id=account.workspace_id, kind="channel.verify", params={}
        )
        for job in (kept, gone):
            job.state, job.created_at, job.finished_at = JobState.SUCCESS, old, old
        kept_id = kept.id
    with session_scope() as session:
        assert clean_old_records(session)["jobs_deleted"] == 1
    with session_scope() as session:
        assert set(session.scalars(select(Job.id))) == {kept_id}
