"""The agents API: create, read, update, delete; runs, newest first; the workspace's
agent settings; who may change them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.agents.models import Agent, RunState, RunTrigger
from herald.core.db import session_scope
from herald.sources.models import Source
from tests.agents.rows import (
    add_channel,
    add_provider,
    add_run,
    add_source,
    reviewer_in,
)
from tests.conftest import Account, MakeAccount
from tests.scheduling import frozen

pytestmark = pytest.mark.usefixtures("db_backend")

URL = "/api/v1/agents"
# Friday 20 March 2026, 12:00 UTC: the Monday after is the last before Warsaw's change.
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)


def _create(client: TestClient, account: Account, **body: Any) -> dict[str, Any]:
    answer = client.post(URL, json={"name": "Weekly", "topic": "Python news", **body},
                         headers=account.headers)  # fmt: skip
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_an_agent_is_created_read_updated_and_deleted(client: TestClient, account: Account) -> None:
    source = add_source(account.workspace_id)
    channel = add_channel(account.workspace_id)
    with frozen(NOW):
        agent = _create(
            client,
            account,
            keywords=["  python ", "Python", "packaging  tools", ""],
            tone="friendly",
            target_words=800,
            language="pt-BR",
            instructions="Short sentences.",
            source_ids=[source, source],
            channel_ids=[channel],
            schedule_cron="0  9 * * MON",
            timezone="Europe/Warsaw",
            review="auto_publish",
            quota={"drafts_per_month": 10, "tokens_per_month": 50_000, "cost_per_month": 2.5},
        )
    assert agent["keywords"] == ["python", "packaging tools"]
    assert agent["source_ids"] == [source] and agent["channel_ids"] == [channel]
    assert agent["schedule_cron"] == "0 9 * * MON"
    assert agent["quota"] == {
        "drafts_per_month": 10, "tokens_per_month": 50_000, "cost_per_month": 2.5,
    }  # fmt: skip
    assert agent["provider"] == {"id": None, "name": "digest", "kind": "digest",
                                 "origin": "builtin"}  # fmt: skip
    assert agent["provider_id"] is None and agent["last_run_at"] is None
    with session_scope() as s:
        stored = s.get_one(Agent, uuid.UUID(agent["id"]))
        assert stored.quota_cost_micros_per_month == 2_500_000
        assert stored.created_by == account.user_id
    assert datetime.fromisoformat(agent["next_run_at"]) == datetime(2026, 3, 23, 8, tzinfo=UTC)

    url = f"{URL}/{agent['id']}"
    with frozen(NOW):
        read = client.get(url, headers=account.headers).json()
    assert read["next_runs"] == [
        "2026-03-23T09:00:00+01:00", "2026-03-30T09:00:00+02:00", "2026-04-06T09:00:00+02:00",
    ]  # fmt: skip
    patched = client.patch(
        url,
        json={"tone": None, "target_words": 300, "quota": {"cost_per_month": "0.000001"}},
        headers=account.headers,
    )
    assert patched.status_code == 200, patched.text
    changed = patched.json()
    assert (changed["tone"], changed["target_words"]) == (None, 300)
    assert changed["quota"] == {
        "drafts_per_month": 10, "tokens_per_month": 50_000, "cost_per_month": 0.000001,
    }  # fmt: skip
    assert changed["instructions"] == "Short sentences."  # not given: unchanged
    assert [a["name"] for a in client.get(URL, headers=account.headers).json()] == ["Weekly"]

    assert client.delete(url, headers=account.headers).status_code == 204
    assert client.get(url, headers=account.headers).status_code == 404
    assert client.get(URL, headers=account.headers).json() == []


def test_defaults(client: TestClient, account: Account) -> None:
    agent = _create(client, account)
    assert (agent["target_words"], agent["language"], agent["review"]) == (600, "en", "required")
    assert (agent["timezone"], agent["enabled"], agent["keywords"]) == ("UTC", True, [])
    assert agent["schedule_cron"] is None and agent["next_run_at"] is None
    assert agent["next_runs"] == []
    assert agent["quota"] == {
        "drafts_per_month": None, "tokens_per_month": None, "cost_per_month": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": ""}, "name", ""),
        ({"topic": ""}, "topic", ""),
        ({"target_words": 49}, "target_words", "greater than or equal to 50"),
        ({"target_words": 5001}, "target_words", "less than or equal to 5000"),
        ({"target_words": "600"}, "target_words", ""),
        ({"keywords": [f"k{n}" for n in range(21)]}, "keywords", "at most 20 keywords"),
        ({"language": "english!"}, "language", "language tag"),
        ({"schedule_cron": "0 9 * *"}, "schedule_cron", "has 4 fields"),
        ({"schedule_cron": "0 0 9 * * MON"}, "schedule_cron", "without seconds"),
        ({"schedule_cron": "0 0 31 2 *"}, "schedule_cron", "never runs"),
        (
            {"schedule_cron": "0 9 * * *", "timezone": "Europe/Gdansk"},
            "timezone",
            "unknown time zone",
        ),
        ({"review": "auto_publish"}, "review", "auto_publish needs channel_ids"),
        ({"review": "sometimes"}, "review", ""),
        ({"quota": {"drafts_per_month": -1}}, "drafts_per_month", ""),
        ({"quota": {"drafts_per_month": 2**31}}, "drafts_per_month", "less than or equal"),
        ({"quota": {"tokens_per_month": 2**53 + 1}}, "tokens_per_month", "less than or equal"),
        ({"quota": {"cost_per_month": 10**9 + 1}}, "cost_per_month", "less than or equal"),
        ({"quota": {"cost_per_month": 0.0000001}}, "cost_per_month", "decimal places"),
        ({"source_ids": ["not-an-id"]}, "source_ids", ""),
        ({"source_ids": [str(uuid.uuid4())]}, "source_ids", "no source"),
        ({"channel_ids": [str(uuid.uuid4())]}, "channel_ids", "no channel"),
        ({"provider_id": str(uuid.uuid4())}, "provider_id", "no provider"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, account: Account, body: dict[str, Any], field: str, words: str
) -> None:
    answer = client.post(URL, json={"name": "A", "topic": "T", **body}, headers=account.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert any(field in [str(p) for p in e["loc"]] for e in problem["errors"]), problem
    assert words in problem["detail"]
    assert client.get(URL, headers=account.headers).json() == []


def test_another_workspaces_ids_are_refused_as_missing_ones(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    other = make_account("other@example.com", workspace="elsewhere")
    theirs = {
        "source_ids": add_source(other.workspace_id),
        "channel_ids": add_channel(other.workspace_id),
        "provider_id": add_provider(other.workspace_id),
    }
    for field, their_id in theirs.items():
        missing = str(uuid.uuid4())

        def body(value: str, field: str = field) -> dict[str, Any]:
            return {"name": "A", "topic": "T", field: value if field == "provider_id" else [value]}

        foreign = client.post(URL, json=body(their_id), headers=account.headers)
        unknown = client.post(URL, json=body(missing), headers=account.headers)
        assert foreign.status_code == unknown.status_code == 422
        assert foreign.json()["detail"].replace(their_id, "<id>") == unknown.json()[
            "detail"
        ].replace(missing, "<id>")
        assert foreign.json()["errors"][0]["loc"] == ["body", field]
    # The same for a change, and for the default provider.
    agent = _create(client, account)
    answer = client.patch(f"{URL}/{agent['id']}", json={"channel_ids": [theirs["channel_ids"]]},
                          headers=account.headers)  # fmt: skip
    assert answer.status_code == 422 and "no channel" in answer.json()["detail"]
    answer = client.patch("/api/v1/agent-settings",
                          json={"default_provider_id": theirs["provider_id"]},
                          headers=account.headers)  # fmt: skip
    assert answer.status_code == 422 and "default_provider_id" in answer.json()["detail"]
    # Their agent is not found, whatever the operation.
    mine = f"{URL}/{agent['id']}"
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"topic": "x"}} if method == "PATCH" else {}
        assert client.request(method, mine, headers=other.headers, **kwargs).status_code == 404
    assert client.get(f"{mine}/runs", headers=other.headers).status_code == 404
    assert client.get(URL, headers=other.headers).json() == []


def test_names_are_unique_per_workspace(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    _create(client, account)
    twice = client.post(URL, json={"name": "Weekly", "topic": "x"}, headers=account.headers)
    assert twice.status_code == 409
    # (flush_unique's article is "A" for every kind; "an agent" would need core/db.py.)
    assert twice.json()["detail"].endswith("agent named 'Weekly' already exists in this workspace.")
    second = _create(client, account, name="Daily")
    renamed = client.patch(f"{URL}/{second['id']}", json={"name": "Weekly"},
                           headers=account.headers)  # fmt: skip
    assert renamed.status_code == 409
    other = make_account("other@example.com", workspace="elsewhere")
    _create(client, other)  # another workspace may use the name


def test_auto_publish_keeps_needing_channels(client: TestClient, account: Account) -> None:
    channel = add_channel(account.workspace_id)
    agent = _create(client, account, channel_ids=[channel], review="auto_publish")
    url = f"{URL}/{agent['id']}"
    emptied = client.patch(url, json={"channel_ids": []}, headers=account.headers)
    assert emptied.status_code == 422
    assert emptied.json()["detail"].startswith("auto_publish needs channel_ids")
    both = client.patch(url, json={"channel_ids": [], "review": "required"},
                        headers=account.headers)  # fmt: skip
    assert both.status_code == 200 and both.json()["channel_ids"] == []


def test_the_next_run_moves_only_when_the_schedule_changes(
    client: TestClient, account: Account
) -> None:
    with frozen(NOW):
        agent = _create(client, account, schedule_cron="0 9 * * MON", timezone="Europe/Warsaw")
    url = f"{URL}/{agent['id']}"
    due = datetime(2026, 3, 23, 8, tzinfo=UTC)
    assert datetime.fromisoformat(agent["next_run_at"]) == due

    later = due + timedelta(minutes=5)  # due, not yet claimed by the scheduler
    with frozen(later):
        kept = client.patch(url, json={"topic": "Rust news"}, headers=account.headers).json()
        assert datetime.fromisoformat(kept["next_run_at"]) == due  # the due run still runs
        off = client.patch(url, json={"enabled": False}, headers=account.headers).json()
        assert off["next_run_at"] is None and off["next_runs"] == []
        on = client.patch(url, json={"enabled": True}, headers=account.headers).json()
        assert datetime.fromisoformat(on["next_run_at"]) == datetime(2026, 3, 30, 7, tzinfo=UTC)
        zone = client.patch(url, json={"timezone": "America/New_York"},
                            headers=account.headers).json()  # fmt: skip
        # 09:00 in New York that Monday is still ahead (13:00 UTC).
        assert datetime.fromisoformat(zone["next_run_at"]) == datetime(2026, 3, 23, 13, tzinfo=UTC)
        assert zone["next_runs"][0] == "2026-03-23T09:00:00-04:00"
        cleared = client.patch(url, json={"schedule_cron": None}, headers=account.headers).json()
        assert cleared["schedule_cron"] is None and cleared["next_run_at"] is None
        bad_zone = client.patch(url, json={"timezone": "Nowhere/Land"}, headers=account.headers)
        assert bad_zone.status_code == 422
        assert bad_zone.json()["errors"][0]["loc"] == ["body", "timezone"]


def test_the_provider_is_the_agents_else_the_workspaces_else_the_digest(
    client: TestClient, account: Account
) -> None:
    own = add_provider(account.workspace_id, "Hosted")
    default = add_provider(account.workspace_id, "Ollama")
    agent = _create(client, account, provider_id=own)
    assert agent["provider"] == {"id": own, "name": "Hosted", "kind": "openai", "origin": "agent"}
    url = f"{URL}/{agent['id']}"
    plain = client.patch(url, json={"provider_id": None}, headers=account.headers).json()
    assert plain["provider"]["origin"] == "builtin" and plain["provider_id"] is None
    settings = client.patch("/api/v1/agent-settings", json={"default_provider_id": default},
                            headers=account.headers)  # fmt: skip
    assert settings.status_code == 200, settings.text
    read = client.get(url, headers=account.headers).json()
    assert read["provider"] == {"id": default, "name": "Ollama", "kind": "openai",
                                "origin": "workspace"}  # fmt: skip


def test_a_reviewer_reads_but_does_not_manage(client: TestClient, account: Account) -> None:
    agent = _create(client, account)
    reviewer = reviewer_in(account)
    h = reviewer.headers
    url = f"{URL}/{agent['id']}"
    refused = [
        client.post(URL, json={"name": "Mine", "topic": "x"}, headers=h),
        client.patch(url, json={"topic": "x"}, headers=h),
        client.delete(url, headers=h),
        client.patch("/api/v1/agent-settings", json={"instructions": "x"}, headers=h),
    ]
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert (
            answer.json()["detail"]
            == "Reviewers cannot manage channels, sources, agents or providers."
        )
    assert client.get(url, headers=h).json()["topic"] == "Python news"
    assert client.get(f"{url}/runs", headers=h).status_code == 200
    assert client.get("/api/v1/agent-settings", headers=h).status_code == 200
    assert client.get("/api/v1/usage", headers=h).status_code == 200
    # A member manages them.
    member = client.patch(url, json={"topic": "Rust"}, headers=account.headers)
    assert member.status_code == 200


def test_a_member_manages_agents(client: TestClient, make_account: MakeAccount) -> None:
    member = make_account("member@example.com", admin=False)
    assert _create(client, member)["name"] == "Weekly"


def test_deleting_an_agent_frees_its_sources(client: TestClient, account: Account) -> None:
    agent = _create(client, account)
    source = add_source(account.workspace_id)
    with session_scope() as s:
        s.get_one(Source, uuid.UUID(source)).agent_id = uuid.UUID(agent["id"])
    add_run(account.workspace_id, agent["id"], state=RunState.SUCCEEDED)
    assert client.delete(f"{URL}/{agent['id']}", headers=account.headers).status_code == 204
    with session_scope() as s:
        assert s.get_one(Source, uuid.UUID(source)).agent_id is None
        assert s.scalars(select(Agent)).all() == []


def test_runs_page_newest_first(client: TestClient, account: Account) -> None:
    agent = _create(client, account)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    made = [
        add_run(
            account.workspace_id,
            agent["id"],
            created_at=t0 + timedelta(minutes=n // 2),  # pairs share a time: ids break ties
            state=RunState.SUCCEEDED if n % 2 else RunState.FAILED,
            trigger=RunTrigger.SCHEDULE,
            scheduled_for=t0 + timedelta(minutes=n),
            input_tokens=100 + n,
            output_tokens=n,
            cost_micros=1_234_567 * n,
            latency_ms=40 + n,
            attempts=1,
            error=None if n % 2 else "the provider answered 500",
        )
        for n in range(7)
    ]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{URL}/{agent['id']}/runs", params=params, headers=account.headers)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    expected = sorted(
        range(7), key=lambda n: (t0 + timedelta(minutes=n // 2), made[n]), reverse=True
    )
    assert [r["id"] for r in seen] == [str(made[n]) for n in expected]
    last = next(r for r in seen if r["id"] == str(made[6]))
    assert last["cost"] == 7.407402 and last["input_tokens"] == 106
    assert last["error"] == "the provider answered 500" and last["trigger"] == "schedule"
    assert set(last) >= {"scheduled_for", "post_id", "job_id", "provider_kind", "model",
                         "keyword", "topic", "started_at", "finished_at", "latency_ms"}  # fmt: skip
    bad = client.get(f"{URL}/{agent['id']}/runs", params={"cursor": "xyz"},
                     headers=account.headers)  # fmt: skip
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]


def test_workspace_settings_start_as_defaults_and_change_by_parts(
    client: TestClient, account: Account
) -> None:
    url = "/api/v1/agent-settings"
    defaults = client.get(url, headers=account.headers).json()
    assert defaults == {
        "default_provider_id": None,
        "default_provider": {"id": None, "name": "digest", "kind": "digest", "origin": "builtin"},
        "instructions": None,
        "timezone": "UTC",
        "quota": {"drafts_per_month": None, "tokens_per_month": None, "cost_per_month": None},
        "updated_at": None,
    }
    provider = add_provider(account.workspace_id)
    changed = client.patch(
        url,
        json={
            "default_provider_id": provider,
            "instructions": "Plain words.",
            "timezone": "Europe/Warsaw",
            "quota": {"drafts_per_month": 100, "cost_per_month": 20},
        },
        headers=account.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["default_provider"]["origin"] == "workspace" and body["updated_at"]
    assert body["quota"] == {"drafts_per_month": 100, "tokens_per_month": None,
                             "cost_per_month": 20.0}  # fmt: skip
    again = client.patch(url, json={"instructions": None, "quota": {"drafts_per_month": None}},
                         headers=account.headers).json()  # fmt: skip
    assert again["instructions"] is None and again["timezone"] == "Europe/Warsaw"
    assert again["default_provider_id"] == provider
    assert again["quota"] == {"drafts_per_month": None, "tokens_per_month": None,
                              "cost_per_month": 20.0}  # fmt: skip
    assert client.get(url, headers=account.headers).json() == again
    for body_, field in (
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"instructions": "x" * 4001}, "instructions"),
        ({"default_provider_id": str(uuid.uuid4())}, "default_provider_id"),
    ):
        answer = client.patch(url, json=body_, headers=account.headers)
        assert answer.status_code == 422 and field in str(answer.json()["errors"]), answer.text
