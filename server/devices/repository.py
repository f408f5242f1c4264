"""SQL for responders and devices."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

RESPONDER_COLS = "id, user_id, callsign, name, team_id, status, skills, phone, created_at, updated_at"
DEVICE_COLS = "id, unique_id, name, responder_id, created_at, revoked_at, last_seen_at"


async def create_responder(conn: asyncpg.Connection, **v: Any) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO responders (callsign, name, team_id, status, skills, phone, user_id) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {RESPONDER_COLS}",
        v["callsign"],
        v.get("name", ""),
        v.get("team_id"),
        v.get("status", "available"),
        v.get("skills", []),
        v.get("phone"),
        v.get("user_id"),
    )


async def get_responder(conn: asyncpg.Connection, responder_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {RESPONDER_COLS} FROM responders WHERE id = $1", responder_id)


async def update_responder(
    conn: asyncpg.Connection, responder_id: uuid.UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    sets = [(k, v) for k, v in changes.items() if k in {"callsign", "name", "team_id", "status", "skills", "phone"}]
    if not sets:
        return await get_responder(conn, responder_id)
    assignments = ", ".join(f"{k} = ${i + 2}" for i, (k, _) in enumerate(sets))
    return await conn.fetchrow(
        f"UPDATE responders SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {RESPONDER_COLS}",
        responder_id,
        *[v for _, v in sets],
    )


async def create_device(
    conn: asyncpg.Connection, *, unique_id: str, name: str, responder_id: uuid.UUID, token_hash: str
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO devices (unique_id, name, responder_id, token_hash) VALUES ($1, $2, $3, $4) "
        f"RETURNING {DEVICE_COLS}",
        unique_id,
        name,
        responder_id,
        token_hash,
    )


async def list_devices(
    conn: asyncpg.Connection,
    responder_id: uuid.UUID | None,
    team_ids: list[uuid.UUID] | None,
    limit: int,
    after: str | None,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT d.{DEVICE_COLS.replace(', ', ', d.')} FROM devices d JOIN responders r ON r.id = d.responder_id "
        "WHERE ($1::uuid IS NULL OR d.responder_id = $1) AND ($2::uuid[] IS NULL OR r.team_id = ANY($2)) "
        "AND ($3::text IS NULL OR d.unique_id > $3) ORDER BY d.unique_id LIMIT $4",
        responder_id,
        team_ids,
        after,
        limit,
    )


async def get_device(conn: asyncpg.Connection, device_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT d.{DEVICE_COLS.replace(', ', ', d.')}, d.token_hash, r.team_id FROM devices d "
        "JOIN responders r ON r.id = d.responder_id WHERE d.id = $1",
        device_id,
    )


async def revoke_device(conn: asyncpg.Connection, device_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {DEVICE_COLS}, token_hash",
        device_id,
    )
