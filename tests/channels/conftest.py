"""What the channel tests share: a watch on every request Herald sends to a platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from herald.core.db import transaction_open


@dataclass
class PlatformCalls:
    """Every HTTP request Herald sent, and whether its thread had a transaction open."""

    seen: list[tuple[str, bool]] = field(default_factory=list)
    # Run (once) on the sending thread while the first request is in flight.
    during_first: Callable[[], None] | None = None

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]

    def inside_transaction(self) -> list[str]:
        return [path for path, open_ in self.seen if open_]


@pytest.fixture
def platform_calls(monkeypatch: pytest.MonkeyPatch) -> PlatformCalls:
    calls = PlatformCalls()
    send = httpx.HTTPTransport.handle_request

    def watched(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        calls.seen.append((request.url.path, transaction_open()))
        hook, calls.during_first = calls.during_first, None
        if hook is not None:
            hook()
        return send(transport, request)

    # The test client talks to the app through its own transport: only Herald's own
    # outgoing requests (to the fakes) go through this one.
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", watched)
    return calls
