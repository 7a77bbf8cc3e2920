"""What the source tests share: a local feed server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.feed_server import FeedServer


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server
