"""SQL for users' credentials and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg


async def user_by_username(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT u.id, u.username, u.password_hash, u.role, u.team_id, u.is_active, r.id AS responder_id "
        "FROM users u LEFT JOIN responders r ON r.user_id = u.id WHERE u.username = $1",
        username,
    )


async def user_by_id(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT u.id, u.username, u.display_name, u.email, u.role, u.team_id, u.is_active, "
        "u.created_at, r.id AS responder_id FROM users u LEFT JOIN responders r ON r.user_id = u.id "
        "WHERE u.id = $1",
        user_id,
    )


async def store_refresh(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, family_id: uuid.UUID, token_hash: str, ttl_s: int
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        user_id,
        family_id,
        token_hash,
        datetime.now(UTC) + timedelta(seconds=ttl_s),
    )


async def claim_refresh(conn: asyncpg.Connection, token_hash: str) -> dict[str, Any] | None:
    """Lock the token row; return it with its state. The caller decides (rotate or revoke)."""
    row = await conn.fetchrow(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens "
        "WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )
    return dict(row) if row else None


async def mark_used(conn: asyncpg.Connection, token_id: uuid.UUID) -> None:
    await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", token_id)


async def revoke_family(conn: asyncpg.Connection, family_id: uuid.UUID) -> int:
    result = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )
    return int(result.split()[-1])
