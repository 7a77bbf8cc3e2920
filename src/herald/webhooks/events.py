"""The event types an endpoint can subscribe to: the one list, with what each means and
an example of its ``data`` (docs/webhooks.md is checked against it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    example: dict[str, Any]


_DELIVERY = {
    "delivery_id": "6f1c1d0e-6d0b-4c52-9a55-7a4b3b7f0c11",
    "post_id": "0b8f3f8e-2f7c-4a7e-8a55-1f0f7c3c9a10",
    "channel_id": "5a0e9d0a-8b5f-4f2e-9c1d-3e2b1a0f9e21",
    "platform": "mastodon",
}

EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        "delivery.published",
        "A post went out to one channel.",
        _DELIVERY | {"url": "https://mastodon.social/@herald/1", "error": None},
    ),
    EventType(
        "delivery.failed",
        "A delivery failed for good: the platform refused it, or its retries ran out.",
        _DELIVERY | {"url": None, "error": "out of retries: 503 Service Unavailable"},
    ),
    EventType(
        "delivery.unconfirmed",
        "A delivery may or may not have gone out (a timeout after sending); a person decides.",
        _DELIVERY | {"url": None, "error": "timed out after sending"},
    ),
    EventType(
        "post.scheduled",
        "A post was scheduled on one or more channels, or moved to another time.",
        {
            "post_id": "0b8f3f8e-2f7c-4a7e-8a55-1f0f7c3c9a10",
            "due_at": "2026-12-24T09:00:00+00:00",
            "deliveries": [
                {
                    "delivery_id": "6f1c1d0e-6d0b-4c52-9a55-7a4b3b7f0c11",
                    "channel_id": "5a0e9d0a-8b5f-4f2e-9c1d-3e2b1a0f9e21",
                }
            ],
            "rescheduled": False,
        },
    ),
    EventType(
        "post.reviewed",
        "A reviewer approved or rejected a post waiting for review.",
        {
            "post_id": "0b8f3f8e-2f7c-4a7e-8a55-1f0f7c3c9a10",
            "decision": "approved",
            "state": "publishing",
            "reviewer_email": "editor@example.com",
        },
    ),
    EventType(
        "job.finished",
        "A background job (channel test, source check, generation, backup...) ended.",
        {
            "job_id": "c3b1b0f4-1d6a-4a52-8f0e-2c1e9d8a7b60",
            "kind": "generate",
            "state": "SUCCESS",
            "error": None,
        },
    ),
    EventType(
        "draft.created",
        "An agent wrote a draft post.",
        {
            "post_id": "0b8f3f8e-2f7c-4a7e-8a55-1f0f7c3c9a10",
            "agent_id": "9d2a1c3b-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
            "run_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "title": "This week in Rust",
            "state": "in_review",
        },
    ),
    EventType(
        "channel.needs_reconnect",
        "A platform refused a channel's credentials; its deliveries wait until it is reconnected.",
        {
            "channel_id": "5a0e9d0a-8b5f-4f2e-9c1d-3e2b1a0f9e21",
            "platform": "bluesky",
            "name": "team-bsky",
            "reason": "Invalid identifier or password",
        },
    ),
    EventType(
        "backup.finished",
        "A backup (asked for, or the nightly one) ended; sent to the first workspace, "
        "whose admins manage backups.",
        {
            "name": "herald-20261206-023000.tar.gz",
            "size": 1048576,
            "ok": True,
            "error": None,
            "trigger": "nightly",
        },
    ),
    EventType(
        "webhook.test",
        "A ping sent by `POST /api/v1/webhooks/{id}/test` (to that endpoint only).",
        {"webhook_id": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", "message": "Hello from Herald"},
    ),
)

NAMES = frozenset(event.name for event in EVENT_TYPES)
