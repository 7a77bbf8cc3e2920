"""What site tests share: waiting recorded instead of spent, and the fixed sites pointed
at local fakes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from herald.sources.sites import SiteEndpoints, set_endpoints, set_pacing
from herald.sources.sites.base import PACER
from herald.sources.sites.reddit import forget_tokens
from tests.fakes.hackernews import FakeHackerNews
from tests.fakes.reddit import FakeReddit


class Waits:
    """A clock that moves only when the code under test waits: every wait is recorded."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


@contextmanager
def recorded_waits() -> Iterator[Waits]:
    waits = Waits()
    PACER.reset()
    set_pacing(waits.monotonic, waits.sleep)
    try:
        yield waits
    finally:
        set_pacing(None, None)
        PACER.reset()


@contextmanager
def fixed_sites(reddit: FakeReddit | None, hackernews: FakeHackerNews | None) -> Iterator[None]:
    """Reddit and Hacker News at the fakes' addresses (item pages on Hacker News' fake)."""
    default = SiteEndpoints()
    set_endpoints(
        SiteEndpoints(
            reddit=reddit.base_url if reddit else default.reddit,
            reddit_oauth=reddit.base_url if reddit else default.reddit_oauth,
            hackernews=hackernews.base_url if hackernews else default.hackernews,
            hackernews_items=hackernews.base_url if hackernews else default.hackernews_items,
        )
    )
    forget_tokens()
    try:
        yield
    finally:
        set_endpoints(None)
        forget_tokens()
