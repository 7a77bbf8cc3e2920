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
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import socket
import threading
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


class FakePlatform:
    """Base class; see the module docstring."""

    name = "platform"

    def __init__(self) -> None:
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
                with fake._lock:
                    fake.requests.append(
                        Seen(
                            method=scope["method"],
                            path=scope["path"],
                            query=scope.get("query_string", b"").decode(),
                            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
                            body=body,
                        )
                    )
                replay = iter(messages)

                async def again() -> Any:
                    try:
                        return next(replay)
                    except StopIteration:
                        return await receive()

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
