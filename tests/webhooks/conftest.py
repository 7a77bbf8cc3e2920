from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.event_receiver import EventReceiver


@pytest.fixture(autouse=True)
def _broker(redis_broker: str) -> str:
    """Pointers go to the suite's Redis after commit (no worker reads them here)."""
    return redis_broker


@pytest.fixture
def event_receiver() -> Iterator[EventReceiver]:
    with EventReceiver() as receiver:
        yield receiver
