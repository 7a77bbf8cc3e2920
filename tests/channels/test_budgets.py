"""Rate budgets in the broker's Redis: the take (refill, cost, turns), sharing between
workers and between channels on one account, correction from headers, fail-open."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from herald.adapters.base import Rendition
from herald.adapters.bluesky import BlueskyAdapter
from herald.adapters.discord import DiscordAdapter
from herald.adapters.http import RateObservation
from herald.adapters.mastodon import MastodonAdapter
from herald.adapters.telegram import TelegramAdapter
from herald.adapters.x import XAdapter
from herald.channels import budgets
from herald.core.clock import set_clock
from herald.core.settings import get_settings

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(redis_broker: str) -> Iterator[Clock]:
    found = Clock()
    set_clock(lambda: found.now)
    yield found
    set_clock(None)


def x_adapter() -> XAdapter:
    return XAdapter.build({"access_token": "a" * 20, "refresh_token": "r" * 20, "client_id": "c"})


def mastodon(token: str = "token-0123456789") -> MastodonAdapter:  # noqa: S107
    return MastodonAdapter.build({"instance_url": "https://social.example", "access_token": token})


def one(parts: int = 1) -> Rendition:
    return Rendition(format="text", parts=("hello",) * parts)


def key() -> str:
    return uuid.uuid4().hex


def test_a_full_bucket_pays_and_an_empty_one_gives_turns(clock: Clock) -> None:
    adapter, channel = x_adapter(), uuid.uuid4()  # X: 100 posts per 15 min per user
    # Herald fills up to 90 of the 100: headroom for requests that arrive late.
    assert budgets.take(adapter, channel, one(90), key()) is None
    first = budgets.take(adapter, channel, one(), key())
    second = budgets.take(adapter, channel, one(), key())
    assert first is not None and second is not None
    # 100 per 900 s refills one every 9 s; each waiting delivery holds its own turn.
    assert first.until == START + timedelta(seconds=9)
    assert second.until == START + timedelta(seconds=18)
    assert first.reason == (
        "waiting: rate limit, next at 2026-12-01T12:00:09Z (posts: 100 per 15 min per channel)"
    )


def test_a_delivery_back_at_its_turn_goes_without_paying_again(clock: Clock) -> None:
    adapter, channel = x_adapter(), uuid.uuid4()
    assert budgets.take(adapter, channel, one(90), key()) is None
    waiting = key()
    turn = budgets.take(adapter, channel, one(), waiting)
    assert turn is not None
    clock.advance(4)
    early = budgets.take(adapter, channel, one(), waiting)
    assert early is not None and early.until == turn.until  # too early: same turn
    clock.advance(5)
    assert budgets.take(adapter, channel, one(), waiting) is None
    # Its token was the one refilled by then: the next newcomer waits for the next one.
    later = budgets.take(adapter, channel, one(), key())
    assert later is not None and later.until == START + timedelta(seconds=18)


def test_a_cost_larger_than_the_bucket_goes_when_full_and_leaves_debt(clock: Clock) -> None:
    adapter, channel = x_adapter(), uuid.uuid4()
    assert budgets.take(adapter, channel, one(150), key()) is None  # a 150-part thread
    wait = budgets.take(adapter, channel, one(), key())
    # 90 - 150 = -60 tokens: 61 refills to pay for the next one.
    assert wait is not None and wait.until == START + timedelta(seconds=61 * 9)


def test_two_workers_share_one_budget(clock: Clock) -> None:
    adapter, channel = x_adapter(), uuid.uuid4()
    assert budgets.take(adapter, channel, one(80), key()) is None  # 10 of 90 left
    sent: list[bool] = []
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        # Each worker its own adapter (as two hosts would have), one Redis bucket.
        mine = x_adapter()
        for _ in range(20):
            sent.append(budgets.take(mine, channel, one(), key()) is None)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sent.count(True) == 10
    assert len(sent) == 40


def test_channels_on_one_token_share_its_budget_others_do_not(clock: Clock) -> None:
    shared = mastodon()
    assert budgets.take(shared, uuid.uuid4(), one(300), key()) is None  # 300 statuses
    # Another channel with the same token: the account's statuses are spent.
    wait = budgets.take(mastodon(), uuid.uuid4(), one(), key())
    assert wait is not None and wait.bucket.name == "statuses"
    assert budgets.take(mastodon("another-token-987654"), uuid.uuid4(), one(), key()) is None


def test_headers_lower_the_budget_and_a_reset_blocks_it(clock: Clock) -> None:
    adapter, channel = x_adapter(), uuid.uuid4()
    budgets.observe(adapter, channel, "/2/tweets", RateObservation(remaining=2))
    (state,) = budgets.read(adapter, channel) or []
    assert state.remaining == 2
    # More left than we think never raises the budget (other workers may be mid-burst).
    budgets.observe(adapter, channel, "/2/tweets", RateObservation(remaining=50))
    (state,) = budgets.read(adapter, channel) or []
    assert state.remaining == 2
    # A path whose answers describe another limit corrects nothing.
    budgets.observe(adapter, channel, "/2/users/me", RateObservation(remaining=0, reset_in=60))
    (state,) = budgets.read(adapter, channel) or []
    assert state.remaining == 2 and state.blocked_until is None

    budgets.observe(adapter, channel, "/2/tweets", RateObservation(remaining=0, reset_in=600))
    (state,) = budgets.read(adapter, channel) or []
    assert state.remaining == 0
    assert state.blocked_until == START + timedelta(seconds=600)
    wait = budgets.take(adapter, channel, one(), key())
    assert wait is not None and wait.until == START + timedelta(seconds=600)


def test_a_429_blocks_the_bucket_until_retry_after(clock: Clock) -> None:
    adapter, channel = x_adapter(), uuid.uuid4()
    budgets.observe(adapter, channel, "/2/tweets", RateObservation(retry_after=120))
    wait = budgets.take(adapter, channel, one(), key())
    assert wait is not None and wait.until == START + timedelta(seconds=120)
    clock.advance(120)
    assert budgets.take(adapter, channel, one(), key()) is None


def test_a_blocked_bucket_the_delivery_does_not_pay_for_does_not_hold_it(clock: Clock) -> None:
    # Bluesky's logins (30 per 5 min) cost a delivery nothing: it logs in only when its
    # session is gone. A burst of first deliveries spent them; the rest have a session.
    adapter = BlueskyAdapter.build(
        {"identifier": "alice.example", "app_password": "abcd-efgh-ijkl-mnop"}
    )
    channel = uuid.uuid4()
    login = "/xrpc/com.atproto.server.createSession"
    budgets.observe(adapter, channel, login, RateObservation(remaining=0, reset_in=300))
    states = {state.name: state for state in budgets.read(adapter, channel) or []}
    assert states["login"].blocked_until == START + timedelta(seconds=300)
    assert budgets.take(adapter, channel, one(), key()) is None
    budgets.observe(adapter, channel, login, RateObservation(retry_after=300))
    assert budgets.take(adapter, channel, one(), key()) is None


def telegram() -> TelegramAdapter:
    return TelegramAdapter.build({"bot_token": "123456:" + "a" * 35, "chat_id": "@herald"})


def test_turns_handed_over_together_go_one_per_refill(clock: Clock) -> None:
    # Telegram: 1 message a second per chat, kept a tenth slower (1.1 s); 20 a minute per
    # group. Three turns come due; the scheduler hands all three over late, at once.
    adapter, channel = telegram(), uuid.uuid4()
    assert budgets.take(adapter, channel, one(), key()) is None
    waiting = [key() for _ in range(3)]
    turns = [budgets.take(adapter, channel, one(), d) for d in waiting]
    assert [t.until - START for t in turns if t] == [timedelta(seconds=1.1 * i) for i in (1, 2, 3)]
    clock.advance(10)
    went = [budgets.take(adapter, channel, one(), d) for d in waiting]
    # One goes; the others get the next send slots, 1.1 s apart, not all the same one.
    assert went[0] is None
    assert [w.until - START for w in went[1:] if w] == [timedelta(seconds=s) for s in (11.1, 12.2)]
    clock.advance(5)
    # Both slots passed; the scheduler hands both over at once: a slot is checked, not
    # trusted, so the second does not follow the first within the same second.
    assert budgets.take(adapter, channel, one(), waiting[1]) is None
    again = budgets.take(adapter, channel, one(), waiting[2])
    assert again is not None and again.until == START + timedelta(seconds=16.1)
    clock.advance(1.1)
    assert budgets.take(adapter, channel, one(), waiting[2]) is None


WEBHOOK = "/api/v10/webhooks/123/token-abc"


def discord() -> DiscordAdapter:
    return DiscordAdapter.build({"webhook_url": "https://discord.com/api/webhooks/123/token-abc"})


def test_routes_the_platform_names_alike_share_one_budget(clock: Clock) -> None:
    adapter, channel = discord(), uuid.uuid4()
    assert adapter.budget_route() == f"POST {WEBHOOK}"
    # An answer on another route names its bucket, spent until a reset 2 s away.
    spent = RateObservation(remaining=0, reset_in=2, bucket="b1", limit=5)
    budgets.observe(adapter, channel, f"GET {WEBHOOK}", spent)
    # The delivery's route is named by nothing yet: the declared bucket (5 per 2 s).
    assert budgets.take(adapter, channel, one(), key()) is None
    # Its answer names the same bucket: from now on the two routes share one budget.
    budgets.observe(adapter, channel, f"POST {WEBHOOK}", RateObservation(1, 1, None, "b1", 5))
    wait = budgets.take(adapter, channel, one(), key())
    assert wait is not None and wait.bucket.name == "route"
    assert wait.until == START + timedelta(seconds=2)


def test_a_route_named_mid_burst_keeps_what_it_spent_before(clock: Clock) -> None:
    adapter, channel = discord(), uuid.uuid4()
    route = f"POST {WEBHOOK}"
    # A burst before any answer: the declared bucket (5 per 2 s, Herald fills 4) lets 4
    # go; the fifth is told its turn, a token's refill (2 s / 5) later.
    burst = [key() for _ in range(5)]
    went = [budgets.take(adapter, channel, one(), delivery) is None for delivery in burst]
    assert went == [True, True, True, True, False]
    # The first answer (to the first of the four: the platform had 4 left then) names
    # the route's bucket. The four are at the platform already: the named bucket starts
    # from what the route spent, not full, or a second burst of four follows the first.
    budgets.observe(adapter, channel, route, RateObservation(4, 0.4, None, "b1", 5))
    later = key()
    wait = budgets.take(adapter, channel, one(), later)
    assert wait is not None and wait.bucket.name == "route"
    assert wait.until == START + timedelta(seconds=0.8)
    # The fifth goes at its turn, the next at its own.
    clock.advance(0.4)
    assert budgets.take(adapter, channel, one(), burst[4]) is None
    assert budgets.take(adapter, channel, one(), later) is not None
    clock.advance(0.4)
    assert budgets.take(adapter, channel, one(), later) is None


def test_a_named_bucket_takes_the_limit_the_platform_gives(clock: Clock) -> None:
    adapter, channel = discord(), uuid.uuid4()
    # The platform says 3 per window, not the 5 declared: Herald fills 2 (one below).
    budgets.observe(adapter, channel, f"POST {WEBHOOK}", RateObservation(3, 0, None, "b1", 3))
    went = [budgets.take(adapter, channel, one(), key()) is None for _ in range(4)]
    assert went == [True, True, False, False]
    (route, _) = budgets.read(adapter, channel) or []
    assert route.remaining == 0


def test_the_scale_setting_divides_every_period(clock: Clock) -> None:
    settings = get_settings()
    settings.rate_limit_scale = 100.0
    try:
        adapter, channel = x_adapter(), uuid.uuid4()
        assert budgets.take(adapter, channel, one(90), key()) is None
        wait = budgets.take(adapter, channel, one(), key())
        assert wait is not None and wait.until == START + timedelta(seconds=0.09)
    finally:
        settings.rate_limit_scale = 1.0


def test_redis_down_fails_open_and_says_so(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    settings = get_settings()
    before = settings.broker_url
    settings.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        adapter, channel = x_adapter(), uuid.uuid4()
        with caplog.at_level(logging.WARNING, logger="herald.channels.budgets"):
            # Far past the limit (100 per 15 min): none waits.
            assert budgets.take(adapter, channel, one(100), key()) is None
            assert budgets.take(adapter, channel, one(100), key()) is None
            assert budgets.read(adapter, channel) is None
        assert "rate budget unavailable (take)" in caplog.text
        assert "sending anyway" in caplog.text
    finally:
        settings.broker_url = before


def test_turns_missed_during_a_stall_do_not_go_out_in_one_burst(clock: Clock) -> None:
    adapter, channel = x_adapter(), uuid.uuid4()
    assert budgets.take(adapter, channel, one(90), key()) is None
    waiting = [key() for _ in range(100)]
    for delivery in waiting:
        assert budgets.take(adapter, channel, one(), delivery) is not None
    clock.advance(100 * 9)  # every turn came due while nothing was sent (a stall)
    went = [budgets.take(adapter, channel, one(), delivery) is None for delivery in waiting]
    # The platform's bucket holds at most 100: no more than Herald's 90 go at once; the
    # rest get turns of their own, once each.
    assert went.count(True) == 90
    rest = [d for d, ok in zip(waiting, went, strict=True) if not ok]
    assert all(budgets.take(adapter, channel, one(), d) is not None for d in rest)
    clock.advance(10 * 9)
    assert all(budgets.take(adapter, channel, one(), d) is None for d in rest)
