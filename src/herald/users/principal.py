"""Who is calling, and whom the command line acts as.

Apart from :mod:`herald.users.service` (passwords, tokens, email checks: argon2 and
email-validator load with it) because every service scopes its queries by a
:class:`Principal`, and a command that only reads (`herald post list`) needs this and
nothing else of users.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.core.errors import Forbidden, NotFound
from herald.users.models import Role, User, Workspace


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and the workspace every query is scoped to."""

    user_id: uuid.UUID
    workspace_id: uuid.UUID
    email: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Only a workspace admin can do this.")

    def require_manager(self) -> None:
        """Reviewers read everything and decide on drafts, but the accounts Herald posts
        as and what feeds it (channels, sources, agents, providers) stay with members."""
        if self.role == Role.REVIEWER:
            raise Forbidden("Reviewers cannot manage channels, sources, agents or providers.")


def default_principal(session: Session, workspace: str | None = None) -> Principal:
    """Whom the command line acts as: the workspace's first admin, else its first member.

    The command line runs with the server's own access and has no login; acting as a
    user keeps every service's workspace scoping as it is for the API. Unset, the
    workspace is whichever the chosen user is in (the first admin anywhere)."""
    query = select(User).join(Workspace).order_by(User.role != Role.ADMIN, User.created_at)
    if workspace:
        query = query.where(Workspace.name == workspace)
    user = session.scalars(query.limit(1)).first()
    if user is None:
        where = f"workspace {workspace!r}" if workspace else "any workspace"
        raise NotFound(f"no user in {where}; create one with `herald user create`")
    return Principal(user.id, user.workspace_id, user.email, user.role)
