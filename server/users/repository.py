"""SQL for users and teams."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

USER_COLS = "id, username, display_name, email, role, team_id, is_active, created_at, updated_at"
TEAM_COLS = "id, name, parent_id, description, created_at"


async def list_users(
    conn: asyncpg.Connection, *, limit: int, after: str | None, team_ids: list[uuid.UUID] | None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {USER_COLS} FROM users WHERE ($1::text IS NULL OR username > $1) "
        "AND ($2::uuid[] IS NULL OR team_id = ANY($2)) ORDER BY username LIMIT $3",
        after,
        team_ids,
        limit,
    )


async def get_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {USER_COLS} FROM users WHERE id = $1", user_id)


async def create_user(conn: asyncpg.Connection, **values: Any) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO users (username, display_name, email, password_hash, role, team_id) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLS}",
        values["username"],
        values.get("display_name", ""),
        values.get("email"),
        values["password_hash"],
        values["role"],
        values.get("team_id"),
    )


async def update_user(conn: asyncpg.Connection, user_id: uuid.UUID, changes: dict[str, Any]) -> asyncpg.Record | None:
    allowed = {"display_name", "email", "role", "team_id", "is_active", "password_hash"}
    sets = [(k, v) for k, v in changes.items() if k in allowed]
    if not sets:
        return await get_user(conn, user_id)
    assignments = ", ".join(f"{k} = ${i + 2}" for i, (k, _) in enumerate(sets))
    return await conn.fetchrow(
        f"UPDATE users SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {USER_COLS}",
        user_id,
        *[v for _, v in sets],
    )


async def list_teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {TEAM_COLS} FROM teams ORDER BY name")


async def get_team(conn: asyncpg.Connection, team_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {TEAM_COLS} FROM teams WHERE id = $1", team_id)


async def create_team(
    conn: asyncpg.Connection, name: str, parent_id: uuid.UUID | None, description: str
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO teams (name, parent_id, description) VALUES ($1, $2, $3) RETURNING {TEAM_COLS}",
        name,
        parent_id,
        description,
    )


async def update_team(conn: asyncpg.Connection, team_id: uuid.UUID, changes: dict[str, Any]) -> asyncpg.Record | None:
    sets = [(k, v) for k, v in changes.items() if k in {"name", "parent_id", "description"}]
    if not sets:
        return await get_team(conn, team_id)
    assignments = ", ".join(f"{k} = ${i + 2}" for i, (k, _) in enumerate(sets))
    return await conn.fetchrow(
        f"UPDATE teams SET {assignments} WHERE id = $1 RETURNING {TEAM_COLS}", team_id, *[v for _, v in sets]
    )


async def delete_team(conn: asyncpg.Connection, team_id: uuid.UUID) -> bool:
    return (await conn.execute("DELETE FROM teams WHERE id = $1", team_id)) != "DELETE 0"


async def team_subtree(conn: asyncpg.Connection, root: uuid.UUID) -> list[uuid.UUID]:
    """The team and every team below it."""
    rows = await conn.fetch(
        "WITH RECURSIVE t AS (SELECT id FROM teams WHERE id = $1 "
        "UNION SELECT c.id FROM teams c JOIN t ON c.parent_id = t.id) SELECT id FROM t",
        root,
    )
    return [r["id"] for r in rows]
