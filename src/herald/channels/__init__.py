"""Channels: one account on one platform, with encrypted credentials."""
