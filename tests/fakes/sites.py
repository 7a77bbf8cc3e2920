"""What the community-site fakes (Reddit, Hacker News, Discourse) share on top of
:class:`FakePlatform`: answers held until a test lets them go (a slow site, without
waiting on time), the requests counted per path, and the matching of a query against an
item's words.

- ``hold()`` / ``let_through(n)``: answers wait until the test lets ``n`` of them go,
  so a test sees a job between two pages without waiting on time;
- ``fail_next(status, headers=...)`` (from the base): a 429 with ``Retry-After``, a 5xx;
  ``hang_next()`` / ``drop_next()`` as every fake.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.base import FakeFault, FakePlatform

# Where generated items start: a fixed time, so every run makes the same data.
EPOCH = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def words_match(query: str, *texts: str | None) -> bool:
    """Every word of the query in the item's text (case-insensitive), as a site's simple
    search does; search operators (``order:latest``, ``#category``) are not words."""
    haystack = " ".join(t for t in texts if t).lower()
    words = [w for w in query.lower().split() if ":" not in w and not w.startswith("#")]
    return all(w in haystack for w in words)


def times(
    n: int, *, start: datetime = EPOCH, step: timedelta = timedelta(minutes=7)
) -> list[datetime]:
    """``n`` times, newest first, ``step`` apart, ending at ``start``."""
    return [start - step * i for i in range(n)]


class SiteFake(FakePlatform):
    """Base of the site fakes; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._held = False
        self._passes = threading.Semaphore(0)
        self.waiting = 0  # answers being held right now

    # -- control surface -------------------------------------------------------------------

    def hold(self) -> None:
        """Hold every answer from now on until :meth:`let_through` lets it go."""
        self._held = True

    def let_through(self, n: int = 1) -> None:
        for _ in range(n):
            self._passes.release()

    def open(self) -> None:
        """Stop holding; whatever waits goes."""
        self._held = False
        self.let_through(1000)

    def count(self, path_prefix: str = "/") -> int:
        """Requests received whose path starts with ``path_prefix``."""
        with self._lock:
            return sum(1 for seen in self.requests if seen.path.startswith(path_prefix))

    def paths(self) -> Counter[str]:
        with self._lock:
            return Counter(seen.path for seen in self.requests)

    def stop(self) -> None:
        self.open()
        super().stop()

    # -- helpers for endpoints -------------------------------------------------------------

    async def answer(
        self, fault: FakeFault | None, body: object, headers: dict[str, str] | None = None
    ) -> Response:
        """A JSON answer, after the fake's hold (if any)."""
        if self._held:
            with self._lock:
                self.waiting += 1
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, self._passes.acquire, True, 30
                )
            finally:
                with self._lock:
                    self.waiting -= 1
        return await self.finish(fault, JSONResponse(body, headers=headers))

    @staticmethod
    def int_param(request: Request, name: str, default: int) -> int:
        value = request.query_params.get(name, "")
        return int(value) if value.lstrip("-").isdigit() else default
