"""channels.service for the command line: channels by id or name, and re-encrypting every
channel's credentials with the newest key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from herald.channels.models import Channel
from herald.channels.schemas import ChannelCreate
from herald.channels.service import create_channel, resolve_channel_ids, rotate_credentials
from herald.core.crypto import CredentialsUnreadable, decrypt_json, encrypt_json, reset_crypto
from herald.core.db import session_scope
from herald.core.errors import NotFound
from herald.core.settings import get_settings
from herald.users.principal import Principal, default_principal
from herald.users.service import create_user


def add_folder_channel(principal: Principal, name: str, path: Path) -> uuid.UUID:
    with session_scope() as session:
        body = ChannelCreate(platform="folder", name=name, credentials={"path": str(path)})
        return create_channel(session, principal, body).id


def principal_in(workspace: str) -> Principal:
    with session_scope() as session:
        create_user(session, email=f"ann@{workspace}.example.com", workspace_name=workspace)
        return default_principal(session, workspace)


def test_channels_by_id_or_by_name_in_the_workspace(db_backend: str, tmp_path: Path) -> None:
    ann, bob = principal_in("ann"), principal_in("bob")
    site = add_folder_channel(ann, "site", tmp_path)
    blog = add_folder_channel(ann, "blog", tmp_path)
    bobs_site = add_folder_channel(bob, "site", tmp_path)
    elsewhere = uuid.uuid4()
    with session_scope() as session:
        refs = ["blog", str(site), "site", str(elsewhere)]
        assert resolve_channel_ids(session, ann, refs) == [blog, site, site, elsewhere]
        assert resolve_channel_ids(session, bob, ["site"]) == [bobs_site]
        with pytest.raises(NotFound, match=r"^no channel named 'blog'; see `herald channel list`"):
            resolve_channel_ids(session, bob, ["site", "blog"])


def test_channels_by_a_unique_id_prefix_of_the_workspace(db_backend: str, tmp_path: Path) -> None:
    ann, bob = principal_in("ann"), principal_in("bob")
    site = add_folder_channel(ann, "site", tmp_path)
    add_folder_channel(bob, "site", tmp_path)
    with session_scope() as session:
        assert resolve_channel_ids(session, ann, [str(site)[:8], str(site)[:4]]) == [site, site]
        # Bob's workspace holds no channel with that id: a prefix never crosses workspaces.
        with pytest.raises(NotFound, match="No channel with an id starting"):
            resolve_channel_ids(session, bob, [str(site)[:13]])


@pytest.fixture
def old_key() -> Iterator[str]:
    """Credentials written under one key, which the test then replaces."""
    settings = get_settings()
    kept = settings.encryption_keys
    old = Fernet.generate_key().decode()
    settings.encryption_keys = [SecretStr(old)]
    reset_crypto()
    try:
        yield old
    finally:
        settings.encryption_keys = kept
        reset_crypto()


def use_keys(*keys: str) -> None:
    get_settings().encryption_keys = [SecretStr(key) for key in keys]
    reset_crypto()


def test_rotation_re_encrypts_every_channel_with_the_newest_key(
    db_backend: str, tmp_path: Path, old_key: str
) -> None:
    ids = [
        add_folder_channel(principal_in("ann"), "site", tmp_path),
        add_folder_channel(principal_in("bob"), "site", tmp_path / "bob"),
    ]
    with session_scope() as session:
        session.get_one(Channel, ids[0]).session_encrypted = encrypt_json({"cookie": "c"})
    new_key = Fernet.generate_key().decode()

    use_keys(new_key)  # without the old key, nothing written before can be read
    with session_scope() as session, pytest.raises(CredentialsUnreadable):
        decrypt_json(session.get_one(Channel, ids[0]).credentials_encrypted)

    use_keys(new_key, old_key)
    with session_scope() as session:
        assert rotate_credentials(session) == 2

    use_keys(new_key)  # the old key retired: everything reads under the new one alone
    with session_scope() as session:
        channels = [session.get_one(Channel, channel_id) for channel_id in ids]
        assert [decrypt_json(c.credentials_encrypted) for c in channels] == [
            {"path": str(tmp_path)},
            {"path": str(tmp_path / "bob")},
        ]
        assert channels[0].session_encrypted is not None
        assert decrypt_json(channels[0].session_encrypted) == {"cookie": "c"}
        assert channels[1].session_encrypted is None
