"""The threaded HTTP server under the fakes that answer plain HTTP (feeds, the
OpenAI-compatible server): started on 127.0.0.1 on a free port, stopped with every
kept-alive connection closed, usable as a context manager.

A fake subclasses :class:`LoopbackServer` and gives :meth:`LoopbackServer._handler`, a
:class:`TrackedHandler` subclass with its ``do_*`` methods.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class TrackedHandler(BaseHTTPRequestHandler):
    """Keep-alive, no Nagle, quiet, and known to its server while it is connected."""

    protocol_version = "HTTP/1.1"  # keep-alive: clients (and benchmarks) reuse connections
    # Headers and body go out in separate writes: without this, Nagle's algorithm holds
    # the body until the client's delayed ACK (~40 ms per answer).
    disable_nagle_algorithm = True
    timeout = 30  # an idle kept-alive connection's thread ends after this
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner.track(self.connection, True)

    def finish(self) -> None:
        self.server.owner.track(self.connection, False)
        super().finish()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a benchmark round opens many connections at once
    owner: LoopbackServer


class LoopbackServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Set when stopping: a delayed answer waiting on it gives up at once.
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[TrackedHandler]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    def track(self, connection: Any, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def start(self, port: int = 0) -> Self:
        """Listen on ``port`` (0: a free one; a stopped server's port: the same again)."""
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", port), self._handler())
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        # Kept-alive connections too: a client's pooled connection must never reach this
        # server's handlers once another server listens on the same port.
        with self._lock:
            open_connections, self._connections = self._connections, set()
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
