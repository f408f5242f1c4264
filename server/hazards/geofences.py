"""SQL for coordinator-drawn geofences (soft delete); each write notifies the fence evaluator."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from shapely.geometry.base import BaseGeometry

from .repository import notify
from .shapes import wkb

GEOFENCE_COLS = (
    "g.id, g.name, ST_AsGeoJSON(g.geom)::jsonb AS geometry, g.detect, g.dwell_s, g.hysteresis_m, "
    "g.applies_to_all, g.team_ids, g.responder_ids, g.meta, g.incident_id, g.valid_until, g.version, "
    "g.created_at, g.updated_at, g.deleted_at"
)


async def get_geofence(
    conn: asyncpg.Connection, fence_id: uuid.UUID, *, with_deleted: bool = False
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {GEOFENCE_COLS} FROM geofences g WHERE g.id = $1 AND ($2 OR g.deleted_at IS NULL)",
        fence_id,
        with_deleted,
    )
    return row


async def insert_geofence(conn: asyncpg.Connection, geom: BaseGeometry, f: dict[str, Any]) -> asyncpg.Record:
    fence_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO geofences (name, geom, detect, dwell_s, hysteresis_m, applies_to_all, team_ids, responder_ids, "
        "meta, incident_id, valid_until, created_by) "
        "VALUES ($1, ST_GeomFromWKB($2, 4326), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        f["name"],
        wkb(geom),
        f["detect"],
        f["dwell_s"],
        f["hysteresis_m"],
        f["applies_to_all"],
        f["team_ids"],
        f["responder_ids"],
        f["meta"],
        f.get("incident_id"),
        f.get("valid_until"),
        f.get("created_by"),
    )
    await notify(conn, "geofence", fence_id)
    row = await get_geofence(conn, fence_id)
    assert row is not None
    return row


_UPDATABLE = (
    "name", "detect", "dwell_s", "hysteresis_m", "applies_to_all", "team_ids", "responder_ids", "meta",
    "incident_id", "valid_until",
)  # fmt: skip


async def update_geofence(
    conn: asyncpg.Connection, fence_id: uuid.UUID, changes: dict[str, Any], geom: BaseGeometry | None
) -> asyncpg.Record | None:
    keys = [k for k in changes if k in _UPDATABLE]
    sets = [f"{k} = ${i + 2}" for i, k in enumerate(keys)]
    args: list[Any] = [changes[k] for k in keys]
    if geom is not None:
        args.append(wkb(geom))
        sets.append(f"geom = ST_GeomFromWKB(${len(args) + 1}, 4326)")
    sets += ["version = version + 1", "updated_at = clock_timestamp()"]
    found = await conn.fetchval(
        f"UPDATE geofences SET {', '.join(sets)} WHERE id = $1 AND deleted_at IS NULL RETURNING id", fence_id, *args
    )
    if found is None:
        return None
    await notify(conn, "geofence", fence_id)
    return await get_geofence(conn, fence_id)


async def delete_geofence(conn: asyncpg.Connection, fence_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "UPDATE geofences SET deleted_at = now(), updated_at = clock_timestamp() WHERE id = $1 AND deleted_at IS NULL "
        "RETURNING id",
        fence_id,
    )
    if found is not None:
        await notify(conn, "geofence", fence_id)
    return found is not None


async def list_geofences(conn: asyncpg.Connection, *, limit: int, after: str | None) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {GEOFENCE_COLS} FROM geofences g WHERE g.deleted_at IS NULL AND ($2::uuid IS NULL OR g.id > $2) "
        "ORDER BY g.id LIMIT $1",
        limit,
        uuid.UUID(after) if after else None,
    )
    return rows
