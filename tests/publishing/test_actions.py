"""The actions module's promises: the transitions table is complete and enforced, every
change (reschedule included) syncs the job and emits its event, and the one cancel
rule answers the same from both routes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from herald.core.clock import set_clock, utcnow
from herald.core.db import session_scope
from herald.events.service import publish_after_commit
from herald.jobs.models import Job
from herald.publishing import actions
from herald.publishing.actions import compare_and_set
from herald.publishing.models import (
    ACTIVE,
    DUE,
    GROUPS,
    SETTLED,
    TRANSITIONS,
    WAITING,
    Publication,
    PublicationState,
)
from tests.conftest import Account
from tests.fakes.webhook_receiver import Receiver

S = PublicationState
Row = dict[str, Any]


@pytest.fixture
def setup(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str
) -> tuple[Row, Row]:
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    post = client.post("/api/v1/posts", json={"title": "Later"}, headers=account.headers).json()
    return channel, post


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Row]:
    """The ``publication.state`` events the compare-and-set sends (still sent for real)."""
    seen: list[Row] = []
    real = publish_after_commit

    def record(tx: Any, workspace_id: uuid.UUID, kind: str, data: Row) -> None:
        seen.append({"kind": kind, **data})
        real(tx, workspace_id, kind, data)

    monkeypatch.setattr(compare_and_set, "publish_after_commit", record)
    return seen


def schedule(client: TestClient, account: Account, post_id: str, channel_id: str) -> Row:
    response = client.post(
        f"/api/v1/posts/{post_id}/schedule",
        json={
            "scheduled_at": (utcnow() + timedelta(hours=1)).isoformat(),
            "channel_ids": [channel_id],
        },
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    publication: dict[str, Any]
    (publication,) = response.json()["publications"]
    return publication


def stored(publication_id: str) -> tuple[Publication, Job]:
    with session_scope() as session:
        publication = session.get_one(Publication, uuid.UUID(publication_id))
        job = session.get_one(Job, publication.task_id)
        session.expunge_all()
    return publication, job


def set_state(publication_id: str, state: PublicationState) -> None:
    with session_scope() as session:
        session.execute(
            update(Publication)
            .where(Publication.id == uuid.UUID(publication_id))
            .values(state=state)
        )


# --- the table -------------------------------------------------------------------------


def test_every_state_has_its_moves_and_the_groups_agree_with_them() -> None:
    assert set(TRANSITIONS) == set(PublicationState)
    assert all(targets <= set(PublicationState) for targets in TRANSITIONS.values())
    # Published and cancelled are final; failed and unconfirmed only go out again.
    assert TRANSITIONS[S.PUBLISHED] == TRANSITIONS[S.CANCELLED] == frozenset()
    assert TRANSITIONS[S.FAILED] == TRANSITIONS[S.UNCONFIRMED] == {S.QUEUED}
    assert set(PublicationState) == ACTIVE | SETTLED
    assert not ACTIVE & SETTLED
    assert DUE < WAITING < ACTIVE
    # Every waiting delivery can be cancelled; every active one can settle.
    assert all(S.CANCELLED in TRANSITIONS[state] for state in WAITING)
    assert all(TRANSITIONS[state] & SETTLED for state in ACTIVE)


@pytest.mark.parametrize(
    ("from_state", "to_state"),
    [(S.PUBLISHED, S.QUEUED), (S.CANCELLED, S.SCHEDULED), (S.QUEUED, S.PUBLISHED)],
)
def test_a_move_outside_the_table_is_refused_before_any_write(
    client: TestClient,
    account: Account,
    setup: tuple[Row, Row],
    from_state: PublicationState,
    to_state: PublicationState,
) -> None:
    channel, post = setup
    publication = schedule(client, account, post["id"], channel["id"])
    set_state(publication["id"], from_state)
    with session_scope() as session, pytest.raises(actions.IllegalTransition):
        actions.transition(session, uuid.UUID(publication["id"]), [from_state], to_state)
    assert stored(publication["id"])[0].state == from_state


# --- every change syncs the job and emits its event ------------------------------------


def test_reschedule_syncs_the_job_and_emits_the_event(
    client: TestClient, account: Account, setup: tuple[Row, Row], events: list[Row]
) -> None:
    channel, post = setup
    publication = schedule(client, account, post["id"], channel["id"])
    events.clear()
    later = utcnow() + timedelta(minutes=5)
    when = utcnow() + timedelta(hours=3)
    set_clock(lambda: later)
    try:
        response = client.patch(
            f"/api/v1/posts/{post['id']}/schedule",
            json={"scheduled_at": when.isoformat()},
            headers=account.headers,
        )
    finally:
        set_clock(None)
    assert response.status_code == 200, response.text
    (moved,) = response.json()["publications"]
    assert datetime.fromisoformat(moved["due_at"]) == when
    row, job = stored(publication["id"])
    assert (row.state, row.due_at, row.updated_at) == (S.SCHEDULED, when, later)
    assert (job.state, job.updated_at) == ("PENDING", later)
    assert events == [
        {
            "kind": "publication.state",
            "publication_id": publication["id"],
            "task_id": publication["task_id"],
            "post_id": post["id"],
            "state": "scheduled",
        }
    ]


# --- one cancel rule, both routes ------------------------------------------------------


def cancel_by_task(client: TestClient, account: Account, task_id: str) -> tuple[int, Row]:
    response = client.delete(f"/api/v1/tasks/cancel/{task_id}", headers=account.headers)
    return response.status_code, response.json()


def unschedule(client: TestClient, account: Account, post_id: str) -> tuple[int, Row]:
    response = client.delete(f"/api/v1/posts/{post_id}/schedule", headers=account.headers)
    return response.status_code, response.json()


@pytest.mark.parametrize("route", ["task", "post"])
def test_both_routes_cancel_a_waiting_delivery_for_certain(
    client: TestClient, account: Account, setup: tuple[Row, Row], events: list[Row], route: str
) -> None:
    channel, post = setup
    publication = schedule(client, account, post["id"], channel["id"])
    events.clear()
    if route == "task":
        assert cancel_by_task(client, account, publication["task_id"]) == (
            200,
            {"task_id": publication["task_id"], "outcome": "cancelled"},
        )
    else:
        assert unschedule(client, account, post["id"]) == (
            200,
            {"post_id": post["id"], "cancelled": 1},
        )
    row, job = stored(publication["id"])
    assert (row.state, job.state) == (S.CANCELLED, "REVOKED")
    assert [event["state"] for event in events] == ["cancelled"]


@pytest.mark.parametrize("route", ["task", "post"])
def test_both_routes_only_ask_a_running_delivery_to_stop(
    client: TestClient, account: Account, setup: tuple[Row, Row], route: str
) -> None:
    """A running attempt cannot be taken back: both routes flag it (honoured if it ends
    waiting to retry); unscheduling used to skip it silently."""
    channel, post = setup
    publication = schedule(client, account, post["id"], channel["id"])
    set_state(publication["id"], S.PUBLISHING)
    if route == "task":
        assert cancel_by_task(client, account, publication["task_id"])[1]["outcome"] == (
            "cancel_requested"
        )
    else:  # nothing cancelled for certain
        assert unschedule(client, account, post["id"])[1]["cancelled"] == 0
    row, _ = stored(publication["id"])
    assert (row.state, row.cancel_requested) == (S.PUBLISHING, True)


def test_a_published_delivery_is_never_reported_cancelled(
    client: TestClient, account: Account, setup: tuple[Row, Row]
) -> None:
    channel, post = setup
    publication = schedule(client, account, post["id"], channel["id"])
    set_state(publication["id"], S.PUBLISHED)
    status, problem = cancel_by_task(client, account, publication["task_id"])
    assert status == 409, problem
    # Unscheduling a post takes only what has not gone out: the published one stays.
    assert unschedule(client, account, post["id"]) == (200, {"post_id": post["id"], "cancelled": 0})
    assert stored(publication["id"])[0].state == S.PUBLISHED


# --- served to clients -----------------------------------------------------------------


def test_the_states_endpoint_serves_the_table_and_groups(client: TestClient) -> None:
    response = client.get("/api/v1/publications/states")
    assert response.status_code == 200
    body = response.json()
    assert body["states"] == [str(state) for state in PublicationState]
    assert body["groups"] == {
        name: [str(s) for s in PublicationState if s in group] for name, group in GROUPS.items()
    }
    assert {state: set(targets) for state, targets in body["transitions"].items()} == {
        str(state): {str(t) for t in targets} for state, targets in TRANSITIONS.items()
    }
    documented = client.get("/openapi.json").json()["paths"]["/api/v1/publications/states"]
    assert "DeliveryStates" in str(documented["get"]["responses"]["200"])


def test_the_dashboard_reads_the_groups_instead_of_copying_them(client: TestClient) -> None:
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert "/publications/states" in script.text
    assert '["scheduled", "queued", "retry_wait", "publishing"]' not in script.text


def test_a_job_row_follows_every_move_of_its_delivery(
    client: TestClient, account: Account, setup: tuple[Row, Row]
) -> None:
    channel, post = setup
    publication = schedule(client, account, post["id"], channel["id"])
    pid = uuid.UUID(publication["id"])
    with session_scope() as session:
        (row,) = actions.transition(session, pid, DUE, S.QUEUED)
        assert row.task_id == publication["task_id"]
    assert stored(publication["id"])[1].state == "PENDING"
    with session_scope() as session:
        assert actions.claim(session, pid) is not None
    assert stored(publication["id"])[1].state == "STARTED"
    with session_scope() as session:
        jobs = session.scalars(select(Job.started_at).where(Job.id == publication["task_id"]))
        assert list(jobs) != [None]
