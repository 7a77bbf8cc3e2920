"""Every model, imported once so ``Base.metadata`` is complete (Alembic, tests)."""

from herald.agents.models import (
    Agent,
    AgentRun,
    AgentSettings,
    LedgerEntry,
    Provider,
    RunItem,
)
from herald.channels.models import Channel
from herald.core.db import Base
from herald.jobs.models import Job
from herald.media.models import Media, PostMedia
from herald.posts.models import Post, PostTag
from herald.publishing.models import Publication, PublicationAttempt
from herald.scheduling.models import (
    ChannelSchedule,
    ChannelSlot,
    Heartbeat,
    PeriodicRun,
    SlotReservation,
)
from herald.sources.models import ItemUse, Source, SourceItem
from herald.users.models import ApiToken, LoginFailure, User, Workspace
from herald.webhooks.models import Webhook, WebhookDelivery, WebhookEvent, WebhookSubscription

__all__ = [
    "Agent",
    "AgentRun",
    "AgentSettings",
    "ApiToken",
    "Base",
    "Channel",
    "ChannelSchedule",
    "ChannelSlot",
    "Heartbeat",
    "ItemUse",
    "Job",
    "LedgerEntry",
    "LoginFailure",
    "Media",
    "PeriodicRun",
    "Post",
    "PostMedia",
    "PostTag",
    "Provider",
    "Publication",
    "PublicationAttempt",
    "RunItem",
    "SlotReservation",
    "Source",
    "SourceItem",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "Workspace",
]
