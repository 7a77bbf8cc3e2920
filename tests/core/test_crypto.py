from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from herald.core import crypto
from herald.core.settings import get_settings


def test_rotation_keeps_old_credentials_readable() -> None:
    settings = get_settings()
    original = list(settings.encryption_keys)
    try:
        token = crypto.encrypt_json({"token": "abc"})
        # A new key goes first; the old one stays to decrypt.
        settings.encryption_keys = [*settings.encryption_keys]
        settings.encryption_keys.insert(0, type(original[0])(Fernet.generate_key().decode()))
        crypto.reset_crypto()
        assert crypto.decrypt_json(token) == {"token": "abc"}
        rotated = crypto.rotate(token)
        # Drop the old key: the rotated token still reads, the original no longer does.
        settings.encryption_keys = settings.encryption_keys[:1]
        crypto.reset_crypto()
        assert crypto.decrypt_json(rotated) == {"token": "abc"}
        with pytest.raises(crypto.CredentialsUnreadable, match="HERALD_ENCRYPTION_KEYS"):
            crypto.decrypt_json(token)
    finally:
        settings.encryption_keys = original
        crypto.reset_crypto()


def test_each_decryption_is_a_new_dict() -> None:
    token = crypto.encrypt_json({"token": "abc", "scopes": ["write"]})
    first = crypto.decrypt_json(token)
    first["token"] = "changed"
    first["scopes"].append("admin")
    assert crypto.decrypt_json(token) == {"token": "abc", "scopes": ["write"]}
