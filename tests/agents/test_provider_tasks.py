"""The provider test job, its body run in-process as a worker runs it: a tiny completion
against the local fake, recorded in the usage ledger; a refused key marks the provider
needs_reconnect and fails the job with the server's words."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.agents.models import LedgerEntry, Provider
from herald.agents.provider_service import TEST_TASK, config_for
from herald.agents.provider_tasks import test_provider as run_test_job
from herald.agents.providers.base import ProviderConfig
from herald.core.db import session_scope
from herald.core.errors import NotFound
from herald.jobs.models import Job, JobState
from tests.conftest import Account
from tests.fakes.openai import OpenAIServer

pytestmark = pytest.mark.usefixtures("db_backend")


def _provider(client: TestClient, account: Account, server: OpenAIServer, **extra: Any) -> str:
    body = {"kind": "openai", "name": "fake", "base_url": server.base_url,
            "model": "gpt-4o-mini", **extra}  # fmt: skip
    created = client.post("/api/v1/providers", json=body, headers=account.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _start(client: TestClient, account: Account, provider_id: str) -> str:
    started = client.post(f"/api/v1/providers/{provider_id}/test", headers=account.headers)
    assert started.status_code == 202, started.text
    body = started.json()
    assert (body["status"], body["message"]) == ("pending", "Testing the provider.")
    return str(body["task_id"])


def _job(job_id: str) -> Job:
    with session_scope() as s:
        job = s.get_one(Job, job_id)
        s.expunge(job)
        return job


def _ledger() -> list[LedgerEntry]:
    with session_scope() as s:
        rows = list(s.scalars(select(LedgerEntry).order_by(LedgerEntry.at)))
        s.expunge_all()
        return rows


def test_a_test_asks_for_one_word_and_records_the_call(
    client: TestClient, account: Account, openai_server: OpenAIServer, redis_broker: str
) -> None:
    provider_id = _provider(client, account, openai_server, api_key="sk-1")
    job_id = _start(client, account, provider_id)
    # Sent to the generation queue, by name, once the request committed.
    (message,) = redis.Redis.from_url(redis_broker).lrange("generation", 0, -1)
    assert json.loads(message)["headers"]["task"] == TEST_TASK
    assert _job(job_id).kind == "provider_test"

    result = run_test_job(job_id)
    (sent,) = openai_server.requests
    assert sent["messages"] == [{"role": "user", "content": "Reply with the word OK."}]
    assert sent["max_tokens"] == 5
    assert openai_server.headers[0]["authorization"] == "Bearer sk-1"
    job = _job(job_id)
    assert job.state == JobState.SUCCESS and job.result == result
    assert result["ok"] is True and result["reply"] == "OK" and result["model"] == "gpt-4o-mini"
    (entry,) = _ledger()
    assert (entry.purpose, entry.outcome, entry.agent_id) == ("test", "ok", None)
    assert entry.provider_id == uuid.UUID(provider_id) and entry.provider_name == "fake"
    assert (entry.input_tokens, entry.output_tokens) == (
        result["input_tokens"],
        result["output_tokens"],
    )
    assert entry.output_tokens == 1 and not entry.estimated
    # gpt-4o-mini from the table: 0.15 and 0.60 per million tokens.
    expected = round(entry.input_tokens * 0.15 + entry.output_tokens * 0.60)
    assert entry.cost_micros == result["cost_micros"] == expected
    assert result["cost"] == expected / 1_000_000
    assert entry.latency_ms == result["latency_ms"]


def test_a_refused_key_marks_the_provider_and_fails_the_job(
    client: TestClient, account: Account, openai_server: OpenAIServer, redis_broker: str
) -> None:
    openai_server.api_key = "sk-right"
    provider_id = _provider(client, account, openai_server, api_key="sk-wrong")
    job_id = _start(client, account, provider_id)
    assert run_test_job(job_id)["error"].startswith("fake answered 401: Incorrect API key")
    job = _job(job_id)
    assert job.state == JobState.FAILURE and "Incorrect API key" in str(job.error)
    read = client.get(f"/api/v1/providers/{provider_id}", headers=account.headers).json()
    assert read["state"] == "needs_reconnect" and "Incorrect API key" in read["state_reason"]
    (entry,) = _ledger()
    assert (entry.outcome, entry.cost_micros, entry.extra) == ("auth", 0, {"status": 401})
    assert entry.error is not None and "Incorrect API key" in entry.error


def test_a_busy_server_fails_the_job_but_leaves_the_provider_active(
    client: TestClient, account: Account, openai_server: OpenAIServer, redis_broker: str
) -> None:
    provider_id = _provider(client, account, openai_server)
    openai_server.fail_next(429, retry_after="3")
    job_id = _start(client, account, provider_id)
    assert "answered 429" in run_test_job(job_id)["error"]
    with session_scope() as s:
        assert s.get_one(Provider, uuid.UUID(provider_id)).state == "active"
    (entry,) = _ledger()
    assert entry.outcome == "retryable"


def test_a_deleted_provider_fails_the_job(
    client: TestClient, account: Account, openai_server: OpenAIServer, redis_broker: str
) -> None:
    provider_id = _provider(client, account, openai_server)
    job_id = _start(client, account, provider_id)
    client.delete(f"/api/v1/providers/{provider_id}", headers=account.headers)
    assert run_test_job(job_id) == {"error": "The provider was deleted."}
    assert openai_server.calls == 0 and _ledger() == []


def test_a_digest_test_calls_nothing(
    client: TestClient, account: Account, redis_broker: str
) -> None:
    created = client.post(
        "/api/v1/providers", json={"kind": "digest", "name": "d"}, headers=account.headers
    )
    result = run_test_job(_start(client, account, created.json()["id"]))
    assert result["ok"] is True and result["model"] == "extractive" and _ledger() == []


def test_config_for_reads_the_row_the_default_or_the_builtin_digest(
    client: TestClient, account: Account, openai_server: OpenAIServer
) -> None:
    from herald.agents.models import AgentSettings  # noqa: PLC0415 - this test's own table

    provider_id = uuid.UUID(_provider(client, account, openai_server, api_key="sk-9"))
    with session_scope() as s:
        builtin = config_for(s, account.workspace_id, None)
        assert builtin == ProviderConfig(kind="digest", name="digest", model="extractive")
        config = config_for(s, account.workspace_id, provider_id)
        assert (config.kind, config.id, config.api_key) == ("openai", provider_id, "sk-9")
        assert config.base_url == openai_server.base_url and config.timeout_seconds == 60
        s.add(AgentSettings(workspace_id=account.workspace_id, default_provider_id=provider_id))
        s.flush()
        assert config_for(s, account.workspace_id, None) == config
    other = uuid.uuid4()
    with session_scope() as s, pytest.raises(NotFound, match=f"No provider {other}"):
        config_for(s, account.workspace_id, other)
