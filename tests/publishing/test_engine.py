"""The delivery engine against a real database (SQLite and PostgreSQL), a real Redis
broker and a local webhook receiver; task bodies are called as the worker would."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from datetime import datetime, timedelta
from typing import Any, NoReturn

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from herald.adapters.webhook import WebhookAdapter
from herald.channels.models import Channel
from herald.channels.tasks import verify_channel
from herald.core.clock import set_clock, utcnow
from herald.core.crypto import encrypt_json
from herald.core.db import get_engine, session_scope
from herald.core.settings import get_settings
from herald.publishing import actions
from herald.publishing.actions import compare_and_set
from herald.publishing.lease import keeper
from herald.publishing.models import Publication
from herald.publishing.reconcile import reconcile as reconcile_pass
from herald.publishing.tasks import batch_publish
from herald.publishing.tasks import deliver as task
from herald.scheduling.dispatcher import dispatch_once as dispatch_due
from herald.scheduling.tasks import reconcile
from herald.worker import PRIORITY_NOW, queue_key
from tests.conftest import Account, SessionFactory
from tests.fakes.webhook_receiver import Receiver

NOW_LIST = queue_key("publishing", PRIORITY_NOW)  # where deliveries asked for now wait

# The channel and the post the setup fixture made (as the API returned them).
Setup = tuple[dict[str, Any], dict[str, Any]]


@pytest.fixture
def setup(client: TestClient, account: Account, receiver: Receiver, redis_broker: str) -> Setup:
    channel = client.post(
        "/api/v1/channels",
        json={
            "platform": "webhook",
            "name": "hook",
            "credentials": receiver.credentials(),
            "retry": {"max_retries": 3, "retry_base_seconds": 2, "retry_max_seconds": 600},
        },
        headers=account.headers,
    ).json()
    post = client.post(
        "/api/v1/posts", json={"title": "Hello", "body": "Hi"}, headers=account.headers
    ).json()
    return channel, post


def publish(
    client: TestClient, account: Account, post_id: str, *channel_ids: str
) -> list[dict[str, Any]]:
    response = client.post(
        f"/api/v1/posts/{post_id}/publish",
        json={"channel_ids": list(channel_ids)},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    publications: list[dict[str, Any]] = response.json()["publications"]
    return publications


def deliver(publication_id: str) -> str:
    outcome: str = task(publication_id)
    return outcome


def dispatch_at(moment: datetime) -> int:
    set_clock(lambda: moment)
    try:
        return dispatch_due()
    finally:
        set_clock(None)


def status(client: TestClient, account: Account, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get(
        f"/api/v1/tasks/status/{task_id}", headers=account.headers
    ).json()
    return found


def test_publish_now_goes_out_once(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, redis_broker: str
) -> None:
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert publication["state"] == "queued"
    # One pointer on the publishing queue, sent after the commit.
    queued = redis.Redis.from_url(redis_broker).lrange(NOW_LIST, 0, -1)
    assert len(queued) == 1
    assert publication["task_id"].encode() in queued[0]
    assert status(client, account, publication["task_id"])["status"] == "PENDING"

    assert deliver(publication["id"]) == "published"
    assert len(receiver.posts()) == 1
    sent = receiver.posts()[0]
    assert sent.headers["idempotency-key"] == f"herald-{uuid.UUID(publication['id']).hex}"
    assert sent.body["post"]["title"] == "Hello"

    answer = status(client, account, publication["task_id"])
    assert answer["status"] == "SUCCESS"
    assert answer["ready"] and answer["successful"] and not answer["failed"]
    assert answer["platform_info"]["platform"] == "webhook"
    assert answer["platform_info"]["data"]["url"].startswith("https://example.test/")
    assert (
        client.get(f"/api/v1/posts/{post['id']}", headers=account.headers).json()["state"]
        == "published"
    )

    # A second message for the same delivery (redelivery) does nothing.
    assert deliver(publication["id"]) == "skipped"
    assert len(receiver.posts()) == 1
    # Publishing again to the same channel returns the same delivery.
    (again,) = publish(client, account, post["id"], channel["id"])
    assert again["id"] == publication["id"]


def test_ten_concurrent_executions_send_exactly_once(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    results: list[str] = []
    barrier = threading.Barrier(10)

    def run() -> None:
        barrier.wait()
        results.append(deliver(publication["id"]))

    threads = [threading.Thread(target=run) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["published"] + ["skipped"] * 9
    assert len(receiver.posts()) == 1


def test_503_503_200_publishes_on_attempt_3_with_backoff(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    receiver.script = deque([503, 503])
    (publication,) = publish(client, account, post["id"], channel["id"])
    pid = publication["id"]

    assert deliver(pid) == "retry"
    pubs = client.get(f"/api/v1/posts/{post['id']}/publications", headers=account.headers).json()
    assert pubs[0]["state"] == "retry_wait"
    assert "503" in pubs[0]["last_error"]
    assert status(client, account, publication["task_id"])["status"] == "RETRY"
    # The wait is in due_at (full jitter), not in the broker: dispatch when it is due.
    assert dispatch_at(utcnow() + timedelta(minutes=11)) == 1
    assert deliver(pid) == "retry"
    assert dispatch_at(utcnow() + timedelta(minutes=11)) == 1
    assert deliver(pid) == "published"

    (final,) = client.get(
        f"/api/v1/posts/{post['id']}/publications", headers=account.headers
    ).json()
    assert final["state"] == "published"
    assert final["attempt"] == 3
    outcomes = [a["outcome"] for a in final["attempts"]]
    assert outcomes == ["retry", "retry", "published"]
    first_retry = final["attempts"][0]
    assert first_retry["retry_at"] is not None  # the back-off is recorded
    assert len(receiver.posts()) == 3 and len(receiver.delivered) == 1


def test_retry_after_is_honoured(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    receiver.script = deque([429])
    (publication,) = publish(client, account, post["id"], channel["id"])
    before = utcnow()
    assert deliver(publication["id"]) == "retry"
    (row,) = client.get(f"/api/v1/posts/{post['id']}/publications", headers=account.headers).json()

    assert datetime.fromisoformat(row["due_at"]) >= before + timedelta(seconds=1)


def test_400_fails_at_once_with_the_receivers_message(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    receiver.script = deque([400])
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert deliver(publication["id"]) == "failed"
    answer = status(client, account, publication["task_id"])
    assert answer["status"] == "FAILURE"
    assert "receiver says 400" in answer["error"]
    assert (
        client.get(f"/api/v1/posts/{post['id']}", headers=account.headers).json()["state"]
        == "failed"
    )
    # Out of the retry path: dispatch finds nothing.
    assert dispatch_at(utcnow() + timedelta(days=1)) == 0


def test_401_marks_channel_needs_reconnect_and_holds(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    receiver.script = deque([401])
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert deliver(publication["id"]) == "auth"
    ch = client.get(f"/api/v1/channels/{channel['id']}", headers=account.headers).json()
    assert ch["state"] == "needs_reconnect"
    (held,) = client.get(f"/api/v1/posts/{post['id']}/publications", headers=account.headers).json()
    assert held["state"] == "retry_wait"
    assert "reconnected" in held["last_error"]
    assert dispatch_at(utcnow() + timedelta(hours=1)) == 0  # held while the channel is broken

    fixed = client.patch(
        f"/api/v1/channels/{channel['id']}",
        json={"credentials": receiver.credentials()},
        headers=account.headers,
    )
    assert fixed.json()["state"] == "active"
    # Released by the request that fixed the channel: nothing left for the dispatcher.
    assert dispatch_at(utcnow()) == 0
    assert deliver(publication["id"]) == "published"


def test_ambiguous_timeout_resends_safely_with_the_key(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    client.patch(
        f"/api/v1/channels/{channel['id']}",
        json={"settings": {"read_timeout": 0.3}},
        headers=account.headers,
    )
    receiver.hold_seconds = 1.0
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert deliver(publication["id"]) == "retry"  # webhook honours Idempotency-Key
    receiver.hold_seconds = 0
    assert dispatch_at(utcnow() + timedelta(minutes=11)) == 1
    assert deliver(publication["id"]) == "published"
    assert len(receiver.delivered) == 1  # the receiver deduplicated the resend


def test_cancel(client: TestClient, account: Account, setup: Setup, receiver: Receiver) -> None:
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    cancelled = client.delete(
        f"/api/v1/tasks/cancel/{publication['task_id']}", headers=account.headers
    )
    assert cancelled.json()["outcome"] == "cancelled"
    assert deliver(publication["id"]) == "skipped"
    assert receiver.posts() == []
    assert status(client, account, publication["task_id"])["status"] == "REVOKED"

    other = client.post("/api/v1/posts", json={"title": "Two"}, headers=account.headers).json()
    (sent,) = publish(client, account, other["id"], channel["id"])
    deliver(sent["id"])
    refused = client.delete(f"/api/v1/tasks/cancel/{sent['task_id']}", headers=account.headers)
    assert refused.status_code == 409
    assert status(client, account, sent["task_id"])["status"] == "SUCCESS"


def test_unknown_task_is_404(client: TestClient, account: Account) -> None:
    response = client.get(f"/api/v1/tasks/status/{uuid.uuid4()}", headers=account.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_expired_lease_is_requeued_by_the_reconciler(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, db: Any
) -> None:
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    with db() as s:  # a worker claimed it and died before recording anything
        assert actions.claim(s, uuid.UUID(publication["id"])) is not None
    later = utcnow() + timedelta(minutes=10)
    set_clock(lambda: later)
    try:
        result = reconcile()
    finally:
        set_clock(None)
    assert result["requeued"] == 1
    assert deliver(publication["id"]) == "published"
    assert len(receiver.delivered) == 1


def test_unreadable_channel_configuration_fails_the_delivery_not_loops(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, db: Any
) -> None:
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    with db() as s:  # e.g. encrypted with a key that is no longer configured
        s.execute(
            update(Channel)
            .where(Channel.id == uuid.UUID(channel["id"]))
            .values(credentials_encrypted=b"not a fernet token")
        )
    assert deliver(publication["id"]) == "failed"
    assert not receiver.posts()
    body = status(client, account, publication["task_id"])
    assert body["status"] == "FAILURE"
    assert "stored configuration is unusable" in body["error"]


def test_invalid_stored_credentials_fail_without_repeating_them(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, db: Any
) -> None:
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    with db() as s:  # stored by an older version, say, with a field this one refuses
        s.execute(
            update(Channel)
            .where(Channel.id == uuid.UUID(channel["id"]))
            .values(credentials_encrypted=encrypt_json({"url": 42, "secret": "hunter2-secret"}))
        )
    assert deliver(publication["id"]) == "failed"
    error = status(client, account, publication["task_id"])["error"]
    assert "stored configuration is unusable" in error
    assert "url" in error
    assert "hunter2" not in error


def test_an_adapter_that_fails_to_build_fails_the_delivery_once(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("hunter2-secret in a traceback")

    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    monkeypatch.setattr(WebhookAdapter, "build", classmethod(broken))
    assert deliver(publication["id"]) == "failed"
    assert deliver(publication["id"]) == "skipped"  # settled: a redelivered message does nothing
    assert not receiver.posts()
    error = status(client, account, publication["task_id"])["error"]
    assert "webhook adapter could not be built (RuntimeError)" in error
    assert "hunter2" not in error


def test_broker_down_still_accepts_and_reconciler_sends_later(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    redis_broker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel, post = setup
    real_enqueue = compare_and_set.enqueue

    def broker_down(publication_id: uuid.UUID, task_id: str, priority: int = 0) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(compare_and_set, "enqueue", broker_down)
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert publication["state"] == "queued"
    assert redis.Redis.from_url(redis_broker).llen(NOW_LIST) == 0

    monkeypatch.setattr(compare_and_set, "enqueue", real_enqueue)
    later = utcnow() + timedelta(minutes=5)
    set_clock(lambda: later)
    try:
        assert reconcile()["resent"] == 1
    finally:
        set_clock(None)
    assert redis.Redis.from_url(redis_broker).llen(NOW_LIST) == 1
    assert deliver(publication["id"]) == "published"


def test_retry_failed_and_manual_retry(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    receiver.script = deque([400])
    (publication,) = publish(client, account, post["id"], channel["id"])
    deliver(publication["id"])
    # A permanent failure is not retried in bulk...
    assert (
        client.post("/api/v1/tasks/retry-failed", headers=account.headers).json()["requeued"] == 0
    )
    # ...but a person can send it again.
    retried = client.post(
        f"/api/v1/publications/{publication['id']}/retry", headers=account.headers
    )
    assert retried.status_code == 200
    assert retried.json()["state"] == "queued"
    assert deliver(publication["id"]) == "published"
    again = client.post(f"/api/v1/publications/{publication['id']}/retry", headers=account.headers)
    assert again.status_code == 409


def test_other_workspace_cannot_see_or_cancel(
    client: TestClient, make_account: Any, receiver: Receiver, redis_broker: str
) -> None:
    mine = make_account("me@example.com", workspace="one")
    theirs = make_account("them@example.com", workspace="two")
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=mine.headers,
    ).json()
    post = client.post("/api/v1/posts", json={"title": "x"}, headers=mine.headers).json()
    (publication,) = publish(client, mine, post["id"], channel["id"])
    assert (
        client.get(
            f"/api/v1/tasks/status/{publication['task_id']}", headers=theirs.headers
        ).status_code
        == 404
    )
    assert (
        client.delete(
            f"/api/v1/tasks/cancel/{publication['task_id']}", headers=theirs.headers
        ).status_code
        == 404
    )
    # Their channel ids are not usable from my post and vice versa.
    refused = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [channel["id"]]},
        headers=theirs.headers,
    )
    assert refused.status_code == 404
    assert client.get("/api/v1/tasks/active", headers=theirs.headers).json()["tasks"] == []
    assert len(client.get("/api/v1/tasks/active", headers=mine.headers).json()["tasks"]) == 1


def test_batch_publish_fans_out_with_progress(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, redis_broker: str
) -> None:
    channel, post = setup
    second = client.post("/api/v1/posts", json={"title": "Two"}, headers=account.headers).json()
    missing = client.post(
        "/api/v1/posts/batch-publish",
        json={"post_ids": [post["id"], str(uuid.uuid4())], "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    assert missing.status_code == 404  # checked before anything starts

    accepted = client.post(
        "/api/v1/posts/batch-publish",
        json={"post_ids": [post["id"], second["id"]], "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    assert accepted.status_code == 202
    job_id = accepted.json()["task_id"]
    assert status(client, account, job_id)["status"] == "PENDING"
    batch_publish(job_id)
    answer = status(client, account, job_id)
    assert answer["status"] == "SUCCESS"
    assert answer["progress"] == {"done": 2, "total": 2}
    task_ids = answer["result"]["task_ids"]
    assert len(task_ids) == 2
    for task_id in task_ids:
        publication = status(client, account, task_id)["publication"]
        assert deliver(publication["id"]) == "published"
    assert len(receiver.delivered) == 2
    per_post = client.get(f"/api/v1/tasks/status/post/{post['id']}", headers=account.headers).json()
    assert [t["status"] for t in per_post] == ["SUCCESS"]


def test_publish_answers_from_the_rows_it_wrote(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    """The 202 is built from the inserted rows (no re-read), and says what is stored."""

    channel, post = setup
    other = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook 2", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(get_engine(), "before_cursor_execute", record)
    try:
        answered = publish(client, account, post["id"], channel["id"], other["id"])
    finally:
        event.remove(get_engine(), "before_cursor_execute", record)

    inserts = [s for s in seen if s.startswith("INSERT INTO publications")]
    assert len(inserts) in (1, 2)  # one executemany (or one per row)
    assert not [s for s in seen if "FROM publication_attempts" in s]
    after_insert = seen[seen.index(inserts[-1]) + 1 :]
    assert not [s for s in after_insert if s.startswith("SELECT") and "FROM publications" in s]

    stored = client.get(f"/api/v1/posts/{post['id']}/publications", headers=account.headers)
    by_id = {p["id"]: p for p in stored.json()}
    assert [p["channel_id"] for p in answered] == [channel["id"], other["id"]]
    for publication in answered:
        assert publication == by_id[publication["id"]]
        assert publication["state"] == "queued" and publication["attempts"] == []
    # Asked again: the same deliveries come back, none is added.
    again = publish(client, account, post["id"], other["id"], channel["id"])
    assert [p["id"] for p in again] == [answered[1]["id"], answered[0]["id"]]


# --- issue 16: attempts that never end, exceptions nobody classified, holds released ----


def publications(client: TestClient, account: Account, post_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        f"/api/v1/posts/{post_id}/publications", headers=account.headers
    ).json()
    return found


def reconcile_now(later: timedelta = timedelta(0)) -> dict[str, int]:
    """One reconciler pass (without its period guard), ``later`` from now."""
    moment = utcnow() + later
    set_clock(lambda: moment)
    try:
        with session_scope() as session:
            return reconcile_pass(session)
    finally:
        set_clock(None)


def set_columns(db: SessionFactory, publication_id: str, **values: object) -> None:

    with db() as s:
        s.execute(
            update(Publication).where(Publication.id == uuid.UUID(publication_id)).values(**values)
        )


def sent_to_broker(redis_broker: str, task_id: str) -> bool:
    messages = redis.Redis.from_url(redis_broker).lrange(NOW_LIST, 0, -1)
    return any(task_id.encode() in message for message in messages)


def test_an_unexpected_exception_after_sending_ends_unconfirmed_after_one_attempt(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    redis_broker: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The folder channel at ../../tmp/x: written, then Path.as_uri() raised ValueError,
    in find_existing too; it was requeued every lease, attempt 14 of 4."""

    send = WebhookAdapter.publish

    def publish_then_raise(self: WebhookAdapter, rendition: Any, key: str) -> NoReturn:
        send(self, rendition, key)
        raise ValueError(f"{self.credentials.url}?s={self.credentials.secret} is not a file URI")

    def look_up_raises(self: WebhookAdapter, rendition: Any, key: str) -> NoReturn:
        raise ValueError("relative path can't be expressed as a file URI")

    monkeypatch.setattr(WebhookAdapter, "publish", publish_then_raise)
    monkeypatch.setattr(WebhookAdapter, "find_existing", look_up_raises)
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    with caplog.at_level(logging.ERROR, logger="herald.publishing.delivery"):
        assert deliver(publication["id"]) == "unconfirmed"
    assert deliver(publication["id"]) == "skipped"  # settled: a redelivery does nothing
    assert reconcile_now(timedelta(hours=1)) == {"resent": 0, "requeued": 0, "unconfirmed": 0}
    assert len(receiver.posts()) == 1

    (row,) = publications(client, account, post["id"])
    assert (row["state"], row["attempt"], row["error_kind"]) == ("unconfirmed", 1, "ambiguous")
    assert row["last_error"].startswith("unexpected ValueError in the webhook adapter's publish: ")
    assert row["last_error"].endswith("it may have been posted")
    assert receiver.secret not in row["last_error"] and receiver.url not in row["last_error"]
    assert "[redacted]" in row["last_error"]
    # Logged with its traceback (where the secret may be: the log is the operator's).
    (logged,) = [r for r in caplog.records if "raised ValueError in publish" in r.getMessage()]
    assert logged.exc_info is not None and logged.exc_info[0] is ValueError


