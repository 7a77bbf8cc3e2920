"""The outbox: an event is written in the transaction of its change, only for the active
endpoints that subscribe to it, and nothing at all when none does."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from herald.core.db import session_scope
from herald.core.tx import core_scope
from herald.webhooks import outbox
from herald.webhooks.models import Webhook, WebhookDelivery, WebhookEvent, WebhookState
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver
from tests.webhooks import add_webhook, deliveries


def _count(model: type[WebhookEvent] | type[WebhookDelivery]) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


class Boom(Exception):
    pass


def test_a_rolled_back_change_writes_no_event(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    add_webhook(client, account, event_receiver)

    def change_then_fail() -> None:
        with session_scope() as session:
            assert outbox.record(session, account.workspace_id, "webhook.test", {"x": 1})
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()
    assert _count(WebhookEvent) == 0
    assert _count(WebhookDelivery) == 0
    with session_scope() as session:
        event_id = outbox.record(session, account.workspace_id, "webhook.test", {"x": 1})
    assert event_id is not None
    assert _count(WebhookEvent) == 1


def test_nothing_is_written_when_no_endpoint_listens(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    add_webhook(client, account, event_receiver, ["job.finished"])
    with core_scope() as tx:  # the delivery hot path's kind of transaction
        assert outbox.record(tx, account.workspace_id, "delivery.published", {"a": 1}) is None
        # Another workspace's endpoint never hears of this one's events.
        assert outbox.record(tx, uuid.uuid4(), "job.finished", {"a": 1}) is None
    assert _count(WebhookEvent) == 0


def test_fan_out_only_to_subscribed_active_endpoints(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    published = add_webhook(client, account, event_receiver, ["delivery.published"])
    everything = add_webhook(client, account, event_receiver, ["*"])
    add_webhook(client, account, event_receiver, ["job.finished"])
    off = add_webhook(client, account, event_receiver, ["*"])
    with session_scope() as session:
        session.execute(
            update(Webhook)
            .where(Webhook.id == uuid.UUID(off["id"]))
            .values(state=WebhookState.DISABLED)
        )
    with core_scope() as tx:
        event_id = outbox.record(
            tx, account.workspace_id, "delivery.published", lambda: {"url": "https://x.test/1"}
        )
    assert event_id is not None
    made = deliveries()
    assert {str(d.webhook_id) for d in made} == {published["id"], everything["id"]}
    assert {d.event_id for d in made} == {event_id}
    with session_scope() as session:
        event = session.get_one(WebhookEvent, event_id)
        assert (event.type, event.data) == ("delivery.published", {"url": "https://x.test/1"})


def test_an_unknown_event_type_is_a_bug(account: Account) -> None:
    with pytest.raises(AssertionError), session_scope() as session:
        outbox.record(session, account.workspace_id, "post.exploded", {})
