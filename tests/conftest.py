"""Suite-wide fixtures: a real database per backend (SQLite and PostgreSQL), the API
client, users and tokens. Each test starts from empty tables."""

from __future__ import annotations

import atexit
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

# Settings are read once per process: point the data dir somewhere private before any
# herald module is imported. Each xdist worker gets its own.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_DATA_DIR = Path(tempfile.mkdtemp(prefix=f"herald-test-{_WORKER}-"))
os.environ["HERALD_DATA_DIR"] = str(_DATA_DIR)
for _name in ("HERALD_DATABASE_URL", "HERALD_RESULT_BACKEND_URL", "HERALD_ENV"):
    os.environ.pop(_name, None)
# Every fake platform and receiver listens on loopback, which the guarded HTTP client
# refuses unless allowed; folder channels write under the temporary directory (tmp_path).
os.environ["HERALD_ALLOWED_PRIVATE_NETWORKS"] = "127.0.0.0/8,::1/128"
os.environ["HERALD_FOLDER_ROOTS"] = str(Path(tempfile.gettempdir()).resolve())
# The suite's broker: the machine's Redis, one database per xdist worker.
_REDIS_DB = 1 + (int(_WORKER[2:]) if _WORKER[2:].isdigit() else 0)
os.environ["HERALD_BROKER_URL"] = (
    os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379") + f"/{_REDIS_DB}"
)

# Herald reads its settings once, when first asked: import it only now that the
# environment above is in place (hence E402 below).
import psycopg  # noqa: E402
import redis  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from pwdlib import PasswordHash  # noqa: E402
from pwdlib.hashers.argon2 import Argon2Hasher  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from herald.app import create_app  # noqa: E402
from herald.core import security  # noqa: E402
from herald.core.db import get_engine, reset_engine, session_scope  # noqa: E402
from herald.core.migrate import upgrade  # noqa: E402
from herald.core.settings import get_settings  # noqa: E402
from herald.models import Base  # noqa: E402
from herald.users.models import Role, TokenKind  # noqa: E402
from herald.users.service import create_user, issue_token  # noqa: E402
from tests.fakes.feed_server import FeedServer  # noqa: E402
from tests.fakes.openai import OpenAIServer  # noqa: E402
from tests.fakes.webhook_receiver import Receiver  # noqa: E402
from tests.services import (  # noqa: E402
    PG_ADMIN_URL,
    postgres_available,
    redis_available,
    service_missing,
)

# Argon2 at its production cost takes 0.1-0.5 s a hash, and most tests make an account or
# sign in: in this process the suite hashes with Argon2 at its lowest cost (the same code;
# a hash carries its parameters, so verifying follows them). The processes tests start
# (`herald`, workers) keep the production cost, which tests/core/test_security.py checks.
PRODUCTION_PASSWORD_HASHER = security._hasher
security._hasher = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))

# What the `db` fixture gives: ``with db() as s:`` is one short transaction.
SessionFactory = Callable[[], AbstractContextManager[Session]]

# The fault suite's closing table (lost / twice / stuck), printed at the end of any run
# that ran a fault case; a plugin here, so that under xdist the controller prints it too.
pytest_plugins = ("tests.faults.report",)


_migrated: dict[str, str] = {}


def _pg_url() -> str:
    # Unique per process, so two test runs on one machine never share a database.
    name = f"herald_test_{_WORKER}_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    atexit.register(_drop_pg, name)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def _drop_pg(name: str) -> None:
    reset_engine()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_url(backend: str) -> str:
    if backend in _migrated:
        return _migrated[backend]
    if backend == "sqlite":
        url = f"sqlite:///{_DATA_DIR / 'test.db'}"
    else:
        reason = postgres_available()
        if reason:
            service_missing("PostgreSQL", reason)
        url = _pg_url()
    upgrade(url)  # the migrations themselves are under test here
    _migrated[backend] = url
    return url


def _empty_all_tables() -> None:
    # DELETE, children first, on both backends: a test leaves a few rows, and PostgreSQL's
    # TRUNCATE (new files for every table) took ~0.3 s a test where DELETE takes ~10 ms.
    with get_engine().begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once on SQLite and once on PostgreSQL, each on empty tables."""
    settings = get_settings()
    settings.database_url = _database_url(request.param)
    reset_engine()
    try:
        yield request.param
    finally:
        _empty_all_tables()
        reset_engine()
        settings.database_url = None


@pytest.fixture
def db(db_backend: str) -> SessionFactory:
    """``with db() as s:`` opens one short transaction for arranging or checking.

    Keep it short: on SQLite every transaction takes the write lock (BEGIN IMMEDIATE),
    so a session held open across an API call would block the call.
    """
    return session_scope


@pytest.fixture
def redis_broker() -> Iterator[str]:
    """The suite's Redis broker database (this worker's own), emptied before and after."""
    url = os.environ["HERALD_BROKER_URL"]
    reason = redis_available(url)
    if reason:
        service_missing("Redis", reason)
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()


@pytest.fixture
def client(db_backend: str) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local webhook receiver (signature check, dedup by Idempotency-Key, scripted answers)."""
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A local feed server (conditional GET honoured and counted, scripted answers)."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A local OpenAI-compatible server (chat completions with usage, scripted 429 with
    Retry-After, 500, 401, slow and malformed answers, answers without usage)."""
    with OpenAIServer() as server:
        yield server


@dataclass
class Account:
    email: str
    password: str
    token: str
    user_id: uuid.UUID
    workspace_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class MakeAccount(Protocol):
    """What the `make_account` fixture gives."""

    def __call__(
        self,
        email: str | None = None,
        *,
        workspace: str = "acme",
        admin: bool = True,
        role: Role | None = None,
    ) -> Account: ...


@pytest.fixture
def make_account(db_backend: str) -> MakeAccount:
    """Create a user (with a workspace) and a login token for it; ``role`` wins over
    ``admin`` (which picks admin or member)."""

    def make(
        email: str | None = None,
        *,
        workspace: str = "acme",
        admin: bool = True,
        role: Role | None = None,
    ) -> Account:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        with session_scope() as s:
            user, password = create_user(
                s,
                email=email,
                password="correct horse battery",
                role=role or (Role.ADMIN if admin else Role.MEMBER),
                workspace_name=workspace,
            )
            issued = issue_token(s, user, kind=TokenKind.PERSONAL, name="test", expires_at=None)
            return Account(email, password, issued.token, user.id, user.workspace_id)

    return make


@pytest.fixture
def account(make_account: MakeAccount) -> Account:
    return make_account("owner@example.com")
