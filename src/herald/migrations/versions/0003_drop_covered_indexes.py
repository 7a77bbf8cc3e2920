"""drop the workspace_id indexes that a longer index already leads

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 07:40:00.000000

``channels``, ``posts`` and ``jobs`` each had an index on ``workspace_id`` alone next to
one that starts with it (the unique ``(workspace_id, name)``, ``ix_posts_workspace_created``
and ``ix_jobs_workspace_state``). Both databases use the longer one for every lookup and
cascade by workspace; the short one only cost a B-tree write with every insert.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERED = (
    ("channels", "ix_channels_workspace_id"),
    ("posts", "ix_posts_workspace_id"),
    ("jobs", "ix_jobs_workspace_id"),
)


def upgrade() -> None:
    for table, index in COVERED:
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for table, index in COVERED:
        op.create_index(index, table, ["workspace_id"], unique=False)
