"""Users' service: the email rule every way in shares, and setting a password."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from herald.core.db import session_scope
from herald.core.errors import InvalidInput, NotFound
from herald.core.security import verify_password
from herald.runtime.bootstrap import FIRST_ADMIN_EMAIL
from herald.users.models import ApiToken, LoginFailure, TokenKind, User
from herald.users.schemas import check_email
from herald.users.service import create_user, issue_token, login, set_password

# What self-hosters sign in with: Herald's own first admin, local names, ordinary addresses.
ACCEPTED = [
    "admin@herald.localhost",
    "second@herald.localhost",
    "ann@localhost",
    "ann@nas.local",
    "ann@box.home.arpa",
    "ann@staging.test",
    "ann@intranet",
    "ann@example.com",
    "anna.kowalska+herald@poczta.example.pl",
    "zoë@bücher.example",
]
REFUSED = [
    "nope",
    "@herald.localhost",
    "ann@",
    "ann@@herald.localhost",
    "ann smith@example.com",
    "Ann <ann@example.com>",
    "ann@exa mple.com",
    "ann..smith@example.com",
    "ann@example..com",
    "ann@-example.com",
    "ann@[127.0.0.1]",
    "ann@example.invalid",  # reserved never to exist (RFC 6761)
    "a" * 65 + "@example.com",
    "",
]


@pytest.mark.parametrize("email", ACCEPTED)
def test_sign_in_emails_may_use_local_names(email: str) -> None:
    assert check_email(email) == email


@pytest.mark.parametrize("email", REFUSED)
def test_malformed_emails_are_refused_with_the_reason(email: str) -> None:
    with pytest.raises(ValueError, match=r"is not a valid email address: \w.+"):
        check_email(email)


def test_herald_accepts_the_first_admin_it_creates_itself() -> None:
    assert check_email(FIRST_ADMIN_EMAIL) == FIRST_ADMIN_EMAIL


def test_create_user_checks_the_email_and_the_password(db_backend: str) -> None:
    with session_scope() as session:
        user, _ = create_user(session, email=" Second@Herald.localhost ")
        assert user.email == "second@herald.localhost"
        with pytest.raises(InvalidInput, match="not a valid email address"):
            create_user(session, email="second@@herald.localhost")
        with pytest.raises(InvalidInput, match="at least 8 characters"):
            create_user(session, email="third@herald.localhost", password="short")


def test_set_password_signs_out_sessions_and_keeps_api_tokens(db_backend: str) -> None:
    with session_scope() as session:
        ann, old = create_user(session, email="ann@herald.localhost")
        bob, _ = create_user(session, email="bob@herald.localhost")
        login(session, email="ann@herald.localhost", password=old, ip="127.0.0.1")
        login(session, email="ann@herald.localhost", password=old, ip="127.0.0.1")
        login(session, email="bob@herald.localhost", password=_, ip="127.0.0.1")
        issue_token(session, ann, kind=TokenKind.PERSONAL, name="ci", expires_at=None)
        session.add(LoginFailure(email="ann@herald.localhost", ip="10.0.0.9"))
        ann_id, bob_id = ann.id, bob.id

    with session_scope() as session:
        result = set_password(session, email="ANN@herald.localhost", password="new and long")
        assert result.sessions_signed_out == 2

    with session_scope() as session:
        ann = session.get_one(User, ann_id)
        assert verify_password("new and long", ann.password_hash)
        assert not verify_password(old, ann.password_hash)
        kinds = session.scalars(select(ApiToken.kind).where(ApiToken.user_id == ann_id)).all()
        assert kinds == [TokenKind.PERSONAL]  # scripts keep working; every login is signed out
        bobs = session.scalars(select(ApiToken.kind).where(ApiToken.user_id == bob_id)).all()
        assert bobs == [TokenKind.SESSION]  # nobody else is touched
        # A locked-out account can sign in again with its new password.
        assert session.scalars(select(LoginFailure)).all() == []
        login(session, email="ann@herald.localhost", password="new and long", ip="127.0.0.1")


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 8 characters"), ("x" * 1025, "at most 1024 characters")],
)
def test_set_password_refuses_a_bad_password(db_backend: str, password: str, message: str) -> None:
    with session_scope() as session:
        user, old = create_user(session, email="ann@herald.localhost")
        with pytest.raises(InvalidInput, match=message):
            set_password(session, email="ann@herald.localhost", password=password)
        assert verify_password(old, user.password_hash)


def test_set_password_of_nobody_is_not_found(db_backend: str) -> None:
    with session_scope() as session, pytest.raises(NotFound, match="No user with email"):
        set_password(session, email="ghost@herald.localhost", password="long enough")
