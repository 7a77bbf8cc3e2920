from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from herald.core.settings import ConfigurationError, Settings


def test_development_generates_secrets_once_with_mode_0600(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path)
    first.ensure_secrets()
    secrets_file = tmp_path / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    second = Settings(data_dir=tmp_path)
    second.ensure_secrets()
    assert first.secret_key_value() == second.secret_key_value()
    assert first.encryption_key_values() == second.encryption_key_values()
    assert len(first.secret_key_value()) >= 32


def test_production_refuses_missing_secrets(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, env="production")
    with pytest.raises(ConfigurationError, match="HERALD_SECRET_KEY and HERALD_ENCRYPTION_KEYS"):
        settings.ensure_secrets()
    assert not (tmp_path / "secrets.json").exists()  # nothing generated silently


def test_production_refuses_default_secret(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        env="production",
        secret_key="changeme",
        encryption_keys=Fernet.generate_key().decode(),
    )
    with pytest.raises(ConfigurationError, match="default"):
        settings.ensure_secrets()


def test_bad_encryption_key_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="x" * 40, encryption_keys="not-a-key")
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        settings.ensure_secrets()


def test_keys_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("HERALD_ENCRYPTION_KEYS", f"{new}, {old}")
    monkeypatch.setenv("HERALD_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("HERALD_ENV", "production")
    settings = Settings(data_dir=tmp_path)
    settings.ensure_secrets()
    assert settings.encryption_key_values() == [new, old]


def test_embedded_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url=None, database_url=None)
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'herald.db').resolve()}"
    assert settings.effective_broker_url == f"redis+socket://{(tmp_path / 'redis.sock').resolve()}"
    assert settings.effective_result_backend_url == settings.effective_broker_url
    assert settings.visibility_timeout > settings.task_time_limit
