"""deploy/systemd: the options the issue asks for, read from the unit files, and the units
checked by `systemd-analyze verify` (installed from Debian's packages by .ci/run in CI).

verify refuses a unit whose ExecStart binary does not exist, and the units name the
installed path /opt/herald/.venv/bin/herald. The test copies them into a temporary folder
with that path rewritten to this venv's `herald` (and the env file to a temporary one), and
verifies the copies: every other line is the shipped one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import DEPLOY, TASK_TIME_LIMIT
from tests.services import service_missing

UNITS = DEPLOY / "systemd"
SERVICES = ("herald-api.service", "herald-worker@.service", "herald-beat.service")
INSTALLED_HERALD = "/opt/herald/.venv/bin/herald"
INSTALLED_ENV = "/etc/herald/herald.env"
DATA_DIR = "/var/lib/herald"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "ReadWritePaths": DATA_DIR,
}


def read_unit(path: Path) -> dict[str, dict[str, str]]:
    """Sections of a unit file, the last value of each key (as systemd reads scalars)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path.name}: a setting before the first section"
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def stop_seconds(value: str) -> int:
    assert value.isdigit(), f"TimeoutStopSec={value}: write plain seconds"
    return int(value)


@pytest.mark.parametrize("name", SERVICES)
def test_services_are_hardened(name: str) -> None:
    service = read_unit(UNITS / name)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}"
    assert service["User"] == "herald"
    assert service["EnvironmentFile"] == INSTALLED_ENV
    assert service["ExecStart"].startswith((INSTALLED_HERALD, "/bin/sh -c"))
    assert read_unit(UNITS / name)["Unit"]["PartOf"] == "herald.target"


def test_worker_lets_pool_children_finish() -> None:
    service = read_unit(UNITS / "herald-worker@.service")["Service"]
    # mixed: SIGTERM to Celery's main process only (warm shutdown), SIGKILL to what is
    # left after TimeoutStopSec, which must outlast a task's own time limit.
    assert service["KillMode"] == "mixed"
    assert stop_seconds(service["TimeoutStopSec"]) > TASK_TIME_LIMIT
    assert "%I" in service["ExecStart"]


def test_the_target_starts_everything() -> None:
    wants = read_unit(UNITS / "herald.target")["Unit"]["Wants"].split()
    assert set(wants) == {"herald-api.service", "herald-worker@all.service", "herald-beat.service"}


def installable_copies(into: Path) -> list[Path]:
    env_file = into / "herald.env"
    env_file.write_text("HERALD_ENV=production\n")
    herald = Path(sys.executable).with_name("herald")
    assert herald.exists(), "the venv's herald entry point"
    copies = []
    for path in sorted(UNITS.iterdir()):
        text = path.read_text().replace(INSTALLED_HERALD, str(herald))
        copy = into / path.name
        copy.write_text(text.replace(INSTALLED_ENV, str(env_file)))
        copies.append(copy)
    return copies


def verify(*units: Path | str) -> str:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        service_missing("systemd-analyze", "install Debian's systemd package")
        raise AssertionError("unreachable")
    result = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}".strip()


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    copies = installable_copies(tmp_path)
    # Templates are verified through instances: "all" and one with a queue list.
    instances = [
        tmp_path / "herald-worker@all.service",
        tmp_path / "herald-worker@publishing.service",
    ]
    assert verify(*copies, *instances) == "exit 0"


def test_verify_catches_a_bad_unit(tmp_path: Path) -> None:
    # The check can fail: a misspelt directive is reported (verify prints it, exit 0 or not).
    copies = installable_copies(tmp_path)
    api = tmp_path / "herald-api.service"
    api.write_text(api.read_text().replace("TimeoutStopSec=30", "TimeoutStopSec=30\nKilMode=mixed"))
    outcome = verify(*copies)
    assert "Unknown key" in outcome and "KilMode" in outcome
