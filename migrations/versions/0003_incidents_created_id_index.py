"""incidents: one (created_at, id) index for newest-first lists and their keyset cursors

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 22:10:00

Incident lists (with or without a search) are ordered ``created_at DESC, id DESC`` and paged with the
cursor ``(created_at, id) < (…)``. An index on both columns serves that order and the cursor condition by a
backward walk that stops after one page; the old ``created_at`` index is a prefix of it and is dropped.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("incidents_created_id_idx", "incidents", ["created_at", "id"], unique=False)
    op.drop_index("incidents_created_idx", table_name="incidents")


def downgrade() -> None:
    op.create_index("incidents_created_idx", "incidents", ["created_at"], unique=False)
    op.drop_index("incidents_created_id_idx", table_name="incidents")
