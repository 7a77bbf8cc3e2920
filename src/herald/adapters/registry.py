"""Adapters by platform key. Adapter modules register themselves on import."""

from __future__ import annotations

import importlib
from typing import Any

from herald.adapters.base import Adapter
from herald.core.exceptions import HeraldFault

_REGISTRY: dict[str, type[Adapter[Any, Any]]] = {}


class UnknownPlatform(HeraldFault, LookupError):
    pass


def register(cls: type[Adapter[Any, Any]]) -> type[Adapter[Any, Any]]:
    if cls.platform in _REGISTRY and _REGISTRY[cls.platform] is not cls:
        raise ValueError(f"platform {cls.platform!r} registered twice")
    _REGISTRY[cls.platform] = cls
    return cls


def _load_builtins() -> None:
    # Importing the package imports every built-in adapter module. Loaded by name when
    # first needed: each of those modules imports this one to register itself (a cycle).
    importlib.import_module("herald.adapters.builtin")


def get_adapter_class(platform: str) -> type[Adapter[Any, Any]]:
    _load_builtins()
    try:
        return _REGISTRY[platform]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownPlatform(f"unknown platform {platform!r}; known: {known}") from None


def platforms() -> dict[str, type[Adapter[Any, Any]]]:
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))
