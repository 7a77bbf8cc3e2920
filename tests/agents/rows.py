"""Rows the agents' tests arrange directly: sources, channels and providers (each has
its own API, tested in its own folder), runs and ledger rows (written by the generation
job); the clock is frozen with tests.scheduling.frozen."""

from __future__ import annotations

import uuid
from typing import Any

from herald.agents.models import AgentRun, LedgerEntry, Provider, ProviderKind, RunTrigger
from herald.channels.models import Channel
from herald.core.db import session_scope
from herald.sources.models import Source, SourceKind
from herald.users.models import Role, TokenKind, Workspace
from herald.users.service import create_user, issue_token
from tests.conftest import Account


def add_source(workspace_id: uuid.UUID, name: str = "News") -> str:
    with session_scope() as session:
        source = Source(
            workspace_id=workspace_id,
            kind=SourceKind.FEED,
            name=name,
            url=f"https://{name.lower()}.example/feed",
        )
        session.add(source)
        session.flush()
        return str(source.id)


def add_channel(workspace_id: uuid.UUID, name: str = "Blog") -> str:
    with session_scope() as session:
        channel = Channel(
            workspace_id=workspace_id, platform="folder", name=name, credentials_encrypted=b"x"
        )
        session.add(channel)
        session.flush()
        return str(channel.id)


def add_provider(
    workspace_id: uuid.UUID, name: str = "Local", kind: ProviderKind = ProviderKind.OPENAI
) -> str:
    with session_scope() as session:
        provider = Provider(workspace_id=workspace_id, kind=kind, name=name, model="llama3")
        session.add(provider)
        session.flush()
        return str(provider.id)


def add_run(workspace_id: uuid.UUID, agent_id: uuid.UUID | str, **fields: Any) -> uuid.UUID:
    with session_scope() as session:
        run = AgentRun(
            workspace_id=workspace_id,
            agent_id=uuid.UUID(str(agent_id)),
            trigger=fields.pop("trigger", RunTrigger.MANUAL),
            **fields,
        )
        session.add(run)
        session.flush()
        return run.id


def add_ledger(workspace_id: uuid.UUID, **fields: Any) -> None:
    defaults: dict[str, Any] = {
        "provider_name": "Local",
        "provider_kind": "openai",
        "model": "llama3",
    }
    with session_scope() as session:
        session.add(LedgerEntry(workspace_id=workspace_id, **(defaults | fields)))


def reviewer_in(account: Account) -> Account:
    """A reviewer in ``account``'s workspace, signed in."""
    email = f"reviewer-{uuid.uuid4().hex[:6]}@example.com"
    with session_scope() as session:
        workspace = session.get_one(Workspace, account.workspace_id)
        user, password = create_user(
            session,
            email=email,
            password="correct horse battery",
            role=Role.REVIEWER,
            workspace=workspace,
        )
        issued = issue_token(session, user, kind=TokenKind.PERSONAL, name="t", expires_at=None)
        return Account(email, password, issued.token, user.id, user.workspace_id)
