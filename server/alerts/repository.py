"""SQL of the alerts table (plain asyncpg; every function takes the connection)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import shapely
from shapely.geometry.base import BaseGeometry

_COLUMNS = (
    'id, identifier, sender, status, cap_status, msg_type, "references", supersedes_id, content, '
    "cap_xml, sent_at, effective, expires, created_by, approved_by, created_at, updated_at, "
    "ST_AsBinary(area) AS area_wkb"
)


def area_of(row: asyncpg.Record) -> BaseGeometry | None:
    return shapely.from_wkb(row["area_wkb"]) if row["area_wkb"] is not None else None


async def insert_alert(
    conn: asyncpg.Connection,
    *,
    identifier: str,
    sender: str,
    cap_status: str,
    msg_type: str,
    references: list[str],
    supersedes_id: uuid.UUID | None,
    area: BaseGeometry,
    content: dict[str, Any],
    effective: datetime | None,
    expires: datetime | None,
    created_by: uuid.UUID,
    alert_id: uuid.UUID | None = None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO alerts (id, identifier, sender, cap_status, msg_type, "references", supersedes_id,
                area, content, effective, expires, created_by)
            VALUES (COALESCE($12, gen_random_uuid()), $1, $2, $3, $4, $5, $6,
                ST_SetSRID(ST_GeomFromWKB($7), 4326), $8, $9, $10, $11)
            RETURNING {_COLUMNS}""",
        identifier,
        sender,
        cap_status,
        msg_type,
        references,
        supersedes_id,
        shapely.to_wkb(area),
        content,
        effective,
        expires,
        created_by,
        alert_id,
    )


async def get_alert(conn: asyncpg.Connection, alert_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM alerts WHERE id = $1" + (" FOR UPDATE" if lock else ""), alert_id
    )


async def update_draft(
    conn: asyncpg.Connection,
    alert_id: uuid.UUID,
    *,
    cap_status: str,
    area: BaseGeometry,
    content: dict[str, Any],
    effective: datetime | None,
    expires: datetime | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""UPDATE alerts SET cap_status = $2, area = ST_SetSRID(ST_GeomFromWKB($3), 4326), content = $4,
                effective = $5, expires = $6, updated_at = now()
            WHERE id = $1 RETURNING {_COLUMNS}""",
        alert_id,
        cap_status,
        shapely.to_wkb(area),
        content,
        effective,
        expires,
    )


async def set_status(conn: asyncpg.Connection, alert_id: uuid.UUID, status: str, **extra: Any) -> asyncpg.Record:
    sets = ["status = $2", "updated_at = now()"]
    args: list[Any] = [alert_id, status]
    for name, value in extra.items():
        args.append(value)
        sets.append(f'"{name}" = ${len(args)}')
    return await conn.fetchrow(f"UPDATE alerts SET {', '.join(sets)} WHERE id = $1 RETURNING {_COLUMNS}", *args)


async def live_versions(conn: asyncpg.Connection, thread_id: str) -> list[asyncpg.Record]:
    """Sent versions of a thread that nothing has superseded or cancelled yet, oldest first."""
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM alerts WHERE content->>'thread_id' = $1 AND status = 'sent' "
        "ORDER BY sent_at, created_at",
        thread_id,
    )


async def thread_versions(conn: asyncpg.Connection, thread_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM alerts WHERE content->>'thread_id' = $1 ORDER BY created_at", thread_id
    )


async def list_alerts(
    conn: asyncpg.Connection, *, limit: int, after: tuple[datetime, uuid.UUID] | None, status: str | None
) -> list[asyncpg.Record]:
    args: list[Any] = [limit]
    where = []
    if status:
        args.append(status)
        where.append(f"status = ${len(args)}")
    if after:
        args.extend(after)
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    sql = f"SELECT {_COLUMNS} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return await conn.fetch(sql + " ORDER BY created_at DESC, id DESC LIMIT $1", *args)


async def published(conn: asyncpg.Connection, limit: int = 200) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM alerts WHERE sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT $1", limit
    )
