"""incidents: one GIN index on (search, created_at) for rare searches listed newest first

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 00:30:00

A rare search is served from the GIN index (see ``server/incidents/search.py``): first the matches
created since a time expected to hold a page of them, then older ones only if needed. With
``created_at`` inside the same GIN index (``btree_gin``, a trusted extension the database owner may
create), the index itself keeps only the matches in that window, so a phrase whose words are common
rechecks a window's worth of rows instead of every row holding its words. The index serves plain
``search @@`` queries as the old one did, which is dropped.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.create_index(
        "incidents_search_created_idx", "incidents", ["search", "created_at"], unique=False, postgresql_using="gin"
    )
    op.drop_index("incidents_search_idx", table_name="incidents", postgresql_using="gin")


def downgrade() -> None:
    op.create_index("incidents_search_idx", "incidents", ["search"], unique=False, postgresql_using="gin")
    op.drop_index("incidents_search_created_idx", table_name="incidents", postgresql_using="gin")
    # btree_gin stays: other objects may use it, and it is harmless
