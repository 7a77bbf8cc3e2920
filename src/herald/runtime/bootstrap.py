"""What `herald up` does around starting its processes: migrate first, and create the first
admin once everything answers (so its one-time password is shown when it can be used).

Both run in a short-lived child (``python -m herald.runtime.bootstrap``), not in the
supervisor: the supervisor lives as long as Herald does, and the ORM, Alembic and the
password hasher these steps load would stay in its memory for nothing (about 85 MB of
RSS, measured by bench/cli_startup.py). The child is told the supervisor's database and
data directory, and answers on its stdout in JSON; what went wrong comes back as a
:class:`~herald.runtime.processes.Failure` carrying its one-line reason.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any

from herald.core.exceptions import HeraldException
from herald.core.settings import get_settings
from herald.runtime.processes import Failure

log = logging.getLogger(__name__)

FIRST_ADMIN_EMAIL = "admin@herald.localhost"
STEP_TIMEOUT = 600.0  # a migration of a large database may take minutes


def prepare() -> None:
    """Bring the database schema to head before any process uses it."""
    _in_child("prepare")


def create_first_admin() -> tuple[str, str] | None:
    """With no user at all, create an admin and return its login, once; otherwise None."""
    login = _in_child("first-admin")
    return None if login is None else (str(login[0]), str(login[1]))


def _in_child(step: str) -> Any:
    settings = get_settings()
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": settings.effective_database_url,
        "HERALD_DATA_DIR": str(settings.data_dir.resolve()),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "herald.runtime.bootstrap", step],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Failure(f"{step} did not finish within {STEP_TIMEOUT:g} s") from None
    for line in done.stderr.splitlines():  # its log (the migrations run) joins the supervisor's
        if line.strip():
            log.info("%s: %s", step, line)
    lines = done.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if done.returncode != 0 or "result" not in answer:
        reason = answer.get("error") or (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Failure(f"could not {step.replace('-', ' ')} the database: {reason}")
    return answer["result"]


def _prepare() -> None:
    from herald.core.migrate import upgrade  # noqa: PLC0415 - in the child only (see above)

    upgrade()


def _first_admin() -> tuple[str, str] | None:
    from herald.core.db import session_scope  # noqa: PLC0415 - in the child only (see above)
    from herald.users.models import Role  # noqa: PLC0415 - in the child only (see above)
    from herald.users.service import count_users, create_user  # noqa: PLC0415 - in the child

    with session_scope() as session:
        if count_users(session):
            return None
        user, password = create_user(
            session, email=FIRST_ADMIN_EMAIL, role=Role.ADMIN, workspace_name=None
        )
        return user.email, password


def main(argv: list[str]) -> int:
    steps = {"prepare": _prepare, "first-admin": _first_admin}
    if len(argv) != 1 or argv[0] not in steps:
        sys.stderr.write(f"usage: python -m herald.runtime.bootstrap {'|'.join(steps)}\n")
        return 2
    from herald.core.logging import configure_logging  # noqa: PLC0415 - in the child only

    configure_logging(get_settings().log_level)
    try:
        result = steps[argv[0]]()
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError  # noqa: PLC0415 - in the child only (see above)

        if isinstance(exc, DBAPIError):
            problem = str(exc.orig).strip()
        elif isinstance(exc, HeraldException | OSError):
            problem = str(getattr(exc, "message", None) or exc)
        else:
            raise  # a bug: the traceback goes to stderr, its last line to the supervisor
        sys.stdout.write(json.dumps({"error": problem.splitlines()[0] if problem else "?"}) + "\n")
        return 1
    sys.stdout.write(json.dumps({"result": result}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
