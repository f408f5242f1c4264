"""fences: fillfactor 50 on fence_positions and 70 on fence_states (HOT updates)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 01:55:00

The fence evaluator upserts every evaluated responder's last position (at 10,000 fixes/s, each of
10,000 rows about once a second) and the visits that change. With full pages every update put the
new row version on another page and added a primary-key entry, so the table and its index bloated
between vacuums and each upsert grew slower (2,500-row upserts took 60-110 ms after a few seconds,
about 30 ms with free room on the page: ~92% of updates then are HOT). Both tables are small (one
row per responder, one per open visit), so the room costs little. Only pages written from now on
get the room; existing rows move as they are updated.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE fence_positions SET (fillfactor = 50)")
    op.execute("ALTER TABLE fence_states SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE fence_states RESET (fillfactor)")
    op.execute("ALTER TABLE fence_positions RESET (fillfactor)")
