"""What every site request shares: one pace per site for all of Herald (kept in Redis,
or per process without it), the site's own waits honoured in both of Retry-After's
forms, and the back-off between tries."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from herald.sources import sites
from herald.sources.sites import base
from herald.sources.sites.base import Pacer
from tests.fakes.hackernews import FakeHackerNews
from tests.sources.sites.helpers import Waits


def test_two_processes_take_turns_from_one_line_in_redis(redis_broker: str, waits: Waits) -> None:
    # Two pacers stand for two worker processes: they share nothing but Redis.
    one, other = Pacer(redis_broker), Pacer(redis_broker)
    assert one.wait("hackernews:hn.algolia.com", 0.4) == 0
    assert other.wait("hackernews:hn.algolia.com", 0.4) == pytest.approx(0.4)
    assert one.wait("discourse:forum.example.org", 0.5) == 0  # another host: its own line
    other.hold("hackernews:hn.algolia.com", 30)  # the site asked for 30 s
    assert one.wait("hackernews:hn.algolia.com", 0.4) == pytest.approx(30)
    assert waits.slept == [pytest.approx(0.4), pytest.approx(30)]
    one.reset()
    assert other.wait("hackernews:hn.algolia.com", 0.4) == 0


def test_without_redis_a_process_paces_alone(
    waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = Pacer("redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert nowhere.wait("reddit:www.reddit.com", 6.5) == 0
    assert nowhere.wait("reddit:www.reddit.com", 6.5) == pytest.approx(6.5)
    assert waits.slept == [pytest.approx(6.5)]
    assert "pacing sites in this process alone" in caplog.text


def test_retry_after_as_an_http_date_is_honoured(hackernews: FakeHackerNews, waits: Waits) -> None:
    hackernews.add_stories(1)
    later = datetime.now(UTC) + timedelta(seconds=40)
    hackernews.fail_next(
        503, headers={"Retry-After": email.utils.format_datetime(later, usegmt=True)}
    )
    read = sites.latest("hackernews", url=None, query="rust", settings={})
    assert len(read.entries) == 1
    assert 35 <= sum(waits.slept) <= 45 + base.BASE_BACKOFF


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [base.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert base.backoff(20) == base.MAX_BACKOFF
