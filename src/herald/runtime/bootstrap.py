"""What `herald up` does around starting its processes: migrate first, and create the first
admin once everything answers (so its one-time password is shown when it can be used)."""

from __future__ import annotations

from herald.core.db import session_scope
from herald.core.migrate import upgrade
from herald.users.models import Role
from herald.users.service import count_users, create_user

FIRST_ADMIN_EMAIL = "admin@herald.localhost"


def prepare() -> None:
    """Bring the database schema to head before any process uses it."""
    upgrade()


def create_first_admin() -> tuple[str, str] | None:
    """With no user at all, create an admin and return its login, once; otherwise None."""
    with session_scope() as session:
        if count_users(session):
            return None
        user, password = create_user(
            session, email=FIRST_ADMIN_EMAIL, role=Role.ADMIN, workspace_name=None
        )
        return user.email, password
