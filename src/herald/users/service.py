"""Users, workspaces, logins and tokens. Services flush; the caller commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.core.db import READ_ONLY, DatabaseBusy, session_scope
from herald.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from herald.core.security import (
    generate_password,
    hash_password,
    new_token,
    token_digest,
    verify_password,
)
from herald.core.settings import get_settings
from herald.users.auth_cache import principals
from herald.users.models import ApiToken, LoginFailure, Role, TokenKind, User, Workspace
from herald.users.principal import Principal
from herald.users.schemas import check_email, check_password_length

DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once
    row: ApiToken


def normalize_email(email: str) -> str:
    return email.strip().lower()


def valid_email(email: str) -> str:
    """``email`` checked by Herald's one email rule (see ``users.schemas``) and normalized."""
    try:
        return normalize_email(check_email(email))
    except ValueError as exc:
        raise InvalidInput(str(exc), field="email") from None


def valid_password(password: str) -> str:
    try:
        return check_password_length(password)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="password") from None


def get_or_create_workspace(session: Session, name: str | None) -> Workspace:
    if name is None:
        first = session.scalars(select(Workspace).order_by(Workspace.created_at).limit(1)).first()
        if first is not None:
            return first
        name = DEFAULT_WORKSPACE
    workspace = session.scalars(select(Workspace).where(Workspace.name == name)).first()
    if workspace is None:
        workspace = Workspace(name=name)
        session.add(workspace)
        session.flush()
    return workspace


def create_user(
    session: Session,
    *,
    email: str,
    password: str | None = None,
    role: Role = Role.MEMBER,
    workspace: Workspace | None = None,
    workspace_name: str | None = None,
) -> tuple[User, str]:
    """Create a user; returns it with the password (generated when none is given)."""
    email = valid_email(email)
    if password is not None:
        valid_password(password)
    if session.scalars(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict(f"A user with email {email} already exists.")
    if workspace is None:
        workspace = get_or_create_workspace(session, workspace_name)
    password = password or generate_password()
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=role,
        workspace_id=workspace.id,
    )
    session.add(user)
    session.flush()
    return user, password


@dataclass(frozen=True)
class PasswordSet:
    email: str
    sessions_signed_out: int


def set_password(session: Session, *, email: str, password: str) -> PasswordSet:
    """Give a user a new password, as an operator does for someone who forgot theirs.

    Every login (session token) of that user is signed out, since whoever knew the old
    password may hold one; personal API tokens keep working (scripts are not broken by a
    reset; they are listed and revoked one by one at ``/auth/tokens``). The account's
    failed-login count is cleared, so a locked-out user can sign in at once.
    """
    valid_password(password)
    email = normalize_email(email)
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        raise NotFound(f"No user with email {email}.")
    user.password_hash = hash_password(password)
    signed_out = session.execute(
        delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == TokenKind.SESSION)
    )
    session.execute(delete(LoginFailure).where(LoginFailure.email == email))
    session.flush()
    return PasswordSet(email=email, sessions_signed_out=int(getattr(signed_out, "rowcount", 0)))


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def list_users(session: Session, principal: Principal) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.workspace_id == principal.workspace_id).order_by(User.email)
        )
    )


# --- login ------------------------------------------------------------------------------


def _check_login_rate(session: Session, email: str, ip: str, now: datetime) -> None:
    settings = get_settings()
    since = now - timedelta(seconds=settings.login_window_seconds)
    per_account = session.scalar(
        select(func.count()).where(LoginFailure.email == email, LoginFailure.at > since)
    )
    per_ip = session.scalar(
        select(func.count()).where(LoginFailure.ip == ip, LoginFailure.at > since)
    )
    if (per_account or 0) >= settings.login_max_failures or (
        per_ip or 0
    ) >= settings.login_max_failures_per_ip:
        oldest = session.scalar(
            select(func.min(LoginFailure.at)).where(
                LoginFailure.at > since, (LoginFailure.email == email) | (LoginFailure.ip == ip)
            )
        )
        retry_after = settings.login_window_seconds
        if oldest is not None:
            retry_after = int((oldest - since).total_seconds()) + 1
        raise TooManyRequests(
            "Too many failed sign-in attempts; wait before trying again.", retry_after=retry_after
        )


