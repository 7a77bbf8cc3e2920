"""A local web server for feeds, as a careful real one behaves: it serves documents at
paths with ``ETag`` and ``Last-Modified``, answers a conditional GET whose validators
still match with 304 and no body, and counts what it did per path.

Per path it can also be told to answer otherwise (:meth:`FeedServer.behave`): a redirect,
an error status (404, 410, 429 with ``Retry-After``, 500, 503), extra headers
(``Cache-Control: max-age=...``), a slow answer, a gzip body, or to ignore validators as
many real servers do. It is a threaded HTTP/1.1 server with keep-alive, so one instance
serves the benchmark's thousand feeds.

    server.put("/feed.xml", body, "application/rss+xml")
    fetch(server.url("/feed.xml"))
    server.stats("/feed.xml").not_modified
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from tests.fakes.loopback import LoopbackServer, TrackedHandler

FEEDS = Path(__file__).parent.parent / "sources" / "feeds"

RSS = "application/rss+xml; charset=utf-8"


def feed_file(name: str) -> bytes:
    """A feed file the tests ship (tests/sources/feeds/)."""
    return (FEEDS / name).read_bytes()


@dataclass(frozen=True)
class PathStats:
    """What the server did for one path (or, from :meth:`FeedServer.totals`, for all)."""

    requests: int = 0
    conditional: int = 0  # requests carrying If-None-Match or If-Modified-Since
    not_modified: int = 0  # 304s answered
    body_bytes: int = 0  # body bytes written (compressed when gzip was on)


@dataclass(frozen=True)
class Behaviour:
    """How a path answers instead of (or on top of) serving its document."""

    status: int | None = None  # answer this status (with a short text body) instead
    location: str | None = None  # the Location of a redirect status, as sent
    headers: dict[str, str] = field(default_factory=dict)  # added to every answer
    delay: float = 0.0  # seconds to wait before answering (a slow server)
    drip: float = 0.0  # seconds to wait between 1 kB pieces of the body (a slow sender)
    gzip: bool = False  # send the document gzipped when the client accepts gzip
    conditional: bool = True  # False: ignore validators (always a full answer)
    times: int | None = None  # how many answers this behaviour lasts (None: until changed)


@dataclass
class _Document:
    body: bytes
    content_type: str
    etag: str | None
    modified: int | None  # Unix seconds, sent as Last-Modified
    zipped: bytes | None = None


@dataclass
class _Path:
    document: _Document | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    stats: PathStats = field(default_factory=PathStats)
    seen: list[dict[str, str]] = field(default_factory=list)  # request headers, lower-case


class FeedServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self._paths: dict[str, _Path] = {}

    # -- control surface -----------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def put(
        self,
        path: str,
        body: bytes | str,
        content_type: str = RSS,
        *,
        etag: bool = True,
        last_modified: bool = True,
    ) -> None:
        """Serve ``body`` at ``path`` from now on (a new item, an edit): its ETag is its
        hash and its Last-Modified moves forward by at least a second on every put."""
        data = body.encode() if isinstance(body, str) else body
        with self._lock:
            entry = self._paths.setdefault(path, _Path())
            previous = entry.document.modified if entry.document else None
            modified = int(time.time())
            if previous is not None and modified <= previous:
                modified = previous + 1
            entry.document = _Document(
                body=data,
                content_type=content_type,
                etag=f'"{hashlib.sha256(data).hexdigest()[:20]}"' if etag else None,
                modified=modified if last_modified else None,
            )

    def put_file(self, path: str, name: str, content_type: str = RSS) -> bytes:
        """Serve the shipped feed file ``tests/sources/feeds/<name>``; returns its bytes."""
        data = feed_file(name)
        self.put(path, data, content_type)
        return data

    def behave(
        self,
        path: str,
        *,
        status: int | None = None,
        location: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        drip: float = 0.0,
        gzip: bool = False,
        conditional: bool = True,
        times: int | None = None,
    ) -> None:
        """Answer ``path`` this way from now on (replacing what it was told before), or for
        the next ``times`` answers only. ``location`` is sent as given (a path is relative)."""
        with self._lock:
            self._paths.setdefault(path, _Path()).behaviour = Behaviour(
                status=status,
                location=location,
                headers=dict(headers or {}),
                delay=delay,
                drip=drip,
                gzip=gzip,
                conditional=conditional,
                times=times,
            )

    def stats(self, path: str) -> PathStats:
        with self._lock:
            entry = self._paths.get(path)
            return entry.stats if entry else PathStats()

    def totals(self) -> PathStats:
        with self._lock:
            every = [entry.stats for entry in self._paths.values()]
        return PathStats(
            requests=sum(s.requests for s in every),
            conditional=sum(s.conditional for s in every),
            not_modified=sum(s.not_modified for s in every),
            body_bytes=sum(s.body_bytes for s in every),
        )

    def seen(self, path: str) -> list[dict[str, str]]:
        """The headers of every request for ``path`` (names lower-case), oldest first."""
        with self._lock:
            entry = self._paths.get(path)
            return list(entry.seen) if entry else []

    # -- answering -----------------------------------------------------------------------

    def _take(self, path: str, headers: dict[str, str]) -> tuple[Behaviour, _Document | None]:
        conditional = "if-none-match" in headers or "if-modified-since" in headers
        with self._lock:
            entry = self._paths.setdefault(path, _Path())
            entry.seen.append(headers)
            entry.stats = replace(
                entry.stats,
                requests=entry.stats.requests + 1,
                conditional=entry.stats.conditional + conditional,
            )
            behaviour = entry.behaviour
            if behaviour.times is not None:
                left = behaviour.times - 1
                entry.behaviour = replace(behaviour, times=left) if left > 0 else Behaviour()
            return behaviour, entry.document

    def _count(self, path: str, *, not_modified: bool, body_bytes: int) -> None:
        with self._lock:
            entry = self._paths[path]
            entry.stats = replace(
                entry.stats,
                not_modified=entry.stats.not_modified + not_modified,
                body_bytes=entry.stats.body_bytes + body_bytes,
            )

    @staticmethod
    def _still_fresh(document: _Document, headers: dict[str, str]) -> bool:
        """RFC 9110 §13.2.2: If-None-Match decides when sent; else If-Modified-Since."""
        if "if-none-match" in headers:
            if document.etag is None:
                return False
            wanted = {tag.strip().removeprefix("W/") for tag in headers["if-none-match"].split(",")}
            return "*" in wanted or document.etag in wanted
        since = headers.get("if-modified-since")
        if since is None or document.modified is None:
            return False
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return document.modified <= when.timestamp()

    # -- lifecycle -----------------------------------------------------------------------

    def _handler(self) -> type[TrackedHandler]:
        fake = self

        class Handler(TrackedHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                headers = {name.lower(): value for name, value in self.headers.items()}
                behaviour, document = fake._take(path, headers)
                if behaviour.delay and fake._stopping.wait(behaviour.delay):
                    self.close_connection = True
                    return
                extra = behaviour.headers
                if behaviour.status is not None:
                    text = f"{behaviour.status} from the feed server\n".encode()
                    location = {"Location": behaviour.location} if behaviour.location else {}
                    self._answer(path, behaviour.status, text, "text/plain", {**location, **extra})
                    return
                if document is None:
                    self._answer(path, 404, b"no such feed\n", "text/plain", extra)
                    return
                validators = {}
                if document.etag:
                    validators["ETag"] = document.etag
                if document.modified is not None:
                    validators["Last-Modified"] = email.utils.formatdate(
                        document.modified, usegmt=True
                    )
                if behaviour.conditional and fake._still_fresh(document, headers):
                    self._answer(path, 304, b"", None, {**validators, **extra})
                    return
                body = document.body
                encoding = {}
                if behaviour.gzip and "gzip" in headers.get("accept-encoding", ""):
                    if document.zipped is None:
                        document.zipped = gzip.compress(document.body, mtime=0)
                    body = document.zipped
                    encoding = {"Content-Encoding": "gzip"}
                self._answer(
                    path,
                    200,
                    body,
                    document.content_type,
                    {**validators, **encoding, **extra},
                    drip=behaviour.drip,
                )

            def _answer(
                self,
                path: str,
                status: int,
                body: bytes,
                content_type: str | None,
                headers: dict[str, str],
                *,
                drip: float = 0.0,
            ) -> None:
                # Counted before it is sent: the client may look at the counts as soon as
                # it has the answer.
                fake._count(path, not_modified=status == 304, body_bytes=len(body))
                try:
                    self.send_response(status)
                    if content_type:
                        self.send_header("Content-Type", content_type)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if status != 304:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    step = 1024 if drip else len(body) or 1
                    for start in range(0, len(body), step):
                        if start and drip and fake._stopping.wait(drip):
                            break
                        self.wfile.write(body[start : start + step])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler
