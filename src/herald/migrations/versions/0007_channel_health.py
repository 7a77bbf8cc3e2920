"""channel health: when each channel was last checked, its result, and its next check

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 19:50:00.000000

``checked_at``, ``last_check_ok`` and ``last_check_error`` record the last check of a
channel's credentials (a person's test or the health pass); ``next_check_at`` is when the
health pass checks it next, indexed with the state for the pass's claim. Existing
channels start with no ``next_check_at``: the pass gives each its place in the period
(by a hash of its id) the first time it runs, so they are not all checked at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import herald.core.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("checked_at", herald.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("next_check_at", herald.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("last_check_ok", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("last_check_error", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_channels_state_next_check", ["state", "next_check_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_index("ix_channels_state_next_check")
        batch_op.drop_column("last_check_error")
        batch_op.drop_column("last_check_ok")
        batch_op.drop_column("next_check_at")
        batch_op.drop_column("checked_at")
