"""What every platform fake shares: a Starlette app on a real loopback port, a log of the
requests it got, scripted faults, and the spec violations it saw.

A platform fake subclasses :class:`FakePlatform`, lists its ``routes()`` and answers errors
in the platform's own shape (``error()``). An endpoint decorated with :func:`endpoint`
first runs the fake's auth check (``refused()``), then takes the next fault and, if it has
a status, answers with it (nothing stored); otherwise the handler gets the fault, stores
the post and returns ``await self.finish(fault, response)``, which hangs or drops the
connection when the fault says so. (An endpoint whose platform checks more between auth
and fault keeps that order by hand.) Every endpoint an adapter calls while publishing
(uploads and lookups too) takes a fault, so the contract suite can fail the n-th request
of a thread. ``check(errors)`` records
request-shape problems found by validating against the platform's published schema
(``tests/fakes/specs.py``) and answers them as the platform would (400).

Rate limits: a fake lists the platform's documented limits (``rate_limits()``, each a
:class:`FakeLimit`: a token bucket, full at start, over the requests it matches, kept per
key: a token, a chat). Past one it answers 429 the way the platform does (``error(429,
...)`` with ``limit_headers()``), before the endpoint runs, and counts it in
``rate_limited``; a request within the limits gets the platform's rate headers too.
``rate_scale`` divides every period (benchmarks), ``clock`` is the fake's time (tests
drive it), ``enforce_limits = False`` turns them off.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from tests.fakes.specs import openapi

_send: contextvars.ContextVar[Any] = contextvars.ContextVar("fake_send")


@dataclass(frozen=True)
class FakeFault:
    status: int | None = None
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False
    drop: bool = False


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class FakeLimit:
    """One documented limit: ``capacity`` per ``period`` seconds (a token bucket), over the
    requests whose method is in ``methods`` and path contains one of ``paths``; kept per
    ``key(seen)`` (one bucket when None); a request costs ``cost(seen)`` (1 when None)."""

    name: str
    capacity: int
    period: float
    paths: tuple[str, ...]
    methods: tuple[str, ...] = ("POST",)
    key: Callable[[Seen], str] | None = None
    cost: Callable[[Seen], int] | None = None


@dataclass
class LimitState:
    """A bucket's state after a request: what the platform's headers report."""

    limit: FakeLimit
    remaining: float
    reset_in: float  # seconds until full again
    retry_after: float  # seconds until this request would have gone (0: it went)
    now: float


class FakePlatform:
    """Base class; see the module docstring."""

    name = "platform"
    enforce_limits = True
    rate_scale = 1.0

    def __init__(self) -> None:
        self.rate_limited = 0  # 429s answered for a documented limit
        self.rate_limited_by: dict[str, int] = {}  # ... by the limit's name
        # Every request a limit matched, as the fake judged it: (its clock, the name of
        # the limit it was over, or None when it went). Benchmarks read the pattern.
        self.judged: list[tuple[float, str | None]] = []
        self.clock: Callable[[], float] = time.time
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self.requests: list[Seen] = []
        self.violations: list[str] = []
        self._faults: deque[FakeFault] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port = 0

    # -- to fill in ----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        """An error answer in the platform's shape (default: ``{"error": message}``)."""
        return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))

    def rate_limits(self) -> list[FakeLimit]:
        """The platform's documented rate limits this fake enforces (none by default)."""
        return []

    def limit_headers(self, state: LimitState) -> dict[str, str]:
        """The platform's rate headers for a request's tightest bucket (none by default)."""
        return {}

    async def refused(self, request: Request) -> Response | None:
        """The fake's auth check for :func:`endpoint` (async, as it may read the body): its
        answer, or None to go on."""
        return None

    # -- control surface -----------------------------------------------------------------

    def fail_next(
        self, status: int, message: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        self._faults.append(FakeFault(status=status, message=message, headers=dict(headers or {})))

    def hang_next(self) -> None:
        self._faults.append(FakeFault(hang=True))

    def drop_next(self) -> None:
        self._faults.append(FakeFault(drop=True))

    def inject(self, fault: Any) -> None:
        """Take the contract suite's ``Fault`` (same fields)."""
        if fault.hang:
            self.hang_next()
        elif fault.drop:
            self.drop_next()
        elif fault.status is None:
            self._faults.append(FakeFault())  # let one request through untouched
        else:
            self.fail_next(fault.status, fault.message, fault.headers)

    @property
    def base_url(self) -> str:
        assert self.port, "start() the fake first"
        return f"http://127.0.0.1:{self.port}"

    # -- helpers for endpoints -----------------------------------------------------------

    def take_fault(self) -> FakeFault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def fault_response(self, fault: FakeFault | None) -> Response | None:
        """The error answer for a status fault, else None (go on and store)."""
        if fault is not None and fault.status is not None:
            return self.error(fault.status, fault.message, fault.headers)
        return None

    async def finish(self, fault: FakeFault | None, response: Response) -> Response:
        """Answer ``response``, unless the fault says hang (never answer) or drop (close)."""
        if fault is not None and fault.hang:
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait, 30)
        elif fault is not None and fault.drop:
            send = _send.get()
            # uvicorn's send is a bound method of the request cycle, which owns the socket.
            send.__self__.transport.close()
            await asyncio.sleep(0.05)  # uvicorn sees the disconnect and drops our answer
        return response

    def check(self, errors: Iterable[str], where: str) -> Response | None:
        """Record schema violations; answer 400 in the platform's shape if there are any."""
        found = [f"{where}: {error}" for error in errors]
        if not found:
            return None
        with self._lock:
            self.violations.extend(found)
        return self.error(400, "; ".join(found))

    def openapi_check(
        self,
        spec_file: str,
        method: str,
        path: str,
        body: Any,
        content_type: str = "application/json",
    ) -> Response | None:
        """Check a request body (a form's fields, for a form) against the platform's
        published OpenAPI operation, when the specs are at hand: a violation is recorded
        and answered 400 (see ``check``)."""
        spec = openapi(spec_file)
        if spec is None:
            return None
        return self.check(spec.errors(method, path, body, content_type), f"{method} {path}")

    def _take(self, seen: Seen) -> LimitState | None:
        """Charge the request to every limit it matches: the tightest bucket's state
        (``retry_after`` > 0: over a limit, nothing charged), or None if none matches."""
        if not self.enforce_limits:
            return None
        matched = [
            limit
            for limit in self.rate_limits()
            if seen.method in limit.methods and any(p in seen.path for p in limit.paths)
        ]
        if not matched:
            return None
        now = self.clock()
        with self._lock:
            states: list[tuple[FakeLimit, str, float, float]] = []
            for limit in matched:
                key = limit.key(seen) if limit.key else ""
                period = limit.period / self.rate_scale
                tokens, at = self._buckets.get((limit.name, key), (float(limit.capacity), now))
                tokens = min(limit.capacity, tokens + max(0.0, now - at) * limit.capacity / period)
                cost = float(limit.cost(seen) if limit.cost else 1)
                states.append((limit, key, tokens, cost))
            over = [
                (limit, (cost - tokens) * limit.period / self.rate_scale / limit.capacity)
                for limit, _, tokens, cost in states
                if tokens < cost
            ]
            if over:
                limit, wait = max(over, key=lambda item: item[1])
                for limit_, key, tokens, _ in states:
                    self._buckets[(limit_.name, key)] = (tokens, now)
                self.rate_limited += 1
                self.rate_limited_by[limit.name] = self.rate_limited_by.get(limit.name, 0) + 1
                self.judged.append((now, limit.name))
                tokens = next(t for lim, _, t, _ in states if lim is limit)
                return LimitState(limit, tokens, self._full_in(limit, tokens), wait, now)
            self.judged.append((now, None))
            tightest: LimitState | None = None
            for limit, key, tokens, cost in states:
                left = tokens - cost
                self._buckets[(limit.name, key)] = (left, now)
                state = LimitState(limit, left, self._full_in(limit, left), 0.0, now)
                if tightest is None or left / limit.capacity < tightest.remaining / (
                    tightest.limit.capacity
                ):
                    tightest = state
            return tightest

    def _full_in(self, limit: FakeLimit, tokens: float) -> float:
        return (limit.capacity - tokens) * limit.period / self.rate_scale / limit.capacity

    def too_many(self, state: LimitState) -> Response:
        """The platform's 429 for a request over ``state.limit``: its error shape, its
        rate headers and a Retry-After (whole seconds, rounded up, as HTTP says)."""
        headers = self.limit_headers(state)
        headers.setdefault("Retry-After", str(max(1, math.ceil(state.retry_after))))
        return self.error(429, "Too Many Requests", headers)

    # -- lifecycle -----------------------------------------------------------------------

    def app(self) -> Any:
        inner = Starlette(routes=self.routes())
        fake = self

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            token = _send.set(send)
            try:
                body = b""
                more = True
                messages: list[Any] = []
                while more:
                    message = await receive()
                    messages.append(message)
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                seen = Seen(
                    method=scope["method"],
                    path=scope["path"],
                    query=scope.get("query_string", b"").decode(),
                    headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
                    body=body,
                )
                with fake._lock:
                    fake.requests.append(seen)
                replay = iter(messages)

                async def again() -> Any:
                    try:
                        return next(replay)
                    except StopIteration:
                        return await receive()

                limited = fake._take(seen)
                if limited is not None and limited.retry_after > 0:
                    await fake.too_many(limited)(scope, again, send)
                    return
                extra = fake.limit_headers(limited) if limited is not None else {}
                if extra:
                    await inner(scope, again, _with_headers(send, extra))
                else:
                    await inner(scope, again, send)
            finally:
                _send.reset(token)

        return app

    def start(self) -> Self:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(),
            log_level="critical",
            ws="none",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        for _ in range(200):
            if self._server.started or not self._thread.is_alive():
                break
            self._thread.join(0.02)
        assert self._server.started, f"{self.name} fake did not start"
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _with_headers(send: Any, headers: Mapping[str, str]) -> Any:
    """ASGI ``send`` that sets ``headers`` on the response's start."""
    extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    names = {name for name, _ in extra}

    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start" and message["status"] < 400:
            # The limit's state wins over what the endpoint said of it (not over a
            # scripted fault's own headers).
            kept = [item for item in message.get("headers", []) if item[0].lower() not in names]
            message = {**message, "headers": [*kept, *extra]}
        await send(message)

    return wrapped


_Fake = TypeVar("_Fake", bound=FakePlatform)
Handler = Callable[[_Fake, Request, FakeFault | None], Awaitable[Response]]
Endpoint = Callable[[_Fake, Request], Awaitable[Response]]


def endpoint(*, auth: bool = True) -> Callable[[Handler[_Fake]], Endpoint[_Fake]]:
    """Run an endpoint's prelude: the fake's ``refused()`` auth check (unless ``auth`` is
    False), then ``take_fault()``, answering a status fault at once; the handler gets the
    fault and answers through ``finish(fault, ...)``."""

    def wrap(handler: Handler[_Fake]) -> Endpoint[_Fake]:
        @functools.wraps(handler)
        async def run(self: _Fake, request: Request) -> Response:
            if auth and (refused := await self.refused(request)) is not None:
                return refused
            fault = self.take_fault()
            if (answer := self.fault_response(fault)) is not None:
                return answer
            return await handler(self, request, fault)

        return run

    return wrap


async def json_body(request: Request) -> Any:
    """The request's JSON body, or None if it is not JSON."""
    try:
        return json.loads(await request.body())
    except ValueError:
        return None
