#!/bin/sh
# Until the first release, the schema lives in one migration (0001): regenerate it from
# the models after changing them. After a release, add a new revision instead.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f src/herald/migrations/versions/0001_initial_schema.py
uv run python -c "
from alembic import command
from herald.core.migrate import alembic_config
command.revision(alembic_config('sqlite:///$tmp/gen.db'), message='initial schema', autogenerate=True, rev_id='0001')
"
sed -i 's/^Revises: $/Revises:/' src/herald/migrations/versions/0001_initial_schema.py
uv run ruff format -q src/herald/migrations
rm -rf "$tmp"
