from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from herald import worker
from herald.app import serve
from herald.cli import app as cli
from herald.core import heap


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_freeze_keeps_what_is_alive_and_later_garbage_is_still_collected() -> None:
    before = cycle()  # garbage already: the collection before the freeze frees it
    frozen = heap.freeze()
    assert before() is None
    assert frozen == gc.get_freeze_count() > 0
    after = cycle()
    assert after() is not None
    gc.collect()
    assert after() is None  # made after the freeze: collected as usual


def test_freeze_without_collecting_freezes_garbage_too() -> None:
    garbage = cycle()
    heap.freeze(collect=False)
    gc.collect()
    assert garbage() is not None  # frozen garbage stays: the price a forked child pays
    gc.unfreeze()
    gc.collect()
    assert garbage() is None


def test_herald_api_freezes_the_app_it_built_before_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[tuple[object, int]] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda application, **_: served.append((application, gc.get_freeze_count()))
    )
    assert gc.get_freeze_count() == 0
    result = CliRunner().invoke(cli, ["api", "--port", "8765"])
    assert result.exit_code == 0, result.output
    [(application, frozen)] = served
    assert isinstance(application, FastAPI)
    assert frozen > 10_000


def test_herald_api_collects_young_objects_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    default = gc.get_threshold()
    served: list[tuple[int, int, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda _application, **_: served.append(gc.get_threshold()))
    try:
        result = CliRunner().invoke(cli, ["api", "--port", "8765"])
        assert result.exit_code == 0, result.output
        assert served == [(heap.API_YOUNG_THRESHOLD, default[1], default[2])]
        gc.set_threshold(*default)
        serve()  # what each of HERALD_API_WORKERS' processes runs
    finally:
        applied = gc.get_threshold()
        gc.set_threshold(*default)
    assert applied == served[0]


def test_the_worker_freezes_before_forking_and_in_the_child() -> None:
    worker._freeze_before_fork()  # the parent, on worker_before_create_process
    parent = gc.get_freeze_count()
    assert parent > 10_000
    garbage = cycle()
    worker._freeze_in_child()  # a new child, on worker_process_init: no collection
    assert gc.get_freeze_count() > parent
    assert garbage() is not None


def test_a_full_collection_no_longer_walks_what_was_frozen() -> None:
    """What heap relies on in CPython: frozen objects leave the generations a collection
    walks (gc.freeze's permanent generation). If that changes, freezing buys nothing."""
    kept = [Node() for _ in range(10_000)]
    gc.collect()  # everything alive is now in the oldest generation, which a full one walks
    assert len(gc.get_objects(generation=2)) >= len(kept)
    heap.freeze()
    assert len(gc.get_objects(generation=2)) < len(kept) / 10
    assert gc.get_freeze_count() >= len(kept)
