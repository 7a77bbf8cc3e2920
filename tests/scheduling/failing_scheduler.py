"""Imported before a test's worker starts: the worker's scheduler becomes one that raises
on its third tick, as a bug would, so that its thread ends while the worker runs
(tests/scheduling/test_embedded)."""

from __future__ import annotations

from typing import Any

from herald.scheduling.beat import HeraldScheduler
from herald.worker import app


class FailingScheduler(HeraldScheduler):
    ticks = 0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self.ticks += 1
        if self.ticks >= 3:
            raise RuntimeError("the scheduler failed (a test's stand-in)")
        return super().tick(*args, **kwargs)


# The embedded scheduler runs the app's configured scheduler class.
app.conf.beat_scheduler = f"{__name__}:FailingScheduler"
