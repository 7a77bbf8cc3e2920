"""What `herald up` does before starting its processes: migrate, and create the first admin."""

from __future__ import annotations

from herald.core.db import session_scope
from herald.core.migrate import upgrade
from herald.users.models import Role
from herald.users.service import count_users, create_user

FIRST_ADMIN_EMAIL = "admin@herald.localhost"


def prepare() -> tuple[str, str] | None:
    """Migrate to head; with no user at all, create an admin and return its login once."""
    upgrade()
    with session_scope() as session:
        if count_users(session):
            return None
        user, password = create_user(
            session, email=FIRST_ADMIN_EMAIL, role=Role.ADMIN, workspace_name=None
        )
        return user.email, password
