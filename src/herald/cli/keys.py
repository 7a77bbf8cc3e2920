"""`herald keys`: the keys channel credentials are encrypted with."""

from __future__ import annotations

import sys

import typer

from herald.cli._common import out

app = typer.Typer(help="Encryption keys for channel credentials.", no_args_is_help=True)


@app.command("generate")
def keys_generate() -> None:
    """Print a new encryption key (put it first in HERALD_ENCRYPTION_KEYS to rotate)."""
    from cryptography.fernet import Fernet  # noqa: PLC0415 - start-up (see _common)

    sys.stdout.write(Fernet.generate_key().decode() + "\n")


@app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every channel's credentials with the first (newest) key."""
    from herald.channels.service import rotate_credentials  # noqa: PLC0415 - start-up (see _common)
    from herald.core.db import session_scope  # noqa: PLC0415 - start-up (see _common)

    with session_scope() as session:
        count = rotate_credentials(session)
    out.print(f"Re-encrypted the credentials of {count} channel(s) with the newest key.")
