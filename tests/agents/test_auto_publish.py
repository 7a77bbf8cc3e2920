"""An agent's drafts reach its channels: with `auto_publish` at the cron's time into each
channel's next free slot, and out at that slot; with review required, not before a
person approves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.agents import schedule
from herald.agents.models import AgentRun
from herald.agents.tasks import generate_post
from herald.core.db import session_scope
from herald.publishing.tasks import deliver
from herald.scheduling.dispatcher import dispatch_once
from herald.sources.entries import Entry
from herald.sources.items import store_entries
from tests.conftest import Account
from tests.scheduling import frozen, set_slots

pytestmark = pytest.mark.usefixtures("db_backend")

# Monday 2 November 2026, 08:00 in Warsaw (UTC+1): the agent writes; the channel's slot
# is at 10:00 local, 09:00 UTC.
WRITES = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
SLOT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _setup(client: TestClient, account: Account, folder: Path, review: str) -> dict[str, Any]:
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "folder", "name": "site", "credentials": {"path": str(folder)}},
        headers=account.headers,
    ).json()
    set_slots(client, account, channel["id"], "Europe/Warsaw",
              [{"weekdays": ["mon"], "time": "10:00"}])  # fmt: skip
    source = client.post(
        "/api/v1/sources",
        json={"kind": "feed", "name": "News", "url": "https://news.example/feed.xml"},
        headers=account.headers,
    ).json()
    with session_scope() as s:
        store_entries(
            s,
            workspace_id=account.workspace_id,
            source_id=uuid.UUID(source["id"]),
            entries=[
                Entry(site="feed", title=f"Story {n}", link=f"https://news.example/{n}",
                      summary_text=f"Story {n} happened today. It matters for {n} reasons.")
                for n in (1, 2)
            ],
        )  # fmt: skip
    agent = client.post(
        "/api/v1/agents",
        json={"name": "Monday", "topic": "The week's news", "source_ids": [source["id"]],
              "channel_ids": [channel["id"]], "schedule_cron": "0 8 * * MON",
              "timezone": "Europe/Warsaw", "review": review},
        headers=account.headers,
    )  # fmt: skip
    assert agent.status_code == 201, agent.text
    return {"agent": agent.json(), "channel": channel}


def _run_at_its_time() -> dict[str, Any]:
    """The scheduler's pass at the cron's time, then the run's job (as a worker would)."""
    with frozen(WRITES + timedelta(seconds=1)):
        with session_scope() as s:
            assert schedule.due_pass(s)["started"] == 1
            job_id = s.query(AgentRun.job_id).one()[0]
        result: dict[str, Any] = generate_post(job_id)
    return result


def test_an_auto_publish_agent_drafts_at_its_time_and_the_draft_goes_out_at_the_next_slot(
    client: TestClient, account: Account, tmp_path: Path
) -> None:
    with frozen(WRITES - timedelta(days=1)):
        _setup(client, account, tmp_path, "auto_publish")

    result = _run_at_its_time()

    assert result["success"] and result["status"] == "scheduled", result
    publications = client.get(
        f"/api/v1/posts/{result['post_id']}/publications", headers=account.headers
    ).json()
    assert [(p["state"], p["due_at"]) for p in publications] == [
        ("scheduled", SLOT.isoformat().replace("+00:00", "Z"))
    ]
    with frozen(SLOT - timedelta(seconds=1)):
        assert dispatch_once() == 0
    with frozen(SLOT + timedelta(seconds=1)):
        assert dispatch_once() == 1
    assert deliver(publications[0]["id"]) == "published"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and "Story 1" in written[0].read_text()


def test_a_draft_that_needs_review_waits_until_it_is_approved(
    client: TestClient, account: Account, tmp_path: Path
) -> None:
    with frozen(WRITES - timedelta(days=1)):
        made = _setup(client, account, tmp_path, "required")

    result = _run_at_its_time()

    assert result["status"] == "in_review"
    post_id = result["post_id"]
    refused = client.post(
        f"/api/v1/posts/{post_id}/publish",
        json={"channel_ids": [made["channel"]["id"]]},
        headers=account.headers,
    )
    assert refused.status_code == 409 and "approve it first" in refused.json()["detail"]
    approved = client.post(f"/api/v1/posts/{post_id}/approve", json={}, headers=account.headers)
    assert approved.status_code == 200, approved.text
    # No channels given: the agent's; no schedule: now.
    assert [p["channel_id"] for p in approved.json()["publications"]] == [made["channel"]["id"]]
    assert approved.json()["post"]["reviewed_by_email"] == account.email
