"""alerts: web push subscriptions and generated server keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:45:00

``push_subscriptions`` holds each subscriber's browser push subscription (RFC 8030 endpoint, RFC 8291
``p256dh`` and ``auth`` keys); it replaces the unused ``subscribers.push`` column. ``server_keys`` keeps
keys the server generates for itself in development (the VAPID key pair), so every worker signs with the
same key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subscriber_id", sa.UUID(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("p256dh", sa.Text(), nullable=False),
        sa.Column("auth", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint"),
        sa.UniqueConstraint("subscriber_id"),
    )
    op.create_table(
        "server_keys",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.drop_column("subscribers", "push")


def downgrade() -> None:
    op.add_column("subscribers", sa.Column("push", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.drop_table("server_keys")
    op.drop_table("push_subscriptions")
