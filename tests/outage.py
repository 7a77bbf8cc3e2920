"""An outage for tests: the app's database stops answering, on either backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from herald.core.db import reset_engine
from herald.core.settings import get_settings

# A PostgreSQL that refuses connections (nothing listens on port 1).
REFUSING_POSTGRES = "postgresql+psycopg://root@127.0.0.1:1/herald"


@contextlib.contextmanager
def database_unreachable(backend: str, scratch: Path) -> Iterator[None]:
    """Until the block ends, the database cannot be reached: SQLite's file cannot be
    opened (its path is the directory ``scratch``), PostgreSQL's port refuses."""
    settings = get_settings()
    saved = settings.database_url
    settings.database_url = f"sqlite:///{scratch}" if backend == "sqlite" else REFUSING_POSTGRES
    reset_engine()
    try:
        yield
    finally:
        settings.database_url = saved
        reset_engine()
