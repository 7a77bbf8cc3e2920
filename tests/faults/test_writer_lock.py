"""Issue 16, item 1: a write transaction held open (by another process: a stopped worker,
a long task) must not stall the API. While it holds SQLite's writer lock, reads answer
at once (WAL readers take no lock) and a write gives up after
``HERALD_DATABASE_WRITE_WAIT_SECONDS`` with 503 problem+json and ``Retry-After``.

The bounds are generous on purpose (a read under 1 s, a write within the wait plus 1 s):
the lock is held for 10 s, so a request that waited for it could not meet them."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient

from herald.core.db import reset_engine
from herald.core.settings import get_settings
from tests.conftest import Account
from tests.workers import _env

R = TypeVar("R")
HOLD_SECONDS = 10.0
WRITE_WAIT = 0.5
READ_BOUND = 1.0

# Herald's own write transaction, in a process of its own, held until the test says so
# (a line on stdin) or HOLD_SECONDS have passed, whichever is first.
HOLDER = """
import select, sys, time
from sqlalchemy import text
from herald.core.db import session_scope

hold = float(sys.argv[1])
with session_scope() as session:
    session.execute(text("UPDATE posts SET title = title"))
    taken = time.monotonic()
    print("holding", flush=True)
    select.select([sys.stdin], [], [], hold)
print(f"released {time.monotonic() - taken:.2f}", flush=True)
"""


class Holder:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def holding(self) -> bool:
        """Still inside its transaction (it prints when it lets go, then exits)."""
        assert self.proc.stdout is not None
        return self.proc.poll() is None and not select.select([self.proc.stdout], [], [], 0)[0]


@contextmanager
def writer_lock_held(seconds: float) -> Iterator[Holder]:
    """Another process holds a write transaction (and so SQLite's writer lock) for up to
    ``seconds``; released when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(seconds)],
        env=_env(None),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline().strip() == "holding", "the holder did not start"
        yield Holder(proc)
    finally:
        proc.stdin.write("release\n")
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


def timed(call: Callable[[], R]) -> tuple[R, float]:
    start = time.perf_counter()
    response = call()
    return response, time.perf_counter() - start


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_reads_answer_and_a_write_gives_up_while_another_process_holds_the_writer_lock(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "database_write_wait_seconds", WRITE_WAIT)
    reset_engine()  # the wait may be applied when connections are made
    headers = account.headers
    post = client.post("/api/v1/posts", json={"title": "before"}, headers=headers)
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]
    reads = [
        "/api/v1/posts",
        f"/api/v1/posts/{post_id}",
        f"/api/v1/posts/{post_id}/publications",
        "/api/v1/channels",
        "/api/v1/jobs",
        "/api/v1/schedule/upcoming",
        "/api/v1/auth/me",
    ]

    with writer_lock_held(HOLD_SECONDS) as holder:
        answered = {path: timed(partial(client.get, path, headers=headers)) for path in reads}
        write, write_seconds = timed(
            partial(client.post, "/api/v1/posts", json={"title": "during"}, headers=headers)
        )
        held_throughout = holder.holding()

    timings = {path: f"{seconds:.2f} s" for path, (_, seconds) in answered.items()}
    timings["POST /api/v1/posts"] = f"{write.status_code} in {write_seconds:.2f} s"
    print(f"with the writer lock held: {timings}")
    assert held_throughout, f"the requests waited for the lock to be released: {timings}"
    for path, (response, seconds) in answered.items():
        assert response.status_code == 200, (path, response.status_code, response.text)
        assert seconds < READ_BOUND, f"GET {path} took {seconds:.2f} s: {timings}"

    assert write.status_code == 503, (write.status_code, write.text, f"{write_seconds:.2f} s")
    assert write.headers["content-type"].startswith("application/problem+json")
    assert int(write.headers["retry-after"]) >= 1
    problem = write.json()
    assert problem["status"] == 503 and problem["detail"], problem
    assert write_seconds < WRITE_WAIT + 1.0, f"the write gave up after {write_seconds:.2f} s"

    # Once the lock is free the same write goes through: the 503 was the lock, and the
    # refused request left nothing behind.
    again = client.post("/api/v1/posts", json={"title": "during"}, headers=headers)
    assert again.status_code == 201, again.text
    titles = [p["title"] for p in client.get("/api/v1/posts", headers=headers).json()["items"]]
    assert sorted(titles) == ["before", "during"]
