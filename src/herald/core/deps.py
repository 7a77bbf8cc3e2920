"""FastAPI dependencies shared by every feature: the session, the bearer scheme, the
client's address. The caller (``PrincipalDep``) is :mod:`herald.users.deps`: core imports
no feature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session

from herald.core.db import read_scope, session_scope

# Requests that only read run in a read transaction: on SQLite they never take or wait
# for the one writer lock, so a slow writer cannot stall them.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    scope = read_scope if request.method in READ_METHODS else session_scope
    with scope() as session:
        yield session


# scope="function": commit (or roll back) before the response is sent, so a client that
# got 201 can read its row back at once, and a failed commit is a 500, not a lie.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

bearer_scheme = HTTPBearer(auto_error=False, description="A login token or a personal API token.")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
