"""The `herald` command as a user runs it: a real process against the test database,
with its output captured, or on a pseudo-terminal of its own."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select as sql_select

from herald.channels.schemas import ChannelCreate
from herald.channels.service import create_channel
from herald.core.db import session_scope
from herald.core.security import verify_password
from herald.core.settings import get_settings
from herald.jobs.models import Job, JobState
from herald.posts.schemas import PostCreate
from herald.posts.service import create_post
from herald.users.models import Role, User
from herald.users.principal import default_principal
from herald.users.service import create_user
from tests.workers import wait_for

# A command is thin (parse, call a service, print), and the services are tested on both
# backends in their own folders: a command's test runs on SQLite (the default) alone, each
# `herald` it starts costing a second or more of start-up. One test in test_users.py keeps
# both, for a command's own process on PostgreSQL.
ON_SQLITE = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)


def herald_env() -> dict[str, str]:
    settings = get_settings()
    return {
        **os.environ,
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.effective_database_url,
    }


def herald(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald", *args],
        capture_output=True,
        text=True,
        env=herald_env(),
        input=stdin,
        timeout=60,
        check=False,
    )


# What `herald user create`, `herald channel add --platform folder` and `herald post create`
# leave (each tested as a command in its own test), written in this process for the tests
# that only need them there: a `herald` costs a second or more of start-up.


def given_user(email: str, *, admin: bool = False, workspace: str | None = None) -> None:
    with session_scope() as session:
        role = Role.ADMIN if admin else Role.MEMBER
        create_user(session, email=email, role=role, workspace_name=workspace)


def given_folder_channel(name: str, path: Path, *, workspace: str | None = None) -> None:
    with session_scope() as session:
        body = ChannelCreate(platform="folder", name=name, credentials={"path": str(path)})
        create_channel(session, default_principal(session, workspace), body)


def given_post(title: str) -> str:
    with session_scope() as session:
        return str(create_post(session, default_principal(session), PostCreate(title=title)).id)


def password_works(email: str, password: str) -> bool:
    with session_scope() as session:
        stored = session.scalar(sql_select(User.password_hash).where(User.email == email))
    assert stored is not None, f"no user {email}"
    return verify_password(password, stored)


class Terminal:
    """A command on a pseudo-terminal of its own, as when a person types at it."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()

        def take_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # /dev/tty is this pty, as getpass expects
            # Ctrl-C works, as for a command a shell runs in the foreground. An ignored
            # SIGINT is inherited: run in the background by a script (no job control, as
            # CI may be), the suite ignores it, and so would the command, until a timeout.
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "herald", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=herald_env(),
            preexec_fn=take_terminal,  # noqa: PLW1509 - the test process forks nothing else
        )
        os.close(slave)
        self.output = ""

    def expect(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.output!r}"
            if select.select([self.master], [], [], left)[0]:
                self.output += self._read()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        while select.select([self.master], [], [], 0)[0] and (chunk := self._read()):
            self.output += chunk
        os.close(self.master)
        return code

    def _read(self) -> str:
        try:
            return os.read(self.master, 4096).decode(errors="replace")
        except OSError:  # EIO: the other side is closed
            return ""


def _pending(kind: str) -> str | None:
    with session_scope() as session:
        query = sql_select(Job.id).where(Job.kind == kind, Job.state == JobState.PENDING)
        return session.scalars(query).first()


def follow(kind: str, task: Callable[[str], Any], *args: str) -> subprocess.CompletedProcess[str]:
    """``herald <args>`` starts a job of ``kind`` and follows it; run the job meanwhile."""
    command = subprocess.Popen(
        [sys.executable, "-m", "herald", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=herald_env(),
    )
    try:
        job_id = wait_for(lambda: _pending(kind), 30, 0.05, f"a {kind} job")
        assert job_id is not None
        task(job_id)
        stdout, stderr = command.communicate(timeout=60)
    finally:
        command.kill()
        command.wait()
    return subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr)
