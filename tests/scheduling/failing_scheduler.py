"""Imported before a test's worker starts: Herald's scheduler raises on its third tick, as
a bug would, so that its thread ends while the worker runs (tests/scheduling/test_embedded)."""

from __future__ import annotations

from typing import Any

from herald.scheduling.beat import HeraldScheduler

_ticks = 0
_tick = HeraldScheduler.tick


def _failing_tick(self: HeraldScheduler, *args: Any, **kwargs: Any) -> float:
    global _ticks  # noqa: PLW0603 - a test's stand-in, one per process
    _ticks += 1
    if _ticks >= 3:
        raise RuntimeError("the scheduler failed (a test's stand-in)")
    result: float = _tick(self, *args, **kwargs)
    return result


HeraldScheduler.tick = _failing_tick  # type: ignore[method-assign]
