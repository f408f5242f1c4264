"""notifications: responder_notifications (hazards a responder is inside, their assignments)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 23:25:00

One row per thing a responder should be told about: entering or leaving a hazard (written by the fence
evaluator in the transaction that writes the fence event) and a new assignment (written with the
assignment). Read newest first per responder, paged by ``(created_at, id)``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responder_notifications",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("responder_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column("ref_type", sa.Text(), nullable=True),
        sa.Column("ref_id", sa.Text(), nullable=True),
        sa.Column("severity", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('hazard_enter','hazard_exit','assignment')", name="responder_notifications_kind_check"
        ),
        sa.ForeignKeyConstraint(["responder_id"], ["responders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "responder_notifications_responder_idx",
        "responder_notifications",
        ["responder_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("responder_notifications_responder_idx", table_name="responder_notifications")
    op.drop_table("responder_notifications")
