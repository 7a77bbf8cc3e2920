"""The adapters that ship with Herald; importing this module registers them."""

from herald.adapters import (
    bluesky,
    devto,
    folder,
    ghost,
    hashnode,
    linkedin,
    mastodon,
    medium,
    telegram,
    webhook,
    wordpress,
    x,
)

__all__ = [
    "bluesky",
    "devto",
    "folder",
    "ghost",
    "hashnode",
    "linkedin",
    "mastodon",
    "medium",
    "telegram",
    "webhook",
    "wordpress",
    "x",
]
