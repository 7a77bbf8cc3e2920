"""Keep Python's cyclic garbage collector off the objects a process loads to start.

Why it stays: without it a forked worker child's first full collection takes 110-136 ms
of CPU and copies 52 MB of its parent's memory; with it, 0.1 ms and 0.1 MB
(``python -m bench.machinery_cost``, 3 runs, last lines). Per delivery it changes nothing
measurable between full collections. ``tests/core/test_heap.py`` pins the CPython
behaviour it relies on (a full collection skips frozen objects).

A worker or API process ends its start-up holding about 160,000 objects the collector
tracks (modules, SQLAlchemy's mappers and compiled statements, pydantic models, Celery's
app) that live as long as the process. Every full collection walks all of them: about
90 ms on a small VM, once every several hundred deliveries in a worker process, which
stalls the delivery it lands in and costs a few percent of the worker's CPU on average.
In a prefork child it also writes to every inherited object's header, so the memory the
child shares with its parent is copied page by page.

:func:`freeze` moves the objects alive now into the collector's permanent generation,
which it never walks (see :func:`gc.freeze`). They are never freed, which start-up
objects never would be anyway; everything made afterwards is collected as usual.
"""

from __future__ import annotations

import gc

# The API's youngest-generation threshold (CPython's default: 700 new container objects).
# See serve_requests.
API_YOUNG_THRESHOLD = 50_000


def freeze(*, collect: bool = True) -> int:
    """Freeze what this process holds now, after collecting start-up's garbage first
    (unless ``collect`` is False: a forked child, whose collection would touch, and so
    copy, the memory it shares with its parent). Returns how many objects are frozen."""
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def serve_requests() -> None:
    """Collect less often in a process that serves requests (``herald api``).

    At CPython's default (700), objects of the requests in flight outlive young
    collections, get promoted, and are walked again by the middle and full ones. In a
    ``bench.api_latency --rates 100`` run (SQLite, 1,200 publishes, 1,000 lists, 1,000
    gets) the API process made about 1,100 young, 100 middle and 9 full collections: about
    270 ms of CPU in all (~2 % of the process's), the full ones up to 8.9 ms of CPU each
    with the GIL held (55 ms wall on a busy machine), stalling every request in hand. At
    :data:`API_YOUNG_THRESHOLD` the same run made fewer than 10 young collections and no
    middle or full one while serving. Call after :func:`freeze`."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(API_YOUNG_THRESHOLD, middle, old)
