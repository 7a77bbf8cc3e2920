from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from herald.core.deps import SessionDep, client_ip
from herald.core.errors import TooManyRequests, Unauthorized, problem_responses
from herald.users import service
from herald.users.deps import PrincipalDep
from herald.users.models import User
from herald.users.schemas import (
    AccessToken,
    LoginRequest,
    Me,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserCreated,
    UserRead,
)

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"], responses=problem_responses(401))


@auth_router.post("/login", responses=problem_responses(401, 422, 429))
def login(
    body: LoginRequest, session: SessionDep, ip: Annotated[str, Depends(client_ip)]
) -> AccessToken:
    """Exchange email and password for a bearer token."""
    try:
        issued = service.login(session, email=body.email, password=body.password, ip=ip)
    except (Unauthorized, TooManyRequests):
        session.commit()  # the failed attempt must be counted even though we answer an error
        raise
    return AccessToken(access_token=issued.token, expires_at=issued.row.expires_at)


@auth_router.get("/me", responses=problem_responses(401))
def me(principal: PrincipalDep, session: SessionDep) -> Me:
    user = session.get_one(User, principal.user_id)
    return Me(**UserRead.model_validate(user).model_dump(), workspace_name=user.workspace.name)


@auth_router.post(
    "/tokens", status_code=status.HTTP_201_CREATED, responses=problem_responses(401, 422)
)
def create_token(body: TokenCreate, principal: PrincipalDep, session: SessionDep) -> TokenCreated:
    """Create a personal API token for scripts; the token is shown once."""
    issued = service.create_personal_token(
        session, principal, name=body.name, expires_at=body.expires_at
    )
    return TokenCreated(**TokenRead.model_validate(issued.row).model_dump(), token=issued.token)


@auth_router.get("/tokens", responses=problem_responses(401))
def list_tokens(principal: PrincipalDep, session: SessionDep) -> list[TokenRead]:
    return [TokenRead.model_validate(t) for t in service.list_personal_tokens(session, principal)]


@auth_router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404),
)
def revoke_token(token_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    service.revoke_token(session, principal, token_id)


@users_router.get("")
def list_users(principal: PrincipalDep, session: SessionDep) -> list[UserRead]:
    return [UserRead.model_validate(u) for u in service.list_users(session, principal)]


@users_router.post(
    "", status_code=status.HTTP_201_CREATED, responses=problem_responses(403, 409, 422)
)
def create_user(body: UserCreate, principal: PrincipalDep, session: SessionDep) -> UserCreated:
    """Add a user to your workspace (admins only)."""
    principal.require_admin()
    workspace = session.get_one(User, principal.user_id).workspace
    user, password = service.create_user(
        session, email=body.email, password=body.password, role=body.role, workspace=workspace
    )
    return UserCreated(
        **UserRead.model_validate(user).model_dump(),
        password=None if body.password else password,
    )
