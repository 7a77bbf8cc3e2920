"""Where the deployment files are, and the settings' defaults they must agree with."""

from __future__ import annotations

from pathlib import Path

from herald.cli.server import COMMANDS
from herald.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# The task limit the stop timeouts must exceed (a worker stopped before its task's own limit
# would cut a delivery short).
TASK_TIME_LIMIT: int = Settings.model_fields["task_time_limit"].default
# The `herald` subcommands a container or unit may run.
HERALD_COMMANDS = frozenset(command.__name__ for command in COMMANDS)
# Settings that hold a secret (or a URL that carries a password): never written inline.
SECRET_SETTINGS = frozenset(
    {
        "HERALD_DATABASE_URL",
        "HERALD_BROKER_URL",
        "HERALD_RESULT_BACKEND_URL",
        "HERALD_SECRET_KEY",
        "HERALD_ENCRYPTION_KEYS",
    }
)
