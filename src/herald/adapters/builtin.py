"""The adapters that ship with Herald; importing this module registers them."""

from herald.adapters import folder, webhook

__all__ = ["folder", "webhook"]
