"""SQL of the incidents area (incidents, their timeline and messages, assignments). Plain asyncpg.

Every function takes the connection, so callers decide the transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

INCIDENT_COLS = """
    i.id, i.type, i.priority, i.status, i.title, i.description, i.address, i.reporter,
    ST_AsGeoJSON(i.geom, 7)::json AS location,
    ST_X(ST_PointOnSurface(i.geom)) AS lon, ST_Y(ST_PointOnSurface(i.geom)) AS lat,
    i.h3, i.team_id, i.required_skills, i.created_by, i.created_at, i.updated_at,
    i.acknowledged_at, i.dispatched_at, i.en_route_at, i.on_scene_at, i.resolved_at, i.closed_at,
    i.cancelled_at
"""

ASSIGNMENT_COLS = """
    a.id, a.incident_id, a.responder_id, a.resource_id, a.status, a.created_by, a.created_at,
    a.updated_at, a.accepted_at, a.en_route_at, a.arrived_at, a.declined_at, a.released_at
"""

MESSAGE_COLS = """
    e.id, e.client_id, e.incident_id, e.actor_id AS author_id,
    coalesce(u.username, e.body->>'actor') AS author, e.body->>'text' AS text, e.created_at
"""

UPDATABLE = frozenset({"type", "priority", "title", "description", "address", "reporter", "team_id", "required_skills"})


async def get_incident(
    conn: asyncpg.Connection, incident_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    sql = f"SELECT {INCIDENT_COLS} FROM incidents i WHERE i.id = $1"
    return await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), incident_id)


async def insert_incident(conn: asyncpg.Connection, values: dict[str, Any]) -> asyncpg.Record | None:
    """Insert; None when ``values['id']`` already exists (a client retry)."""
    row = await conn.fetchrow(
        "INSERT INTO incidents (id, type, priority, title, description, address, reporter, geom, h3, "
        "team_id, created_by, required_skills) "
        "VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, ST_GeomFromWKB($8, 4326), $9, $10, "
        "$11, $12) ON CONFLICT (id) DO NOTHING RETURNING id",
        values.get("id"),
        values["type"],
        values["priority"],
        values["title"],
        values["description"],
        values["address"],
        values["reporter"],
        values["wkb"],
        values["h3"],
        values["team_id"],
        values["created_by"],
        values["required_skills"],
    )
    return None if row is None else await get_incident(conn, row["id"])


async def update_incident(
    conn: asyncpg.Connection,
    incident_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    status: str | None = None,
    stamps: list[str] = (),  # type: ignore[assignment]
) -> asyncpg.Record:
    sets, args = ["updated_at = now()"], [incident_id]
    for col, value in changes.items():
        if col == "wkb":
            args.append(value)
            sets.append(f"geom = ST_GeomFromWKB(${len(args)}, 4326)")
        elif col == "h3" or col in UPDATABLE:
            args.append(value)
            sets.append(f"{col} = ${len(args)}")
        else:
            raise KeyError(col)
    if status is not None:
        args.append(status)
        sets.append(f"status = ${len(args)}")
    sets.extend(f"{s} = coalesce({s}, now())" for s in stamps)
    await conn.execute(f"UPDATE incidents SET {', '.join(sets)} WHERE id = $1", *args)
    row = await get_incident(conn, incident_id)
    assert row is not None
    return row


async def add_event(
    conn: asyncpg.Connection,
    incident_id: uuid.UUID,
    kind: str,
    actor_id: uuid.UUID | None,
    body: dict[str, Any],
    client_id: uuid.UUID | None = None,
) -> asyncpg.Record | None:
    """One timeline row; None when ``client_id`` was stored before (a client retry)."""
    return await conn.fetchrow(
        "INSERT INTO incident_events (incident_id, kind, actor_id, body, client_id) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (client_id) WHERE client_id IS NOT NULL DO NOTHING RETURNING id, created_at",
        incident_id,
        kind,
        actor_id,
        body,
        client_id,
    )


async def timeline(
    conn: asyncpg.Connection, incident_id: uuid.UUID, *, after: int, limit: int, kinds: tuple[str, ...] = ()
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT e.id, e.incident_id, e.kind, e.actor_id, coalesce(u.username, e.body->>'actor') AS actor, "
        "e.body, e.created_at FROM incident_events e LEFT JOIN users u ON u.id = e.actor_id "
        "WHERE e.incident_id = $1 AND e.id > $2 AND (cardinality($4::text[]) = 0 OR e.kind = ANY($4)) "
        "ORDER BY e.id LIMIT $3",
        incident_id,
        after,
        limit,
        list(kinds),
    )


async def messages(conn: asyncpg.Connection, incident_id: uuid.UUID, *, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {MESSAGE_COLS} FROM incident_events e LEFT JOIN users u ON u.id = e.actor_id "
        "WHERE e.incident_id = $1 AND e.kind = 'message' AND e.id > $2 ORDER BY e.id LIMIT $3",
        incident_id,
        after,
        limit,
    )


async def message_by_client_id(conn: asyncpg.Connection, client_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {MESSAGE_COLS}, e.kind FROM incident_events e LEFT JOIN users u ON u.id = e.actor_id "
        "WHERE e.client_id = $1",
        client_id,
    )


async def message_by_id(conn: asyncpg.Connection, event_id: int) -> asyncpg.Record:
    return await conn.fetchrow(
        f"SELECT {MESSAGE_COLS} FROM incident_events e LEFT JOIN users u ON u.id = e.actor_id WHERE e.id = $1",
        event_id,
    )


async def assigned_responder_ids(conn: asyncpg.Connection, incident_id: uuid.UUID) -> list[str]:
    """Responders concerned by an incident (every assignment except declined ones)."""
    rows = await conn.fetch(
        "SELECT DISTINCT responder_id FROM assignments WHERE incident_id = $1 AND responder_id IS NOT NULL "
        "AND status <> 'declined'",
        incident_id,
    )
    return sorted(str(r["responder_id"]) for r in rows)


async def is_assigned(conn: asyncpg.Connection, incident_id: uuid.UUID, responder_id: uuid.UUID | None) -> bool:
    if responder_id is None:
        return False
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM assignments WHERE incident_id = $1 AND responder_id = $2)",
            incident_id,
            responder_id,
        )
    )


async def get_assignment(
    conn: asyncpg.Connection, assignment_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    sql = f"SELECT {ASSIGNMENT_COLS} FROM assignments a WHERE a.id = $1"
    return await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), assignment_id)


async def incident_assignments(conn: asyncpg.Connection, incident_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ASSIGNMENT_COLS} FROM assignments a WHERE a.incident_id = $1 ORDER BY a.created_at, a.id",
        incident_id,
    )


async def set_assignment_status(
    conn: asyncpg.Connection, assignment_id: uuid.UUID, status: str, stamps: list[str]
) -> asyncpg.Record:
    sets = ", ".join(["status = $2", "updated_at = now()", *(f"{s} = coalesce({s}, now())" for s in stamps)])
    await conn.execute(f"UPDATE assignments SET {sets} WHERE id = $1", assignment_id, status)
    row = await get_assignment(conn, assignment_id)
    assert row is not None
    return row


async def free_units(conn: asyncpg.Connection, responder_ids: list[uuid.UUID], resource_ids: list[uuid.UUID]) -> None:
    """Busy units without another active assignment become available again."""
    active = "('pending','accepted','en_route','on_scene')"
    if responder_ids:
        await conn.execute(
            "UPDATE responders r SET status = 'available', updated_at = now() WHERE r.id = ANY($1) "
            f"AND r.status = 'busy' AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.responder_id = r.id "
            f"AND a.status IN {active})",
            responder_ids,
        )
    if resource_ids:
        await conn.execute(
            "UPDATE resources r SET status = 'available', updated_at = now() WHERE r.id = ANY($1) "
            f"AND r.status = 'in_use' AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.resource_id = r.id "
            f"AND a.status IN {active})",
            resource_ids,
        )


async def end_arrival_fences(conn: asyncpg.Connection, assignment_ids: list[uuid.UUID]) -> None:
    if assignment_ids:
        await conn.execute(
            "UPDATE geofences SET deleted_at = now(), updated_at = now(), version = version + 1 "
            "WHERE deleted_at IS NULL AND meta->>'assignment_id' = ANY($1::text[])",
            [str(a) for a in assignment_ids],
        )
