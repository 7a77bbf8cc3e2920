"""users.principal.default_principal: whom the command line acts as in a workspace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald.core.clock import set_clock
from herald.core.db import session_scope
from herald.core.errors import NotFound
from herald.users.models import Role
from herald.users.principal import default_principal
from herald.users.service import create_user

START = datetime(2026, 1, 1, tzinfo=UTC)


def create_user_at(moment: datetime, email: str, role: Role, workspace: str) -> None:
    set_clock(lambda: moment)
    try:
        with session_scope() as session:
            create_user(session, email=email, role=role, workspace_name=workspace)
    finally:
        set_clock(None)


@pytest.fixture
def users(db_backend: str) -> None:
    """A member who came first, then an admin, in "default"; a member alone in "team-b"."""
    create_user_at(START, "first-member@example.com", Role.MEMBER, "default")
    create_user_at(START + timedelta(minutes=1), "admin@example.com", Role.ADMIN, "default")
    create_user_at(START + timedelta(minutes=2), "team-b@example.com", Role.MEMBER, "team-b")


def test_an_admin_before_an_earlier_member(users: None) -> None:
    with session_scope() as session:
        principal = default_principal(session, "default")
        assert (principal.email, principal.role) == ("admin@example.com", Role.ADMIN)
        assert default_principal(session) == principal  # unset: the first admin anywhere


def test_a_member_when_the_workspace_has_no_admin(users: None) -> None:
    with session_scope() as session:
        principal = default_principal(session, "team-b")
        assert (principal.email, principal.role) == ("team-b@example.com", Role.MEMBER)
        assert principal.workspace_id != default_principal(session, "default").workspace_id


def test_the_earliest_admin_among_several(users: None) -> None:
    create_user_at(START + timedelta(days=1), "later-admin@example.com", Role.ADMIN, "default")
    with session_scope() as session:
        assert default_principal(session, "default").email == "admin@example.com"


def test_no_user_says_how_to_create_one(db_backend: str) -> None:
    with session_scope() as session:
        with pytest.raises(NotFound, match=r"^no user in any workspace; .*herald user create"):
            default_principal(session)
        create_user(session, email="ann@example.com", workspace_name="default")
        with pytest.raises(NotFound, match=r"^no user in workspace 'nowhere'; "):
            default_principal(session, "nowhere")
