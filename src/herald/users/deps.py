"""The caller of a request, as a FastAPI dependency: the principal its bearer token names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from herald.core.deps import SessionDep, bearer_scheme
from herald.core.errors import Unauthorized
from herald.users.principal import Principal
from herald.users.service import authenticate, cached_principal

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    return credentials.credentials


def principal_of(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller, from code already on a worker thread."""
    return authenticate(session, _bearer(credentials))


async def get_principal(session: SessionDep, credentials: Credentials) -> Principal:
    """The caller: on the event loop when the token was seen moments ago (no database, no
    thread: :mod:`herald.users.auth_cache`), else looked up on a worker thread."""
    token = _bearer(credentials)
    principal = cached_principal(token)
    if principal is not None:
        return principal
    return await run_in_threadpool(authenticate, session, token)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
