"""Delivering events: the signed request, back-off, Retry-After, the 24 h give-up,
auto-disable and re-enable, 410 Gone, redelivery and the SSRF guard."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from herald.core.db import session_scope
from herald.core.http import reset_shared_client
from herald.core.settings import get_settings
from herald.webhooks import delivery, outbox, signing
from herald.webhooks.models import DeliveryState, Webhook, WebhookDelivery, WebhookState
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver
from tests.webhooks import Clock, add_webhook, deliveries, due_ids, movable_clock, run_due

D = DeliveryState


@pytest.fixture
def clock() -> Iterator[Clock]:
    with movable_clock() as clock:
        yield clock


def _event(account: Account, **data: object) -> uuid.UUID:
    with session_scope() as session:
        event_id = outbox.record(session, account.workspace_id, "job.finished", data)
    assert event_id is not None
    return event_id


def _webhook(webhook_id: str) -> Webhook:
    with session_scope() as session:
        found = session.get_one(Webhook, uuid.UUID(webhook_id))
        session.expunge(found)
        return found


def test_the_request_is_signed_and_says_what_happened(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    add_webhook(client, account, event_receiver, ["job.finished"])
    event_id = _event(account, job_id="j-1", state="SUCCESS")
    assert run_due() == [D.DELIVERED]
    (request,) = event_receiver.requests
    headers, raw = request["headers"], request["body"]
    assert headers["herald-event-id"] == str(event_id)
    assert headers["herald-event-type"] == "job.finished"
    assert headers["herald-timestamp"] == str(int(clock.now.timestamp()))
    assert signing.verify(
        event_receiver.secret, headers["herald-timestamp"], raw, headers["herald-signature"]
    )
    assert not signing.verify(
        "another-secret-entirely", headers["herald-timestamp"], raw, headers["herald-signature"]
    )
    # Signed over the timestamp too: the same body with another timestamp fails.
    later = str(int(headers["herald-timestamp"]) + 1)
    assert not signing.verify(event_receiver.secret, later, raw, headers["herald-signature"])
    body = json.loads(raw)
    assert body == {
        "id": str(event_id),
        "type": "job.finished",
        "created_at": clock.now.isoformat(),
        "workspace_id": str(account.workspace_id),
        "data": {"job_id": "j-1", "state": "SUCCESS"},
    }
    (done,) = deliveries()
    assert (done.state, done.attempts, done.last_status) == (D.DELIVERED, 1, 200)
    assert done.delivered_at == clock.now and done.duration_ms is not None


def test_failures_back_off_and_succeed_later(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    hook = add_webhook(client, account, event_receiver)
    _event(account)
    event_receiver.answer_status = 503
    waits = []
    for expected in delivery.BACKOFF[:4]:
        assert run_due() == [D.PENDING]
        (row,) = deliveries()
        wait = (row.due_at - clock.now).total_seconds()
        assert expected * 0.8 <= wait <= expected * 1.2
        assert row.last_status == 503 and row.last_error == "HTTP 503 Service Unavailable"
        assert row.response_excerpt and "receiver says 503" in row.response_excerpt
        clock.advance(seconds=wait - 1)
        assert due_ids() == []  # not before it is due
        clock.advance(seconds=1)
        waits.append(wait)
    assert _webhook(hook["id"]).consecutive_failures == 4
    event_receiver.answer_status = None
    assert run_due() == [D.DELIVERED]
    assert deliveries()[0].attempts == 5
    assert _webhook(hook["id"]).consecutive_failures == 0
    assert _webhook(hook["id"]).failing_since is None


def test_the_wait_is_capped_at_an_hour() -> None:
    assert all(delivery.backoff(n, None) <= 3600 for n in range(1, 40))
    assert delivery.backoff(30, None) >= 3600 * 0.8


def test_retry_after_is_respected(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    add_webhook(client, account, event_receiver)
    _event(account)
    event_receiver.answer_status, event_receiver.retry_after = 429, "600"
    assert run_due() == [D.PENDING]
    (row,) = deliveries()
    assert row.due_at - clock.now == timedelta(seconds=600)


def test_a_delivery_is_given_up_24_hours_after_its_event(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    hook = add_webhook(client, account, event_receiver)
    _event(account)
    event_receiver.stop()  # refusing connections from now on
    start = clock.now
    states = []
    while True:
        ran = run_due()
        if not ran:
            (row,) = deliveries()
            clock.now = max(clock.now, row.due_at)
            continue
        states += ran
        if ran == [D.FAILED]:
            break
    (row,) = deliveries()
    assert clock.now - start <= delivery.GIVE_UP_AFTER
    assert clock.now - start > delivery.GIVE_UP_AFTER - timedelta(hours=1, minutes=13)
    assert row.last_status is None and row.last_error
    assert set(states[:-1]) == {D.PENDING}
    # The endpoint failed for under 24 h: still active.
    assert _webhook(hook["id"]).state == WebhookState.ACTIVE


def test_an_endpoint_failing_for_24_hours_is_disabled_and_resumes_when_enabled(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    hook = add_webhook(client, account, event_receiver)
    _event(account)
    event_receiver.answer_status = 500
    assert run_due() == [D.PENDING]
    started = _webhook(hook["id"]).failing_since
    assert started == clock.now
    # A day of failures later, the next failure disables it (and the first event, 24 h
    # old, is given up); the newer event waits, unclaimed.
    clock.advance(hours=24)
    _event(account)
    assert run_due() == [D.FAILED, None]
    found = client.get(f"/api/v1/webhooks/{hook['id']}", headers=account.headers).json()
    assert found["state"] == "disabled"
    assert found["disabled_reason"].startswith("every attempt failed for 24 h")
    assert "HTTP 500" in found["disabled_reason"]
    # Disabled: nothing is attempted, and new events are not recorded for it.
    clock.advance(hours=2)
    assert due_ids() == []
    with session_scope() as session:
        assert outbox.record(session, account.workspace_id, "job.finished", {}) is None
    # Enabled again: what waited goes at once, the streak forgotten.
    event_receiver.answer_status = None
    answer = client.patch(
        f"/api/v1/webhooks/{hook['id']}", json={"state": "active"}, headers=account.headers
    ).json()
    assert (answer["state"], answer["disabled_reason"], answer["consecutive_failures"]) == (
        "active",
        None,
        0,
    )
    assert run_due() == [D.DELIVERED]
    assert len(event_receiver.events) == 1


def test_410_gone_fails_the_delivery_and_disables_the_endpoint(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    hook = add_webhook(client, account, event_receiver)
    _event(account)
    _event(account)
    event_receiver.script.append(410)
    states = run_due()
    assert states[0] == D.FAILED
    assert states[1] is None  # not claimed: the endpoint was disabled meanwhile
    found = _webhook(hook["id"])
    assert found.state == WebhookState.DISABLED
    assert found.disabled_reason == "the endpoint answered 410 Gone"
    assert sorted(d.state for d in deliveries()) == [D.FAILED, D.PENDING]


def test_redeliver_sends_the_same_event_again(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    hook = add_webhook(client, account, event_receiver)
    event_id = _event(account)
    run_due()
    (row,) = deliveries()
    answer = client.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{row.id}/redeliver", headers=account.headers
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "pending"
    assert run_due() == [D.DELIVERED]
    first, second = event_receiver.requests
    assert (
        first["headers"]["herald-event-id"] == second["headers"]["herald-event-id"] == str(event_id)
    )
    assert event_receiver.duplicates == 1 and len(event_receiver.events) == 1
    assert deliveries()[0].attempts == 2


def test_a_private_address_is_refused_at_send_time_with_a_clear_error(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    add_webhook(client, account, event_receiver)
    _event(account)
    settings = get_settings()
    allowed = settings.allowed_private_networks
    settings.allowed_private_networks = []
    reset_shared_client()
    try:
        assert run_due() == [D.PENDING]
    finally:
        settings.allowed_private_networks = allowed
        reset_shared_client()
    (row,) = deliveries()
    assert row.last_error and row.last_error.startswith("refused by Herald's HTTP guard")
    assert "127.0.0.1" in row.last_error
    assert event_receiver.requests == []


def test_the_pass_sends_due_deliveries_and_recovers_abandoned_attempts(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    add_webhook(client, account, event_receiver)
    _event(account)
    with session_scope() as session:
        # The pointer sent after commit still counts: nothing to send yet.
        assert delivery.dispatch_due(session) == {"recovered": 0, "sent": 0}
    clock.advance(seconds=61)
    with session_scope() as session:
        assert delivery.dispatch_due(session) == {"recovered": 0, "sent": 1}
    with session_scope() as session:
        assert delivery.dispatch_due(session)["sent"] == 0  # sent once per pointer lease
    (row,) = deliveries()
    with session_scope() as session:
        claimed = delivery.claim(session, row.id)
    assert claimed is not None
    # Its worker dies; past the lease the pass puts it back and sends it again.
    clock.advance(seconds=61)
    with session_scope() as session:
        assert delivery.dispatch_due(session) == {"recovered": 1, "sent": 1}
    assert run_due() == [D.DELIVERED]
    # The dead worker's late record changes nothing.
    answer = delivery.Answer(500, "HTTP 500", None, 1)
    with session_scope() as session:
        assert delivery.record(session, claimed, answer) is None
    assert deliveries()[0].state == D.DELIVERED


def test_a_second_claim_of_the_same_delivery_gets_nothing(
    client: TestClient, account: Account, event_receiver: EventReceiver, clock: Clock
) -> None:
    add_webhook(client, account, event_receiver)
    _event(account)
    (row,) = deliveries()
    with session_scope() as session:
        assert delivery.claim(session, row.id) is not None
    with session_scope() as session:
        assert delivery.claim(session, row.id) is None
    with session_scope() as session:
        session.execute(update(WebhookDelivery).values(state=D.PENDING))
