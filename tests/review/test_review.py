"""Review: approve (now, at a time, in the next slot, to the agent's channels), reject,
send back, one decision when two reviewers click at once, and publishing refusing a post
that waits for review. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from herald.agents.models import Agent
from herald.core.db import session_scope
from herald.core.errors import Conflict
from herald.events.service import flush_events, stream_key
from herald.jobs.models import Job
from herald.posts.models import Post, PostState
from herald.publishing.batch import run_batch
from herald.publishing.models import Publication, PublicationState
from herald.review import service
from herald.users.models import Role
from tests.conftest import Account, MakeAccount
from tests.scheduling import make_channel, make_post, principal_of, set_slots


def submit(client: TestClient, account: Account, post_id: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/posts/{post_id}/submit", headers=account.headers)
    assert response.status_code == 200, response.text
    post: dict[str, Any] = response.json()
    return post


def waiting(client: TestClient, account: Account, title: str = "Draft") -> str:
    """A post in review, as an agent leaves it."""
    post_id = make_post(client, account, title)
    assert submit(client, account, post_id)["state"] == "in_review"
    return post_id


def approve(client: TestClient, account: Account, post_id: str, **body: Any) -> Any:
    return client.post(f"/api/v1/posts/{post_id}/approve", json=body, headers=account.headers)


def reject(client: TestClient, account: Account, post_id: str, note: Any) -> Any:
    return client.post(
        f"/api/v1/posts/{post_id}/reject", json={"note": note}, headers=account.headers
    )


def deliveries(post_id: str) -> list[Publication]:
    with session_scope() as session:
        return list(
            session.scalars(select(Publication).where(Publication.post_id == uuid.UUID(post_id)))
        )


def test_approve_records_the_reviewer_and_leaves_a_draft(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    reviewer = make_account("rita@example.com", role=Role.REVIEWER)
    post_id = waiting(client, account)
    queue = client.get("/api/v1/posts", params={"state": "in_review"}, headers=reviewer.headers)
    assert [p["id"] for p in queue.json()["items"]] == [post_id]

    response = approve(client, reviewer, post_id)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["publications"] == [] and result["queued"] == []
    post = result["post"]
    assert post["state"] == "draft"
    assert post["review_decision"] == "approved"
    assert post["reviewed_by"] == str(reviewer.user_id)
    assert post["reviewed_by_email"] == "rita@example.com"
    assert post["review_note"] is None
    reviewed_at = datetime.fromisoformat(post["reviewed_at"])
    assert abs(reviewed_at - datetime.now(UTC)) < timedelta(minutes=5)
    # Shown wherever the post is read, and the queue is empty now.
    read = client.get(f"/api/v1/posts/{post_id}", headers=account.headers).json()
    assert read["reviewed_by_email"] == "rita@example.com"
    queue = client.get("/api/v1/posts", params={"state": "in_review"}, headers=reviewer.headers)
    assert queue.json()["items"] == []


def test_approve_publishes_now_to_the_channels_given(client: TestClient, account: Account) -> None:
    channel = make_channel(client, account)
    post_id = waiting(client, account)
    response = approve(client, account, post_id, channel_ids=[channel])
    assert response.status_code == 200, response.text
    (delivery,) = response.json()["publications"]
    assert delivery["channel_id"] == channel
    assert delivery["state"] == "queued"
    assert response.json()["post"]["state"] == "scheduled"  # it has a delivery under way
    assert [p.state for p in deliveries(post_id)] == [PublicationState.QUEUED]


def test_approve_at_a_time_schedules_and_a_past_time_changes_nothing(
    client: TestClient, account: Account
) -> None:
    channel = make_channel(client, account)
    post_id = waiting(client, account)
    past = approve(client, account, post_id, channel_ids=[channel], schedule="2020-01-01T10:00Z")
    assert past.status_code == 422
    assert past.json()["errors"][0]["loc"][-1] == "schedule"
    naive = approve(client, account, post_id, channel_ids=[channel], schedule="2030-01-01T10:00")
    assert naive.status_code == 422
    assert client.get(f"/api/v1/posts/{post_id}", headers=account.headers).json()["state"] == (
        "in_review"
    )

    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    response = approve(client, account, post_id, channel_ids=[channel], schedule=at.isoformat())
    assert response.status_code == 200, response.text
    (delivery,) = response.json()["publications"]
    assert delivery["state"] == "scheduled"
    assert datetime.fromisoformat(delivery["due_at"]) == at


def test_approve_into_the_queue_takes_the_next_free_slot(
    client: TestClient, account: Account
) -> None:
    channel = make_channel(client, account)
    set_slots(
        client, account, channel, "UTC", [{"weekdays": [0, 1, 2, 3, 4, 5, 6], "time": "09:00"}]
    )
    first, second = waiting(client, account, "One"), waiting(client, account, "Two")
    slots = []
    for post_id in (first, second):
        response = approve(client, account, post_id, channel_ids=[channel], schedule="queue")
        assert response.status_code == 200, response.text
        (queued,) = response.json()["queued"]
        (delivery,) = response.json()["publications"]
        assert delivery["state"] == "scheduled"
        assert queued["publication"]["id"] == delivery["id"]
        slots.append(datetime.fromisoformat(queued["at"]))
    assert all(slot.hour == 9 and slot.minute == 0 for slot in slots)
    assert slots[1] == slots[0] + timedelta(days=1)  # one slot each


def test_approve_without_channels_uses_the_agents_that_still_exist(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    kept, gone = make_channel(client, account, "kept"), make_channel(client, account, "gone")
    theirs = make_channel(client, make_account(workspace="other"), "theirs")
    assert client.delete(f"/api/v1/channels/{gone}", headers=account.headers).status_code == 204
    post_id = waiting(client, account)
    with session_scope() as session:
        agent = Agent(
            workspace_id=account.workspace_id,
            name="weekly",
            channel_ids=[gone, "not-an-id", theirs, kept],
        )
        session.add(agent)
        session.flush()
        session.execute(update(Post).where(Post.id == uuid.UUID(post_id)).values(agent_id=agent.id))
    assert client.get(f"/api/v1/posts/{post_id}", headers=account.headers).json()["agent_id"]

    response = approve(client, account, post_id)
    assert response.status_code == 200, response.text
    assert [p["channel_id"] for p in response.json()["publications"]] == [kept]

    # An explicit empty list approves without publishing, whatever the agent targets.
    other = waiting(client, account)
    with session_scope() as session:
        session.execute(update(Post).where(Post.id == uuid.UUID(other)).values(agent_id=agent.id))
    assert approve(client, account, other, channel_ids=[]).json()["publications"] == []
    assert deliveries(other) == []


def test_a_schedule_without_channels_is_refused(client: TestClient, account: Account) -> None:
    post_id = waiting(client, account)
    response = approve(client, account, post_id, schedule="queue")
    assert response.status_code == 422
    assert "channel_ids" in response.json()["detail"]
    assert client.get(f"/api/v1/posts/{post_id}", headers=account.headers).json()["state"] == (
        "in_review"
    )


def test_reject_with_a_note_then_edit_and_send_back(client: TestClient, account: Account) -> None:
    post_id = waiting(client, account)
    for note in ("", "   ", "x" * 2001):
        refused = reject(client, account, post_id, note)
        assert refused.status_code == 422, note
    assert reject(client, account, post_id, None).status_code == 422

    response = reject(client, account, post_id, "  The second claim needs a source.  ")
    assert response.status_code == 200, response.text
    post = response.json()
    assert post["state"] == "rejected"
    assert post["review_decision"] == "rejected"
    assert post["review_note"] == "The second claim needs a source."
    assert post["reviewed_by"] == str(account.user_id)

    # A rejected post cannot be approved; it is edited, then sent back.
    again = approve(client, account, post_id)
    assert again.status_code == 409
    assert f"/api/v1/posts/{post_id}/submit" in again.json()["detail"]
    edited = client.patch(
        f"/api/v1/posts/{post_id}", json={"body": "Sourced now."}, headers=account.headers
    )
    assert edited.status_code == 200
    back = submit(client, account, post_id)
    assert back["state"] == "in_review"
    assert back["review_decision"] is None
    assert back["review_note"] is None
    assert back["reviewed_by"] is None and back["reviewed_at"] is None
    twice = client.post(f"/api/v1/posts/{post_id}/submit", headers=account.headers)
    assert twice.status_code == 409
    assert "already waiting for review" in twice.json()["detail"]


def test_a_second_decision_is_a_409_naming_the_first(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    other = make_account("omar@example.com", role=Role.REVIEWER)
    post_id = waiting(client, account)
    assert approve(client, account, post_id).status_code == 200
    for response in (approve(client, other, post_id), reject(client, other, post_id, "No.")):
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert "already approved" in detail and account.email in detail
    post = client.get(f"/api/v1/posts/{post_id}", headers=account.headers).json()
    assert post["review_decision"] == "approved"
    assert post["reviewed_by"] == str(account.user_id)


def test_two_reviewers_at_once_make_one_decision(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    channel = uuid.UUID(make_channel(client, account))
    approver, rejecter = (principal_of(make_account(role=Role.REVIEWER)) for _ in range(2))

    def decide(post_id: uuid.UUID, approving: bool, barrier: Any, outcomes: list[str]) -> None:
        barrier.wait()  # both start together: one conditional UPDATE wins
        try:
            with session_scope() as session:
                if approving:
                    service.approve(session, approver, post_id, [channel])
                else:
                    service.reject(session, rejecter, post_id, "Not this one.")
            outcomes.append("decided")
        except Conflict:
            outcomes.append("409")

    for _ in range(3):
        post_id = uuid.UUID(waiting(client, account))
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        threads = [
            threading.Thread(target=decide, args=(post_id, approving, barrier, outcomes))
            for approving in (True, False)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["409", "decided"]
        made = deliveries(str(post_id))
        with session_scope() as session:
            post = session.get_one(Post, post_id)
            if post.review_decision == "approved":
                assert post.reviewed_by == approver.user_id and len(made) == 1
            else:
                assert post.state == PostState.REJECTED and made == []
                assert post.reviewed_by == rejecter.user_id


def test_publishing_scheduling_or_queueing_a_post_in_review_is_a_409(
    client: TestClient, account: Account
) -> None:
    channel = make_channel(client, account)
    set_slots(
        client, account, channel, "UTC", [{"weekdays": [0, 1, 2, 3, 4, 5, 6], "time": "09:00"}]
    )
    post_id = waiting(client, account)
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    calls = [
        ("/api/v1/posts/{id}/publish", {"channel_ids": [channel]}),
        ("/api/v1/posts/{id}/schedule", {"channel_ids": [channel], "scheduled_at": later}),
        ("/api/v1/posts/{id}/queue", {"channel_ids": [channel]}),
        ("/api/v1/tasks/publish-post", {"post_id": post_id, "channel_id": channel}),
    ]
    for path, body in calls:
        response = client.post(path.format(id=post_id), json=body, headers=account.headers)
        assert response.status_code == 409, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == (
            f"Post {post_id} is waiting for review; approve it first "
            f"(POST /api/v1/posts/{post_id}/approve)."
        )
    assert reject(client, account, post_id, "Too long.").status_code == 200
    refused = client.post(
        f"/api/v1/posts/{post_id}/publish", json={"channel_ids": [channel]}, headers=account.headers
    )
    assert refused.status_code == 409
    assert "submit" in refused.json()["detail"]
    assert deliveries(post_id) == []


def test_a_batch_skips_posts_in_review_and_says_so(
    client: TestClient, account: Account, redis_broker: str
) -> None:
    channel = make_channel(client, account)
    held, ready = waiting(client, account, "Held"), make_post(client, account, "Ready")
    response = client.post(
        "/api/v1/posts/batch-publish",
        json={"post_ids": [held, ready], "channel_ids": [channel]},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["task_id"]
    result = run_batch(job_id)
    assert result["deliveries"] == 1
    assert deliveries(held) == [] and len(deliveries(ready)) == 1
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        assert job.state == "SUCCESS"


def test_a_decision_is_a_live_event_after_commit(
    client: TestClient, account: Account, redis_broker: str
) -> None:
    approved, rejected = waiting(client, account, "A"), waiting(client, account, "B")
    with redis.Redis.from_url(redis_broker, decode_responses=True) as r:
        r.delete(stream_key(account.workspace_id))
        assert approve(client, account, approved).status_code == 200
        assert reject(client, account, rejected, "No.").status_code == 200
        assert approve(client, account, approved).status_code == 409  # no event for a 409
        assert submit(client, account, rejected)["state"] == "in_review"
        flush_events()
        events = [
            json.loads(fields["data"])
            for _id, fields in r.xrange(stream_key(account.workspace_id))
            if fields["kind"] == "post.reviewed"
        ]
    assert events == [
        {
            "post_id": approved,
            "decision": "approved",
            "state": "draft",
            "reviewer_id": str(account.user_id),
            "reviewer_email": account.email,
        },
        {
            "post_id": rejected,
            "decision": "rejected",
            "state": "rejected",
            "reviewer_id": str(account.user_id),
            "reviewer_email": account.email,
        },
        {
            "post_id": rejected,
            "decision": "submitted",
            "state": "in_review",
            "reviewer_id": str(account.user_id),
            "reviewer_email": account.email,
        },
    ]


@pytest.mark.parametrize("state", [PostState.SCHEDULED, PostState.PUBLISHED])
def test_only_a_draft_or_a_rejected_post_can_be_sent_for_review(
    client: TestClient, account: Account, state: PostState
) -> None:
    post_id = make_post(client, account)
    with session_scope() as session:
        session.execute(update(Post).where(Post.id == uuid.UUID(post_id)).values(state=state))
    response = client.post(f"/api/v1/posts/{post_id}/submit", headers=account.headers)
    assert response.status_code == 409
    assert f"is {state}" in response.json()["detail"]


def test_another_workspaces_post_is_a_404(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    post_id = waiting(client, account)
    stranger = make_account(workspace="elsewhere")
    for response in (
        approve(client, stranger, post_id),
        reject(client, stranger, post_id, "No."),
        client.post(f"/api/v1/posts/{post_id}/submit", headers=stranger.headers),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == f"No post {post_id}."
    assert client.get(f"/api/v1/posts/{post_id}", headers=account.headers).json()["state"] == (
        "in_review"
    )
