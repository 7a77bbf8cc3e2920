"""The adapters that ship with Herald; importing this module registers them."""

from herald.adapters import (
    bluesky,
    devto,
    discord,
    folder,
    ghost,
    hashnode,
    linkedin,
    mastodon,
    matrix,
    medium,
    slack,
    telegram,
    webhook,
    wordpress,
    x,
)

__all__ = [
    "bluesky",
    "devto",
    "discord",
    "folder",
    "ghost",
    "hashnode",
    "linkedin",
    "mastodon",
    "matrix",
    "medium",
    "slack",
    "telegram",
    "webhook",
    "wordpress",
    "x",
]