def test_an_unexpected_exception_in_render_fails_without_sending(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def render(self: WebhookAdapter, post: object) -> object:
        no_front_matter: dict[str, object] = {}
        return no_front_matter["front_matter"]

    monkeypatch.setattr(WebhookAdapter, "render", render)
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert deliver(publication["id"]) == "failed"
    assert receiver.posts() == []
    (row,) = publications(client, account, post["id"])
    assert (row["state"], row["attempt"]) == ("failed", 1)
    assert (
        row["last_error"] == "unexpected KeyError in the webhook adapter's render: 'front_matter'"
    )


def test_a_look_up_that_raises_before_a_resend_ends_unconfirmed_without_sending(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel, post = setup
    receiver.script = deque([503])
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert deliver(publication["id"]) == "retry"
    assert dispatch_at(utcnow() + timedelta(minutes=11)) == 1

    def look_up(self: WebhookAdapter, rendition: Any, key: str) -> NoReturn:
        raise RuntimeError("the lookup is broken")

    monkeypatch.setattr(WebhookAdapter, "find_existing", look_up)
    assert deliver(publication["id"]) == "unconfirmed"  # never sent blind
    assert len(receiver.posts()) == 1
    (row,) = publications(client, account, post["id"])
    assert "RuntimeError in the webhook adapter's find_existing" in row["last_error"]


def test_the_reconciler_settles_an_expired_attempt_with_none_left(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    redis_broker: str,
    db: Any,
) -> None:
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    redis.Redis.from_url(redis_broker).delete(NOW_LIST)
    set_columns(db, publication["id"], attempt=3)  # three attempts made, one left
    with session_scope() as s:  # the fourth and last is claimed; its worker dies
        assert actions.claim(s, uuid.UUID(publication["id"])) is not None

    assert reconcile_now(timedelta(minutes=10)) == {"resent": 0, "requeued": 0, "unconfirmed": 1}
    assert not sent_to_broker(redis_broker, publication["task_id"])
    assert deliver(publication["id"]) == "skipped"
    assert receiver.posts() == []
    (row,) = publications(client, account, post["id"])
    assert (row["state"], row["attempt"], row["max_attempts"]) == ("unconfirmed", 4, 4)
    assert "no attempt is left (4 of 4 made)" in row["last_error"]


def test_a_queued_delivery_with_no_attempt_left_is_settled_not_sent(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    redis_broker: str,
    db: Any,
) -> None:
    """What the loop left behind (attempt 7 of 4, queued): no claim takes it, and the
    reconciler settles it instead of sending it again every grace period."""
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    set_columns(db, publication["id"], attempt=7)
    assert deliver(publication["id"]) == "skipped"
    assert receiver.posts() == []
    redis.Redis.from_url(redis_broker).delete(NOW_LIST)

    assert reconcile_now(timedelta(minutes=10)) == {"resent": 0, "requeued": 0, "unconfirmed": 1}
    assert not sent_to_broker(redis_broker, publication["task_id"])
    (row,) = publications(client, account, post["id"])
    assert (row["state"], row["attempt"]) == ("unconfirmed", 7)


def test_a_running_attempt_keeps_its_lease_however_slow_the_platform(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, db: Any
) -> None:
    """A receiver slower than the lease: the attempt renews its lease, so the reconciler,
    run again and again meanwhile, never takes it for dead."""

    channel, post = setup
    settings = get_settings()
    lease, settings.publish_lease_seconds = settings.publish_lease_seconds, 1
    receiver.hold_seconds = 3.5
    (publication,) = publish(client, account, post["id"], channel["id"])
    outcome: list[str] = []
    attempt = threading.Thread(target=lambda: outcome.append(deliver(publication["id"])))
    passes = 0
    try:
        attempt.start()
        while attempt.is_alive():
            assert reconcile_now() == {"resent": 0, "requeued": 0, "unconfirmed": 0}
            passes += 1
            with db() as s:
                lease_until = s.scalar(
                    select(Publication.lease_until).where(
                        Publication.id == uuid.UUID(publication["id"])
                    )
                )
            assert lease_until is None or lease_until > utcnow()
            attempt.join(timeout=0.1)
    finally:
        attempt.join(timeout=30)
        settings.publish_lease_seconds = lease
    assert outcome == ["published"]
    assert passes > 10  # the reconciler looked all along, past three leases
    assert len(receiver.posts()) == 1
    (row,) = publications(client, account, post["id"])
    assert (row["state"], row["attempt"]) == ("published", 1)
    assert keeper.running() == {}  # nothing kept once the attempt is recorded


def late_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next claim's commit come back a lease late, as to a worker whose host lost
    the database for a while (tests/deploy/test_many_machines.py cuts a link)."""
    claim = actions.claim

    def slow_claim(tx: Any, publication_id: uuid.UUID) -> Any:
        row = claim(tx, publication_id)
        late = utcnow() + timedelta(seconds=get_settings().publish_lease_seconds + 1)
        set_clock(lambda: late)
        monkeypatch.setattr(actions, "claim", claim)
        return row

    monkeypatch.setattr(actions, "claim", slow_claim)


def test_a_claim_confirmed_after_its_lease_sends_nothing_and_goes_again(
    client: TestClient,
    account: Account,
    setup: Setup,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the late worker sent it. By then the reconciler may have given the delivery
    to another worker, which sends it too: a same-key repeat for a webhook, a second post
    where the adapter can only look the post up first (both looked before either posted)."""
    channel, post = setup
    (publication,) = publish(client, account, post["id"], channel["id"])
    late_claim(monkeypatch)
    try:
        assert deliver(publication["id"]) == "retry"
    finally:
        set_clock(None)
    assert receiver.posts() == []
    (row,) = publications(client, account, post["id"])
    assert (row["state"], row["attempt"]) == ("retry_wait", 1)
    assert "lease had run out" in row["last_error"]
    # Due again at once (the late clock's now), and sent once.
    lease = get_settings().publish_lease_seconds
    assert dispatch_at(utcnow() + timedelta(seconds=lease + 2)) == 1
    assert deliver(publication["id"]) == "published"
    assert len(receiver.posts()) == 1


def test_fixing_a_channel_releases_its_held_deliveries_in_the_same_request(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, redis_broker: str
) -> None:
    """Both kinds of waiting delivery go out right after the fix: the one held by the 401,
    and one whose message a worker took while the channel was broken (it stayed queued,
    and waited for the reconciler: ~90-120 s)."""
    channel, post = setup
    receiver.script = deque([401])
    (held,) = publish(client, account, post["id"], channel["id"])
    assert deliver(held["id"]) == "auth"
    other = client.post("/api/v1/posts", json={"title": "Two"}, headers=account.headers).json()
    (waiting,) = publish(client, account, other["id"], channel["id"])
    assert deliver(waiting["id"]) == "skipped"  # not claimed: the channel needs reconnecting
    redis.Redis.from_url(redis_broker).delete(NOW_LIST)

    fixed = client.patch(
        f"/api/v1/channels/{channel['id']}",
        json={"credentials": receiver.credentials()},
        headers=account.headers,
    )
    assert fixed.status_code == 200 and fixed.json()["state"] == "active"
    # Queued by the request, and on the broker once it committed: no timer involved.
    for publication, post_id in ((held, post["id"]), (waiting, other["id"])):
        (row,) = publications(client, account, post_id)
        assert row["state"] == "queued"
        assert sent_to_broker(redis_broker, publication["task_id"])
    assert deliver(held["id"]) == "published"
    assert deliver(waiting["id"]) == "published"
    assert len(receiver.delivered) == 2


def test_a_channel_test_that_passes_again_releases_what_waited(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, redis_broker: str
) -> None:
    """The platform took the credentials back (a 401 held the delivery), then accepts them
    again: the channel test that finds them working sends what waited, at once."""

    channel, post = setup
    receiver.script = deque([401])
    (held,) = publish(client, account, post["id"], channel["id"])
    assert deliver(held["id"]) == "auth"
    redis.Redis.from_url(redis_broker).delete(NOW_LIST)

    started = client.post(f"/api/v1/channels/{channel['id']}/test", headers=account.headers)
    verify_channel(started.json()["job_id"])

    (row,) = publications(client, account, post["id"])
    assert row["state"] == "queued"
    assert sent_to_broker(redis_broker, held["task_id"])
    assert deliver(held["id"]) == "published"


def test_resuming_a_paused_channel_sends_what_waited(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, redis_broker: str
) -> None:
    channel, post = setup
    paused = client.patch(
        f"/api/v1/channels/{channel['id']}", json={"state": "paused"}, headers=account.headers
    )
    assert paused.json()["state"] == "paused"
    (publication,) = publish(client, account, post["id"], channel["id"])
    assert deliver(publication["id"]) == "skipped"
    redis.Redis.from_url(redis_broker).delete(NOW_LIST)
    client.patch(
        f"/api/v1/channels/{channel['id']}", json={"name": "renamed"}, headers=account.headers
    )
    assert not sent_to_broker(redis_broker, publication["task_id"])  # still paused: held

    client.patch(
        f"/api/v1/channels/{channel['id']}", json={"state": "active"}, headers=account.headers
    )
    assert sent_to_broker(redis_broker, publication["task_id"])
    assert deliver(publication["id"]) == "published"


def test_a_hold_on_the_last_attempt_still_goes_out_after_the_fix(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver, db: Any
) -> None:
    channel, post = setup
    receiver.script = deque([401])
    (publication,) = publish(client, account, post["id"], channel["id"])
    set_columns(db, publication["id"], max_attempts=1)
    assert deliver(publication["id"]) == "auth"
    client.patch(
        f"/api/v1/channels/{channel['id']}",
        json={"credentials": receiver.credentials()},
        headers=account.headers,
    )
    assert deliver(publication["id"]) == "published"
    (row,) = publications(client, account, post["id"])
    assert (row["attempt"], row["max_attempts"]) == (2, 2)
