"""Runs of an agent end to end: the request, the quota reservation, the job (run here,
in-process, as a worker would), the provider (the digest, or the fake OpenAI-compatible
server), the ledger, the draft and its items."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from herald.agents.models import AgentRun, LedgerEntry, Provider, RunItem, RunState
from herald.agents.reserve import INPUT_BUDGET_TOKENS, output_budget
from herald.agents.tasks import draft_items, generate_post
from herald.core.db import session_scope
from herald.jobs.models import Job, JobState
from herald.posts.models import Post
from herald.sources.models import ItemUse
from herald.sources.tasks import check_source_job
from tests.conftest import Account
from tests.fakes.feed_server import FeedServer
from tests.fakes.openai import OpenAIServer
from tests.sources.documents import Item, rss

pytestmark = pytest.mark.usefixtures("db_backend")

STORIES = [
    Item(
        1,
        "Rust 2.0 ships a faster borrow checker",
        "The Rust team released version 2.0 today. The borrow checker is twice as fast on "
        "large crates. Compile times drop by a third for most projects. The release also "
        "stabilises async closures, which users asked for since 2019.",
    ),
    Item(
        2,
        "Python 3.15 removes the GIL by default",
        "Python 3.15 is the first release without the global interpreter lock by default. "
        "Threads now run Python code in parallel on every core. Extension modules must "
        "declare that they are thread-safe. Single-threaded code runs about as fast as before.",
    ),
    Item(
        3,
        "Go adds iterators to the standard library",
        "Go 1.27 adds iterator functions across the standard library. Maps, slices and "
        "strings gain range-over-func helpers. The change keeps the language's promise of "
        "compatibility.",
    ),
]


def _source_with_items(client: TestClient, account: Account, feed_server: FeedServer) -> str:
    """A feed source whose first check (run here) stored STORIES."""
    feed_server.put("/feed.xml", rss(STORIES))
    created = client.post(
        "/api/v1/sources",
        json={"kind": "feed", "name": "Lang news", "url": feed_server.url("/feed.xml")},
        headers=account.headers,
    )
    assert created.status_code == 201, created.text
    source_id: str = created.json()["id"]
    started = client.post(f"/api/v1/sources/{source_id}/check", headers=account.headers)
    assert started.status_code == 202, started.text
    check_source_job(started.json()["task_id"])
    return source_id


def _agent(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Weekly digest", "topic": "Programming languages this week", **fields}
    answer = client.post("/api/v1/agents", json=body, headers=account.headers)
    assert answer.status_code == 201, answer.text
    agent: dict[str, Any] = answer.json()
    return agent


def _openai_provider(
    client: TestClient, account: Account, server: OpenAIServer, **fields: Any
) -> dict[str, Any]:
    body = {
        "kind": "openai",
        "name": "Fake",
        "base_url": server.base_url,
        "model": "gpt-4o-mini",
        "api_key": "sk-test",
        "input_price_per_million": 0.15,
        "output_price_per_million": 0.60,
        **fields,
    }
    answer = client.post("/api/v1/providers", json=body, headers=account.headers)
    assert answer.status_code == 201, answer.text
    provider: dict[str, Any] = answer.json()
    return provider


def _generate(client: TestClient, account: Account, agent_id: str, **fields: Any) -> Any:
    return client.post(
        "/api/v1/tasks/generate-post",
        json={"agent_id": agent_id, **fields},
        headers=account.headers,
    )


def _job(job_id: str) -> Job:
    with session_scope() as s:
        job = s.get_one(Job, job_id)
        s.expunge(job)
        return job


def test_a_feed_and_the_digest_make_a_readable_draft_with_nothing_configured(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    source_id = _source_with_items(client, account, feed_server)
    agent = _agent(client, account, source_ids=[source_id], keywords=["Rust"])

    started = _generate(client, account, agent["id"])
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "pending"
    result = generate_post(started.json()["task_id"])

    assert result["success"] is True and result["status"] == "in_review", result
    assert result["word_count"] > 50
    status = client.get(
        f"/api/v1/tasks/status/{started.json()['task_id']}", headers=account.headers
    )
    assert status.json()["status"] == "SUCCESS"
    post = client.get(f"/api/v1/posts/{result['post_id']}", headers=account.headers).json()
    assert post["state"] == "in_review" and post["agent_id"] == agent["id"]
    for story in STORIES:  # a section per item, with its link
        assert story.heading in post["body"] and story.id in post["body"]
    assert post["seo"]["word_count"] == result["word_count"]
    assert "Rust" in post["seo"]["keyword_density"]
    with session_scope() as s:
        uses = s.scalars(select(ItemUse).where(ItemUse.post_id == uuid.UUID(post["id"]))).all()
        assert len(uses) == 3 and {u.agent_id for u in uses} == {uuid.UUID(agent["id"])}
        (entry,) = s.scalars(select(LedgerEntry)).all()
        assert (entry.provider_kind, entry.cost_micros, entry.outcome) == ("digest", 0, "ok")
        run = s.scalars(select(AgentRun)).one()
        assert run.state == RunState.SUCCEEDED and run.post_id == uuid.UUID(post["id"])

    # Every item has served this agent: the next run has nothing to draw on, fails with
    # a reason, and holds nothing.
    again = _generate(client, account, agent["id"])
    failed = generate_post(again.json()["task_id"])
    assert "no items" in failed["error"]
    with session_scope() as s:
        run = s.get_one(AgentRun, uuid.UUID(again.json()["run_id"]))
        assert run.state == RunState.FAILED and "no items" in (run.error or "")
        assert (
            s.scalar(select(func.count()).select_from(RunItem).where(RunItem.run_id == run.id)) == 0
        )


def test_the_openai_provider_records_tokens_and_cost_and_usage_sums_the_ledger(
    client: TestClient, account: Account, feed_server: FeedServer, openai_server: OpenAIServer
) -> None:
    source_id = _source_with_items(client, account, feed_server)
    provider = _openai_provider(client, account, openai_server)
    agent = _agent(client, account, source_ids=[source_id], provider_id=provider["id"])

    first = generate_post(_generate(client, account, agent["id"]).json()["task_id"])
    assert first["success"] is True, first
    assert openai_server.calls == 1
    with session_scope() as s:
        (entry,) = s.scalars(select(LedgerEntry)).all()
        sent = openai_server.requests[-1]
        assert entry.model == "gpt-4o-mini" and not entry.estimated
        assert entry.input_tokens > 0 and entry.output_tokens > 0
        assert entry.output_tokens <= sent["max_tokens"]
        expected = round(entry.input_tokens * 0.15 + entry.output_tokens * 0.60)
        assert entry.cost_micros == expected

    usage = client.get("/api/v1/usage", params={"group_by": "agent"}, headers=account.headers)
    assert usage.status_code == 200, usage.text
    totals = usage.json()["totals"]
    assert totals["input_tokens"] == entry.input_tokens
    assert totals["output_tokens"] == entry.output_tokens
    assert totals["cost"] == pytest.approx(entry.cost_micros / 1_000_000)
    (row,) = usage.json()["rows"]
    assert row["runs"] == 1 and row["key"] == agent["id"]


def test_a_rate_limited_call_is_retried_and_each_call_is_in_the_ledger(
    client: TestClient, account: Account, feed_server: FeedServer, openai_server: OpenAIServer
) -> None:
    source_id = _source_with_items(client, account, feed_server)
    provider = _openai_provider(client, account, openai_server)
    agent = _agent(client, account, source_ids=[source_id], provider_id=provider["id"])
    openai_server.fail_next(429, retry_after="0")
    openai_server.fail_next(500)

    result = generate_post(_generate(client, account, agent["id"]).json()["task_id"])

    assert result["success"] is True and result["attempts"] == 3, result
    with session_scope() as s:
        outcomes = [e.outcome for e in s.scalars(select(LedgerEntry).order_by(LedgerEntry.at))]
        assert sorted(outcomes) == ["ok", "retryable", "retryable"]


def test_a_refused_key_fails_the_run_marks_the_provider_and_frees_the_items(
    client: TestClient, account: Account, feed_server: FeedServer, openai_server: OpenAIServer
) -> None:
    source_id = _source_with_items(client, account, feed_server)
    provider = _openai_provider(client, account, openai_server)
    agent = _agent(client, account, source_ids=[source_id], provider_id=provider["id"])
    openai_server.fail_next(401)

    started = _generate(client, account, agent["id"])
    result = generate_post(started.json()["task_id"])

    assert "error" in result and openai_server.calls == 1
    assert _job(started.json()["task_id"]).state == JobState.FAILURE
    with session_scope() as s:
        row = s.get_one(Provider, uuid.UUID(provider["id"]))
        assert row.state == "needs_reconnect"
        assert s.scalar(select(func.count()).select_from(RunItem)) == 0
        assert s.scalar(select(func.count()).select_from(Post)) == 0
        (entry,) = s.scalars(select(LedgerEntry)).all()
        assert entry.outcome == "auth"


def test_over_quota_is_refused_before_any_call_with_the_limit_and_its_reset(
    client: TestClient, account: Account, feed_server: FeedServer, openai_server: OpenAIServer
) -> None:
    source_id = _source_with_items(client, account, feed_server)
    provider = _openai_provider(client, account, openai_server)
    agent = _agent(
        client,
        account,
        source_ids=[source_id],
        provider_id=provider["id"],
        quota={"drafts_per_month": 1},
    )
    generate_post(_generate(client, account, agent["id"]).json()["task_id"])

    refused = _generate(client, account, agent["id"])

    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "1 of its 1 drafts" in refused.json()["detail"]
    assert "resets on" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) > 0
    assert openai_server.calls == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AgentRun)) == 1


def test_twenty_concurrent_requests_against_room_for_five_call_the_provider_five_times(
    client: TestClient, account: Account, openai_server: OpenAIServer
) -> None:
    provider = _openai_provider(
        client, account, openai_server, input_price_per_million=1.0, output_price_per_million=1.0
    )
    agent = _agent(client, account, provider_id=provider["id"], target_words=600)
    # What one run reserves at 1.0 a million tokens (its prompt's budget and its
    # answer's cap): room for five runs and a half.
    one_run = INPUT_BUDGET_TOKENS + output_budget(600)
    cost = (5 * one_run + one_run // 2) / 1_000_000
    patched = client.patch(
        f"/api/v1/agents/{agent['id']}",
        json={"quota": {"cost_per_month": cost}},
        headers=account.headers,
    )
    assert patched.status_code == 200, patched.text

    answers: list[Any] = []
    lock = threading.Lock()
    gate = threading.Barrier(20)

    def ask() -> None:
        gate.wait()
        answer = _generate(client, account, agent["id"], topic="A topic to write on")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    accepted = [a for a in answers if a.status_code == 202]
    assert sorted(a.status_code for a in answers) == [202] * 5 + [429] * 15
    assert openai_server.calls == 0  # refused before calling; accepted ones not run yet
    for answer in accepted:
        assert generate_post(answer.json()["task_id"])["success"] is True
    assert openai_server.calls == 5


def test_a_source_hands_its_new_items_to_its_agent_one_run_each_within_the_quota(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    agent = _agent(client, account, quota={"drafts_per_month": 2})
    feed_server.put("/feed.xml", rss(STORIES[:1]))
    source = client.post(
        "/api/v1/sources",
        json={"kind": "feed", "name": "Lang news", "url": feed_server.url("/feed.xml"),
              "agent_id": agent["id"], "auto_generate": True, "max_drafts_per_check": 3},
        headers=account.headers,
    ).json()  # fmt: skip
    baseline = client.post(f"/api/v1/sources/{source['id']}/check", headers=account.headers)
    assert check_source_job(baseline.json()["task_id"])["to_agent"] == []  # a baseline
    feed_server.put("/feed.xml", rss(STORIES))

    checked = client.post(f"/api/v1/sources/{source['id']}/check", headers=account.headers)
    handed = check_source_job(checked.json()["task_id"])["to_agent"]
    assert len(handed) == 2  # the two new items
    # Another workspace's agent is refused like a missing one.
    other = client.patch(
        f"/api/v1/sources/{source['id']}",
        json={"agent_id": str(uuid.uuid4())},
        headers=account.headers,
    )
    assert other.status_code == 422 and "agent_id" in other.text

    started = draft_items(agent["id"], handed)
    assert len(started["runs"]) == 2 and "refused" not in started
    for run_id in started["runs"]:
        with session_scope() as s:
            job_id = s.get_one(AgentRun, uuid.UUID(run_id)).job_id
        assert job_id is not None
        assert generate_post(job_id)["success"] is True
    # The quota (2 drafts) is spent: a third item is refused, and the refusal recorded.
    assert "2 of its 2 drafts" in draft_items(agent["id"], handed[:1])["refused"]
    with session_scope() as s:
        states = sorted(r.state for r in s.scalars(select(AgentRun)))
    assert states == [RunState.REFUSED, RunState.SUCCEEDED, RunState.SUCCEEDED]
