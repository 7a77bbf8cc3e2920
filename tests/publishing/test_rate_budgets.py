"""A delivery paced by its channel's rate budget, in the engine (SQLite and PostgreSQL,
Redis, the X fake): it waits in due_at with the reason, uses up no attempt, and goes out
when the dispatcher finds it due; the platform's headers correct the budget; two
workers share it; no Redis, no pacing."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from herald.adapters.base import Rendition
from herald.adapters.discord import DiscordAdapter
from herald.adapters.x import XAdapter
from herald.channels import budgets
from herald.core import http
from herald.core.clock import set_clock
from herald.core.db import session_scope, transaction_open
from herald.core.http import reset_shared_client
from herald.core.settings import get_settings
from herald.publishing.models import Publication, PublicationAttempt
from herald.scheduling.dispatcher import dispatch_once
from herald.worker import queue_keys
from tests.conftest import Account
from tests.fakes.discord import FakeDiscord
from tests.fakes.x import FakeX
from tests.publishing.test_engine import deliver, publish
from tests.publishing.test_platforms import add_channel, new_post

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    now = START

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Iterator[Clock]:
    found = Clock()
    set_clock(lambda: found.now)
    yield found
    set_clock(None)


@pytest.fixture
def x(clock: Clock) -> Iterator[FakeX]:
    with FakeX() as fake:
        fake.clock = lambda: clock.now.timestamp()  # noqa: PLW0108 - read at each call
        yield fake
        assert fake.violations == []


def spend(channel_id: str, credentials: dict[str, Any], leave: int) -> None:
    """Spend the channel's X budget (100 posts per 15 min, of which Herald uses 90) down
    to ``leave``."""
    adapter = XAdapter.build(credentials)
    rendition = Rendition(format="text", parts=("spent",) * (90 - leave))
    assert budgets.take(adapter, uuid.UUID(channel_id), rendition, uuid.uuid4().hex) is None


def row(publication_id: str) -> tuple[Publication, int]:
    with session_scope() as session:
        found = session.get_one(Publication, uuid.UUID(publication_id))
        attempts = session.scalar(
            select(func.count())
            .select_from(PublicationAttempt)
            .where(PublicationAttempt.publication_id == found.id)
        )
        session.expunge(found)
        return found, int(attempts or 0)


def test_a_spent_budget_waits_in_due_at_and_goes_out_after_the_refill(
    client: TestClient, account: Account, x: FakeX, clock: Clock, redis_broker: str
) -> None:
    channel = add_channel(client, account, "x", x.credentials())
    spend(channel, x.credentials(), leave=0)
    (publication,) = publish(client, account, new_post(client, account, "Hello"), channel)

    assert deliver(publication["id"]) == "rate_limited"
    assert x.posts == {}  # nothing was sent
    waiting, attempts = row(publication["id"])
    assert waiting.state == "retry_wait"
    assert waiting.due_at is not None
    assert waiting.due_at.replace(tzinfo=UTC) == START + timedelta(seconds=9)  # 900 s / 100
    assert waiting.last_error == (
        "waiting: rate limit, next at 2026-12-01T12:00:09Z (posts: 100 per 15 min per channel)"
    )
    assert (waiting.attempt, attempts) == (0, 0)  # no attempt used up
    shown = client.get(
        f"/api/v1/posts/{publication['post_id']}/publications", headers=account.headers
    ).json()
    assert shown[0]["last_error"].startswith("waiting: rate limit, next at ")
    budget = client.get(f"/api/v1/channels/{channel}", headers=account.headers).json()["budget"]
    assert budget == [
        {
            "name": "posts",
            "scope": "channel",
            "capacity": 100,
            "period_seconds": 900.0,
            "remaining": 0.0,
            # Full (90) again after 91 refills of 9 s: one turn is reserved.
            "resets_at": "2026-12-01T12:13:39Z",
            "blocked_until": None,
            "source": budget[0]["source"],
        }
    ]
    assert "docs.x.com" in budget[0]["source"]

    clock.advance(5)
    assert dispatch_once() == 0  # not due yet
    clock.advance(4)
    assert dispatch_once() == 1
    assert deliver(publication["id"]) == "published"
    assert len(x.posts) == 1
    done, attempts = row(publication["id"])
    assert (done.state, done.attempt, attempts, done.last_error) == ("published", 1, 1, None)


def test_a_worker_builds_its_http_client_before_its_first_take(
    client: TestClient,
    account: Account,
    x: FakeX,
    clock: Clock,
    redis_broker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker process's first request builds its HTTP client (~20 ms, far more under
    # load, with every first delivery of its pool waiting on it). Built after the take,
    # the first deliveries' takes are spread over that time and their requests go out
    # together, past the platform's burst; so it is built before.
    channel = add_channel(client, account, "x", x.credentials())
    (publication,) = publish(client, account, new_post(client, account, "Hello"), channel)
    reset_shared_client()
    built_at_take: list[bool] = []
    take = budgets.take

    def looking(*args: Any) -> Any:
        built_at_take.append(http._shared is not None)
        return take(*args)

    monkeypatch.setattr(budgets, "take", looking)
    assert deliver(publication["id"]) == "published"
    assert built_at_take == [True]


def test_the_channel_read_shows_its_budget_read_with_no_transaction_open(
    client: TestClient,
    account: Account,
    x: FakeX,
    redis_broker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Redis is a network call: the GET ends its read transaction before asking it.
    channel = add_channel(client, account, "x", x.credentials())
    seen: list[bool] = []
    read = budgets.read

    def recording(adapter: Any, channel_id: uuid.UUID) -> Any:
        seen.append(transaction_open())
        return read(adapter, channel_id)

    monkeypatch.setattr(budgets, "read", recording)
    shown = client.get(f"/api/v1/channels/{channel}", headers=account.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["budget"][0]["capacity"] == 100
    assert seen == [False]


def test_a_delivery_back_at_its_turn_goes_ahead_of_deliveries_asked_for_now(
    client: TestClient, account: Account, x: FakeX, clock: Clock, redis_broker: str
) -> None:
    # A turn is a slot of the platform's limit: queued behind a burst of deliveries still
    # to be triaged, it is lost, and the turns behind it bunch up (bench.rate_limits).
    channel = add_channel(client, account, "x", x.credentials())
    spend(channel, x.credentials(), leave=0)
    (waiting,) = publish(client, account, new_post(client, account, "paced"), channel)
    assert deliver(waiting["id"]) == "rate_limited"
    clock.advance(9)
    hook = add_channel(
        client, account, "webhook", {"url": "https://hooks.example/h", "secret": "s" * 16}
    )
    publish(client, account, new_post(client, account, "now"), hook)  # queued, not run
    assert dispatch_once() == 1
    lengths = [redis.Redis.from_url(redis_broker).llen(k) for k in queue_keys("publishing")]
    # First the turn; then the two asked for now (the paced one's first message, which
    # this test ran inline, and the webhook's); no backlog.
    assert lengths == [1, 2, 0]


def test_discords_answers_name_the_routes_bucket_and_its_limit(
    client: TestClient, account: Account, clock: Clock, redis_broker: str
) -> None:
    with FakeDiscord() as fake:
        fake.clock = lambda: clock.now.timestamp()  # noqa: PLW0108 - read at each call
        fake.route_capacity = 3  # what this route's answers say, not the declared 5
        channel = add_channel(client, account, "discord", {"webhook_url": fake.webhook_url})
        posts = [new_post(client, account, f"Message {i}") for i in range(4)]
        outcomes = [deliver(publish(client, account, p, channel)[0]["id"]) for p in posts]
        assert outcomes == ["published"] * 3 + ["rate_limited"]
        assert fake.rate_limited == 0 and len(fake.messages) == 3
        adapter = DiscordAdapter.build({"webhook_url": fake.webhook_url})
        broker = redis.Redis.from_url(redis_broker)
        (routes,) = broker.keys("herald:budget:discord:route:*:routes")
        assert broker.hgetall(routes) == {
            adapter.budget_route().encode(): fake.route_bucket.encode()
        }
        (route, _) = budgets.read(adapter, uuid.UUID(channel)) or []
        assert route.blocked_until is not None  # its remaining 0 until the reset
        assert fake.violations == []


def test_two_workers_share_the_channels_budget(
    client: TestClient, account: Account, x: FakeX, clock: Clock, redis_broker: str
) -> None:
    channel = add_channel(client, account, "x", x.credentials())
    spend(channel, x.credentials(), leave=2)
    ids = [
        publish(client, account, new_post(client, account, f"Post {n}"), channel)[0]["id"]
        for n in range(4)
    ]
    outcomes: dict[str, str] = {}
    start = threading.Barrier(2)

    def worker(mine: list[str]) -> None:
        start.wait()
        for publication_id in mine:
            outcomes[publication_id] = deliver(publication_id)

    threads = [threading.Thread(target=worker, args=(ids[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["published", "published", "rate_limited", "rate_limited"]
    assert len(x.posts) == 2
    turns = sorted(due for p in ids if outcomes[p] == "rate_limited" and (due := row(p)[0].due_at))
    # Each waits for its own token: 9 s apart, not both at the first refill.
    assert turns[1] - turns[0] == timedelta(seconds=9)


def test_the_platforms_429_blocks_the_budget_for_the_next_delivery(
    client: TestClient, account: Account, x: FakeX, clock: Clock, redis_broker: str
) -> None:
    channel = add_channel(client, account, "x", x.credentials())
    reset = int(START.timestamp()) + 600
    x.fail_next(
        429, "Too Many Requests", {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    )
    first = publish(client, account, new_post(client, account, "One"), channel)[0]
    assert deliver(first["id"]) == "retry"  # the platform's own 429, as before
    budget = client.get(f"/api/v1/channels/{channel}", headers=account.headers).json()["budget"]
    assert budget[0]["remaining"] == 0
    assert budget[0]["blocked_until"] == "2026-12-01T12:10:00Z"
    second = publish(client, account, new_post(client, account, "Two"), channel)[0]
    requests = len(x.requests)
    assert deliver(second["id"]) == "rate_limited"
    assert len(x.requests) == requests  # not sent: the platform said to stop until then
    # last_error is Optional in the model; a waiting delivery always has its reason.
    assert row(second["id"])[0].last_error.startswith(  # type: ignore[union-attr]
        "waiting: rate limit, next at 2026-12-01T12:10:00Z"
    )


def test_without_redis_deliveries_go_out_unpaced(
    client: TestClient,
    account: Account,
    x: FakeX,
    clock: Clock,
    redis_broker: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = add_channel(client, account, "x", x.credentials())
    spend(channel, x.credentials(), leave=0)  # spent, but Redis is about to go away
    (publication,) = publish(client, account, new_post(client, account, "Hi"), channel)
    settings = get_settings()
    before = settings.broker_url
    settings.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        with caplog.at_level(logging.WARNING, logger="herald.channels.budgets"):
            assert deliver(publication["id"]) == "published"
    finally:
        settings.broker_url = before
    assert len(x.posts) == 1
    assert "rate budget unavailable" in caplog.text
