"""`herald keys`: a new key to put first, and re-encrypting every channel with the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.cli.runner import ON_SQLITE, given_user, herald

pytestmark = pytest.mark.integration  # `herald` processes on the real database


def test_generate_prints_a_key_fernet_accepts() -> None:
    generated = herald("keys", "generate")
    assert generated.returncode == 0, generated.stderr
    key = generated.stdout.removesuffix("\n")
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"
    assert herald("keys", "generate").stdout != generated.stdout


@ON_SQLITE
def test_rotate_goes_through_every_workspace(db_backend: str, tmp_path: Path) -> None:
    """What rotation does to the ciphertext: tests/channels/test_names_and_keys.py."""
    for email, workspace in [("ann@example.com", "default"), ("bob@example.com", "b")]:
        given_user(email, workspace=workspace)
    for workspace in ("default", "b"):
        added = herald(
            "channel", "add", "--platform", "folder", "--name", "site", "--workspace", workspace,
            "--credentials", json.dumps({"path": str(tmp_path)}),
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

    rotated = herald("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "Re-encrypted the credentials of 2 channel(s)" in rotated.stdout