def login(session: Session, *, email: str, password: str, ip: str) -> IssuedToken:
    """Check a password and issue a session token, or record the failure.

    The caller must commit even when this raises ``Unauthorized``/``TooManyRequests``,
    so the failure is counted: see ``record_failure=True`` semantics in the API edge.
    """
    email = normalize_email(email)
    now = utcnow()
    _check_login_rate(session, email, ip, now)
    user = session.scalars(select(User).where(User.email == email)).first()
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.is_active:
        session.add(LoginFailure(email=email, ip=ip, at=now))
        session.flush()
        _check_login_rate(session, email, ip, now)  # the failure that crosses the limit
        raise Unauthorized("Wrong email or password.")
    session.execute(delete(LoginFailure).where(LoginFailure.email == email))
    ttl = timedelta(minutes=get_settings().access_token_ttl_minutes)
    return issue_token(session, user, kind=TokenKind.SESSION, name="login", expires_at=now + ttl)


def issue_token(
    session: Session,
    user: User,
    *,
    kind: TokenKind,
    name: str,
    expires_at: datetime | None,
) -> IssuedToken:
    token = new_token()
    row = ApiToken(
        workspace_id=user.workspace_id,
        user_id=user.id,
        kind=kind,
        name=name,
        digest=token_digest(token),
        prefix=token[:12],
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return IssuedToken(token=token, row=row)


def cached_principal(token: str) -> Principal | None:
    """The caller a token named moments ago (see :mod:`herald.users.auth_cache`), or None:
    no database, so a request can ask before it needs a thread."""
    principal: Principal | None = principals.get(token_digest(token), utcnow())
    return principal


def authenticate(session: Session, token: str) -> Principal:
    digest = token_digest(token)
    now = utcnow()
    cached: Principal | None = principals.get(digest, now)
    if cached is not None:
        return cached
    generation = principals.generation  # before the read: see auth_cache
    row = session.scalars(select(ApiToken).where(ApiToken.digest == digest)).first()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthorized("The token is unknown or has expired; sign in again.")
    if not row.user.is_active:
        raise Unauthorized("This account is disabled.")
    # Write last_used_at at most once a minute, so reads stay reads.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        if session.info.get(READ_ONLY):
            _touch_token(row.id, now)
        else:
            row.last_used_at = now
    principal = Principal(
        user_id=row.user_id, workspace_id=row.workspace_id, email=row.user.email, role=row.user.role
    )
    principals.put(
        digest,
        principal,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        generation=generation,
    )
    return principal


def _touch_token(token_id: uuid.UUID, now: datetime) -> None:
    """Record a token's use from a request that only reads: in a write of its own that
    takes SQLite's writer lock only if it is free, since it is not worth a wait."""
    try:
        with session_scope(write_wait=0) as session:
            session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
    except DatabaseBusy:
        pass  # the next request records it


def create_personal_token(
    session: Session, principal: Principal, *, name: str, expires_at: datetime | None
) -> IssuedToken:
    user = session.get_one(User, principal.user_id)
    return issue_token(session, user, kind=TokenKind.PERSONAL, name=name, expires_at=expires_at)


def list_personal_tokens(session: Session, principal: Principal) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == principal.user_id, ApiToken.kind == TokenKind.PERSONAL)
            .order_by(ApiToken.created_at)
        )
    )


def revoke_token(session: Session, principal: Principal, token_id: uuid.UUID) -> None:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != principal.user_id:
        raise NotFound(f"No token {token_id}.")
    session.delete(row)
    session.flush()


def prune_login_failures(session: Session, older_than: datetime) -> int:
    result = session.execute(delete(LoginFailure).where(LoginFailure.at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
