"""Assignments of responders and resources to incidents, and the unit status that follows them.

Creating an assignment makes the responder ``busy`` (the resource ``in_use``) in the same
transaction, with a conditional update, so two coordinators cannot both assign one unit; a partial
unique index backs that up. Accepting one draws an arrival geofence around the incident for the
fence engine; arriving, declining or releasing removes it again.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import shapely
from shapely.geometry import Point

from geo.geodesy import buffer_geometry_m, point_buffer

from .. import audit
from ..errors import Conflict, Forbidden, IllegalTransition, InvalidInput, NotFound
from ..notifications import repository as notifications
from . import repository as repo
from . import service, states
from .scope import Work
from .structs import Assignment, AssignmentCreate


def to_assignment(row: asyncpg.Record) -> Assignment:
    return Assignment(**dict(row))


async def create(work: Work, incident_id: uuid.UUID, data: AssignmentCreate) -> Assignment:
    if (data.responder_id is None) == (data.resource_id is None):
        raise InvalidInput(
            "name exactly one unit",
            errors=[{"field": "responder_id", "message": "give responder_id or resource_id (exactly one)"}],
        )
    incident = await work.changeable_incident(incident_id)
    if incident["status"] not in states.OPEN:
        raise Conflict(f"incident is {incident['status']}; nothing can be assigned to it")
    if data.responder_id is not None:
        await _claim(work.conn, "responders", data.responder_id, "available", "busy", "responder")
        await work.responders_changed([data.responder_id])
    else:
        await _claim(work.conn, "resources", data.resource_id, "available", "in_use", "resource")  # type: ignore[arg-type]
    try:
        row = await work.conn.fetchrow(
            "INSERT INTO assignments (id, incident_id, responder_id, resource_id, created_by) "
            "VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5) RETURNING id",
            data.id,
            incident_id,
            data.responder_id,
            data.resource_id,
            work.actor_id,
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("this unit already has an active assignment, or the assignment id is taken") from exc
    assignment = await repo.get_assignment(work.conn, row["id"])
    await _event(work, assignment, "created", note=data.note)  # type: ignore[arg-type]
    await audit.record(
        work.conn,
        work.principal,
        "assignment.create",
        "assignment",
        row["id"],
        {"incident_id": str(incident_id), "responder_id": _s(data.responder_id), "resource_id": _s(data.resource_id)},
    )
    if data.responder_id is not None:
        note = await notifications.for_assignment(work.conn, data.responder_id, row["id"], incident)
        work.changes[("alerts", f"notification:{note['id']}")] = notifications.change(note)
    incident = await service.advance(work, incident, "dispatched", reason="unit assigned")
    await work.incident_changed(incident)
    return to_assignment(assignment)  # type: ignore[arg-type]


async def _claim(conn: asyncpg.Connection, table: str, unit_id: uuid.UUID, free: str, taken: str, what: str) -> None:
    claimed = await conn.fetchval(
        f"UPDATE {table} SET status = $3, updated_at = now() WHERE id = $1 AND status = $2 RETURNING id",
        unit_id,
        free,
        taken,
    )
    if claimed is None:
        status = await conn.fetchval(f"SELECT status FROM {table} WHERE id = $1", unit_id)
        if status is None:
            raise NotFound(f"no such {what}")
        raise Conflict(f"{what} is {status}", extra={"unit_status": status})


async def act(
    work: Work, assignment_id: uuid.UUID, action: str, *, note: str = "", reason: str | None = None
) -> Assignment:
    target = states.ASSIGNMENT_ACTIONS[action]
    row = await repo.get_assignment(work.conn, assignment_id, lock=True)
    if row is None:
        raise NotFound("no such assignment")
    incident = await _authorise(work, row, action)
    if not states.can_move_assignment(row["status"], target):
        raise IllegalTransition(
            f"an assignment cannot go from {row['status']} to {target}",
            extra={
                "from": row["status"],
                "to": target,
                "allowed": sorted(states.ASSIGNMENT_TRANSITIONS[row["status"]]),
            },
        )
    stamps = [states.ASSIGNMENT_STAMP[target]]
    if target in ("en_route", "on_scene"):
        stamps.append("accepted_at")
    row = await repo.set_assignment_status(work.conn, assignment_id, target, stamps)
    await _event(work, row, target, note=note or None, reason=reason)
    await audit.record(work.conn, work.principal, f"assignment.{action}", "assignment", assignment_id, {"to": target})
    if target in ("declined", "released"):
        await repo.free_units(work.conn, _ids(row["responder_id"]), _ids(row["resource_id"]))
        await work.responders_changed([row["responder_id"]])
        await repo.end_arrival_fences(work.conn, [assignment_id])
    elif target == "on_scene":
        await repo.end_arrival_fences(work.conn, [assignment_id])
    elif target == "accepted" and row["responder_id"] is not None:
        await create_arrival_fence(work, incident, row)
    floor = states.INCIDENT_FLOOR_FOR_ASSIGNMENT.get(target)
    if floor is not None:
        incident = await service.advance(work, incident, floor, reason=f"assignment {target}")
    await work.incident_changed(incident)
    return to_assignment(row)


async def _authorise(work: Work, row: asyncpg.Record, action: str) -> asyncpg.Record:
    """Staff in scope may do anything; a responder may act on their own assignment, except release it."""
    incident = await work.visible_incident(row["incident_id"], lock=True)
    view = await work.view()
    if view.is_staff:
        return incident
    own = row["responder_id"] is not None and row["responder_id"] == work.principal.responder_id
    if not own:
        raise Forbidden("not your assignment")
    if action == "release":
        raise Forbidden("a coordinator releases assignments")
    return incident


async def get(work: Work, assignment_id: uuid.UUID) -> Assignment:
    row = await repo.get_assignment(work.conn, assignment_id)
    if row is None:
        raise NotFound("no such assignment")
    await work.visible_incident(row["incident_id"])
    return to_assignment(row)


async def list_for_incident(work: Work, incident_id: uuid.UUID) -> list[Assignment]:
    await work.visible_incident(incident_id)
    return [to_assignment(r) for r in await repo.incident_assignments(work.conn, incident_id)]


async def create_arrival_fence(work: Work, incident: asyncpg.Record, assignment: asyncpg.Record) -> None:
    """A geofence around the incident for this responder: the fence engine emits ``enter`` after the dwell."""
    s = work.settings.incidents
    geom = shapely.from_geojson(_json(incident["location"]))
    if isinstance(geom, Point):
        area = point_buffer(geom.x, geom.y, s.arrival_radius_m, segments=32)
    else:
        area = buffer_geometry_m(geom, s.arrival_radius_m)
    callsign = await work.conn.fetchval("SELECT callsign FROM responders WHERE id = $1", assignment["responder_id"])
    await work.conn.execute(
        "INSERT INTO geofences (name, geom, detect, dwell_s, applies_to_all, responder_ids, meta, incident_id, created_by) "
        "VALUES ($1, ST_GeomFromWKB($2, 4326), $3, $4, false, $5, $6, $7, $8)",
        f"arrival {callsign} → {incident['title']}"[:200],
        shapely.to_wkb(area),
        ["enter", "dwell"],
        s.arrival_dwell_s,
        [assignment["responder_id"]],
        {
            "purpose": "arrival",
            "incident_id": str(incident["id"]),
            "assignment_id": str(assignment["id"]),
            "radius_m": s.arrival_radius_m,
        },
        incident["id"],
        work.actor_id,
    )


async def _event(work: Work, row: asyncpg.Record, status: str, **extra: Any) -> None:
    await repo.add_event(
        work.conn,
        row["incident_id"],
        f"assignment.{status}",
        work.actor_id,
        work.event_body(
            assignment_id=str(row["id"]),
            responder_id=_s(row["responder_id"]),
            resource_id=_s(row["resource_id"]),
            status=row["status"],
            **extra,
        ),
    )


def _json(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _s(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _ids(value: uuid.UUID | None) -> list[uuid.UUID]:
    return [] if value is None else [value]
