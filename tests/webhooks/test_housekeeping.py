"""Retention of the delivery log, and the webhook metrics."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from herald.core.db import session_scope
from herald.metrics.collector import RedisView, collect_from
from herald.scheduling.service import clean_old_records
from herald.webhooks import outbox
from herald.webhooks.models import WebhookDelivery, WebhookEvent
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver
from tests.webhooks import add_webhook, movable_clock, run_due


def _record(account: Account) -> None:
    with session_scope() as session:
        outbox.record(session, account.workspace_id, "job.finished", {})


def _counts() -> tuple[int, int]:
    with session_scope() as session:
        events = session.scalar(select(func.count()).select_from(WebhookEvent))
        deliveries = session.scalar(select(func.count()).select_from(WebhookDelivery))
        return int(events or 0), int(deliveries or 0)


def test_finished_deliveries_and_their_events_go_after_30_days(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    add_webhook(client, account, event_receiver)
    with movable_clock() as clock:
        _record(account)  # delivered
        _record(account)  # still pending: kept, and so is its event
        event_receiver.script.extend([200, 503])
        run_due()
        clock.advance(days=30, seconds=1)
        _record(account)  # recent: kept
        with session_scope() as session:
            result = clean_old_records(session)
    assert (result["webhook_deliveries_deleted"], result["webhook_events_deleted"]) == (1, 1)
    assert _counts() == (2, 2)


def test_metrics_show_deliveries_by_state_and_the_oldest_pending(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    add_webhook(client, account, event_receiver)
    with movable_clock() as clock:
        _record(account)
        _record(account)
        _record(account)
        event_receiver.script.extend([200, 503, 503])
        run_due()
        clock.advance(minutes=2)
        with session_scope() as session:
            metrics = {m.name: m for m in collect_from(session, RedisView())}
    by_state = {s.labels["state"]: s.value for s in metrics["herald_webhook_deliveries"].samples}
    assert by_state == {"pending": 2, "sending": 0, "delivered": 1, "failed": 0}
    (oldest,) = metrics["herald_webhook_oldest_pending_seconds"].samples
    assert oldest.value == timedelta(minutes=2).total_seconds()
