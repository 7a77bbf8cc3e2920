"""`herald backup`: the commands an operator types, in their own processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.core.settings import get_settings
from tests.cli.runner import ON_SQLITE, given_user, herald, herald_env

pytestmark = pytest.mark.integration  # `herald` processes on the real database


@pytest.fixture
def backups_dir() -> Iterator[Path]:
    archives = get_settings().backups_dir
    yield archives
    shutil.rmtree(archives, ignore_errors=True)


@ON_SQLITE
def test_create_list_verify_restore_prune(
    db_backend: str, tmp_path: Path, backups_dir: Path
) -> None:
    given_user("ann@example.com")
    created = herald("backup", "create", "--json")
    assert created.returncode == 0, created.stderr
    name = json.loads(created.stdout)["name"]

    listed = herald("backup", "list", "--json")
    assert [(b["name"], b["checksum"]) for b in json.loads(listed.stdout)] == [(name, "verified")]
    verified = herald("backup", "verify", name)
    assert verified.returncode == 0 and "every checksum matches" in verified.stdout

    target = tmp_path / "restored"
    dry = herald("backup", "restore", name, "--to", str(target), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Would:" in dry.stdout and "migrate from revision" in dry.stdout
    assert not target.exists()
    restored = herald("backup", "restore", name, "--to", str(target))
    assert restored.returncode == 0, restored.stderr
    assert (target / "herald.db").is_file() and (target / "secrets.json").is_file()

    nowhere = herald("backup", "restore", name)
    assert nowhere.returncode != 0 and "Say where to restore" in nowhere.stderr
    assert herald("backup", "prune", "--json").stdout.strip() == '{\n  "deleted": []\n}'

    (backups_dir / name).write_bytes(b"not gzip")
    broken = herald("backup", "verify", name)
    assert broken.returncode != 0 and "cannot be read" in broken.stderr


def test_restore_in_place_moves_the_current_data_aside(tmp_path: Path) -> None:
    """Its own data dir and SQLite file (the suite's database is not touched)."""
    data = tmp_path / "data"
    env = {**herald_env(), "HERALD_DATA_DIR": str(data)}
    env.pop("HERALD_DATABASE_URL")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "herald", *args],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    run("migrate")
    name = json.loads(run("backup", "create", "--json").stdout)["name"]
    (data / "media").mkdir(exist_ok=True)
    (data / "media" / "after.png").write_bytes(b"made after the backup")

    run("backup", "restore", name, "--in-place")
    (aside,) = data.glob("pre-restore-*")
    assert (aside / "herald.db").is_file() and (aside / "media" / "after.png").is_file()
    assert (data / "herald.db").is_file() and not (data / "media" / "after.png").exists()
