"""The provider a config names: one class per kind."""

from __future__ import annotations

from herald.agents.models import ProviderKind
from herald.agents.providers.base import ProviderConfig, TextProvider
from herald.agents.providers.openai import OpenAIProvider


def provider_for(config: ProviderConfig) -> TextProvider:
    if config.kind == ProviderKind.OPENAI:
        return OpenAIProvider(config)
    if config.kind == ProviderKind.DIGEST:
        # Imported here: the digest is its own module and lands on its own; the ignore
        # covers the branches where it has not yet (and is unused once it has).
        from herald.agents.providers.digest import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
            DigestProvider,
        )

        digest: TextProvider = DigestProvider(config)
        return digest
    raise ValueError(f"no provider of kind {config.kind!r}")
