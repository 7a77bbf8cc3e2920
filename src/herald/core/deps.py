"""FastAPI dependencies shared by every feature: the session, the bearer scheme, the
client's address. The caller (``PrincipalDep``) is :mod:`herald.users.deps`: core imports
no feature.

A request's session is also its seat at the database. The process has a pool of
connections (``HERALD_DATABASE_POOL_SIZE``) and runs sync code on anyio's threads; a
request holds its connection from its first query to its commit, across several thread
hops, and waits for a thread at each. With more requests in hand than connections, those
holding a connection could wait for a thread while every thread waits for a connection,
until the pool gives up (30 s) on all of them. So at most ``pool size`` requests hold a
session at once; the rest wait on the event loop, in arrival order, holding nothing, and
one that waits longer than ``HERALD_DATABASE_POOL_TIMEOUT_SECONDS`` answers 503 with
``Retry-After``. The pool's overflow (twice as many again) serves what runs beside: a read's
best-effort write (the token's ``last_used_at``), health and metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from herald.core.db import read_scope, session_scope
from herald.core.errors import ServiceUnavailable
from herald.core.settings import get_settings

# Requests that only read run in a read transaction: on SQLite they never take or wait
# for the one writer lock, so a slow writer cannot stall them.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Overloaded(ServiceUnavailable):
    """A request waited longer than the pool's timeout for a database connection."""

    slug = "overloaded"


_seats: dict[int, asyncio.Semaphore] = {}  # per event loop (a TestClient runs its own)


def _seat() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    seat = _seats.get(id(loop))
    if seat is None:
        _seats.clear()  # an old loop's semaphore is of no use once it is gone
        seat = _seats[id(loop)] = asyncio.Semaphore(get_settings().database_pool_size)
    return seat


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session: a read transaction for GET/HEAD/OPTIONS, else a write one,
    committed (or rolled back) in a worker thread before the response is sent.

    Making the session object touches no database, so it is made on the event loop; the
    first query (in the route's thread) checks out the connection."""
    seat = _seat()
    try:
        async with asyncio.timeout(get_settings().database_pool_timeout_seconds):
            await seat.acquire()
    except TimeoutError:
        raise Overloaded(
            "Herald has more requests in hand than database connections. Try again in a moment."
        ) from None
    try:
        scope: AbstractContextManager[Session] = (
            read_scope() if request.method in READ_METHODS else session_scope()
        )
        session = scope.__enter__()
        try:
            yield session
        except BaseException as exc:
            # Rolls back and closes; re-raises exc (or what the rollback raised).
            await run_in_threadpool(scope.__exit__, type(exc), exc, exc.__traceback__)
            raise
        await run_in_threadpool(scope.__exit__, None, None, None)
    finally:
        seat.release()


# scope="function": commit (or roll back) before the response is sent, so a client that
# got 201 can read its row back at once, and a failed commit is a 500, not a lie.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

bearer_scheme = HTTPBearer(auto_error=False, description="A login token or a personal API token.")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
