"""The adapter registry: built-ins present, unknown keys explained, keys never shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from herald.adapters import builtin, registry
from herald.adapters.base import Adapter, Identity, PostContent, Receipt, Rendition, StrictModel
from herald.adapters.folder import FolderAdapter
from herald.adapters.webhook import WebhookAdapter


@pytest.fixture(autouse=True)
def private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests here may register classes; none of them outlives the test."""
    registry.platforms()  # load the built-ins into the real registry first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def adapter_class(key: str) -> type[Adapter[Any, Any]]:
    class Credentials(StrictModel):
        token: str

    class Dummy(Adapter[Credentials, StrictModel]):
        platform = key
        display_name = f"Dummy {key}"
        credentials_model = Credentials

        def verify(self) -> Identity:
            return Identity(name="dummy")

        def render(self, post: PostContent) -> Rendition:
            return Rendition(format="text", parts=(post.body,))

        def publish(self, rendition: Rendition, idempotency_key: str) -> Receipt:
            return Receipt(external_id=idempotency_key)

    return Dummy


def test_builtins_are_registered_under_their_keys() -> None:
    platforms = registry.platforms()
    assert platforms["webhook"] is WebhookAdapter
    assert platforms["folder"] is FolderAdapter
    assert list(platforms) == sorted(platforms)
    for key, cls in platforms.items():
        assert cls.platform == key
        assert cls.display_name
    assert registry.get_adapter_class("webhook") is WebhookAdapter
    assert registry.get_adapter_class("folder") is FolderAdapter


def test_unknown_platform_names_the_known_ones() -> None:
    with pytest.raises(registry.UnknownPlatform) as info:
        registry.get_adapter_class("myspace")
    assert isinstance(info.value, LookupError)
    message = str(info.value)
    assert "'myspace'" in message
    assert ", ".join(sorted(registry.platforms())) in message


SHIPPED = {
    "bluesky", "devto", "discord", "folder", "ghost", "hashnode", "linkedin", "mastodon",
    "matrix", "medium", "slack", "telegram", "webhook", "wordpress", "x",
}  # fmt: skip


def test_every_shipped_platform_is_registered_with_its_docs() -> None:

    assert set(builtin.__all__) == SHIPPED
    assert set(registry.platforms()) >= SHIPPED
    docs = Path(__file__).resolve().parents[2] / "docs" / "channels"
    for key in SHIPPED - {"folder", "webhook"}:
        assert (docs / f"{key}.md").is_file(), f"docs/channels/{key}.md is missing"


def test_a_taken_key_cannot_be_registered_again() -> None:
    impostor = adapter_class("webhook")
    with pytest.raises(ValueError, match="'webhook' registered twice"):
        registry.register(impostor)
    assert registry.get_adapter_class("webhook") is WebhookAdapter


def test_registering_the_same_class_again_is_harmless() -> None:
    assert registry.register(WebhookAdapter) is WebhookAdapter
    assert registry.get_adapter_class("webhook") is WebhookAdapter


def test_a_new_platform_registers_and_is_listed() -> None:
    cls = adapter_class("carrier-pigeon")
    assert registry.register(cls) is cls
    assert registry.get_adapter_class("carrier-pigeon") is cls
    assert "carrier-pigeon" in registry.platforms()
    with pytest.raises(registry.UnknownPlatform, match="carrier-pigeon, devto"):
        registry.get_adapter_class("telegraph")
