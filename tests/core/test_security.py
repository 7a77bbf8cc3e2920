"""Passwords: Argon2id at its production cost. (The suite's own process hashes at the
lowest cost, for speed: tests/conftest.py; this puts the production hasher back.)"""

from __future__ import annotations

import pytest

from herald.core import security
from tests.conftest import PRODUCTION_PASSWORD_HASHER


def test_passwords_are_hashed_with_argon2id_at_the_production_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PRODUCTION_PASSWORD_HASHER
    monkeypatch.setattr(security, "_hasher", hasher)

    stored = security.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored
    assert stored != security.hash_password("correct horse battery")  # salted
    assert security.verify_password("correct horse battery", stored)
    assert not security.verify_password("correct horse battery!", stored)
    # An unknown account is checked against a hash of the same cost (the same time).
    dummy = security._dummy_hash(hasher)
    assert dummy.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), dummy
    assert not security.verify_password("correct horse battery", None)
