"""Incident use cases: create, read, change (fields and status), messages and the timeline.

Every mutation runs inside a :class:`~server.incidents.scope.Work` (one transaction), writes one
timeline row per change with the actor, one audit row, and records the change to publish after commit.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import asyncpg
import msgspec
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geo.geometry import GeometryError, validate_geojson
from geo.h3index import cell_for

from .. import audit
from ..errors import Conflict, Forbidden, IllegalTransition, InvalidGeometry, InvalidInput, NotFound
from . import repository as repo
from . import states
from .scope import Work, to_incident
from .structs import (
    INCIDENT_TYPES,
    Incident,
    IncidentCreate,
    IncidentUpdate,
    Message,
    MessageCreate,
    TimelineEntry,
)

MAX_INCIDENT_AREA_KM2 = 20_000.0
MAX_TEXT = 10_000


def parse_priority(value: int | str, field: str = "priority") -> int:
    if isinstance(value, str):
        text = value.strip().upper().removeprefix("P")
        value = int(text) if text.isdigit() else 0
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
        raise InvalidInput("invalid priority", errors=[{"field": field, "message": "must be 1-4 or P1-P4"}])
    return value


def parse_location(obj: Any, field: str = "location") -> BaseGeometry:
    """A GeoJSON Point, Polygon or MultiPolygon (validated and repaired by :mod:`geo.geometry`)."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "Point":
        coords = obj.get("coordinates")
        ok = (
            isinstance(coords, list)
            and len(coords) in (2, 3)
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in coords)
        )
        if not ok or not (-180 <= coords[0] <= 180 and -90 <= coords[1] <= 90):
            raise InvalidGeometry(
                "invalid point",
                errors=[{"field": f"{field}.coordinates", "message": "must be [lon, lat] within range"}],
            )
        return Point(float(coords[0]), float(coords[1]))
    if kind in ("Polygon", "MultiPolygon"):
        try:
            return validate_geojson(obj, max_area_km2=MAX_INCIDENT_AREA_KM2).geometry
        except GeometryError as exc:
            raise InvalidGeometry(
                str(exc),
                errors=[{"field": field + f.removeprefix("geometry"), "message": m} for f, m in exc.errors],
            ) from None
    raise InvalidGeometry(
        "location must be a GeoJSON Point, Polygon or MultiPolygon",
        errors=[{"field": f"{field}.type", "message": "expected Point, Polygon or MultiPolygon"}],
    )


def geometry_values(geom: BaseGeometry) -> dict[str, Any]:
    rep = geom if isinstance(geom, Point) else geom.representative_point()
    return {"wkb": shapely.to_wkb(geom), "h3": cell_for(rep.x, rep.y)}


def _text(value: str, field: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str:
    value = value.strip()
    if (required and not value) or len(value) > max_len:
        msg = "must not be empty" if not value else f"at most {max_len} characters"
        raise InvalidInput(f"invalid {field}", errors=[{"field": field, "message": msg}])
    return value


def _type(value: str) -> str:
    if value not in INCIDENT_TYPES:
        raise InvalidInput(
            "invalid type", errors=[{"field": "type", "message": f"must be one of {', '.join(INCIDENT_TYPES)}"}]
        )
    return value


def _skills(values: list[str]) -> list[str]:
    out = sorted({v.strip() for v in values if v.strip()})
    if len(out) > 32 or any(len(v) > 64 for v in out):
        raise InvalidInput("invalid skills", errors=[{"field": "required_skills", "message": "at most 32 short names"}])
    return out


async def _check_team(work: Work, team_id: uuid.UUID | None) -> None:
    view = await work.view()
    if team_id is not None and not await work.conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM teams WHERE id = $1)", team_id
    ):
        raise InvalidInput("unknown team", errors=[{"field": "team_id", "message": "no such team"}])
    if view.teams is not None and view.is_staff and (team_id is None or team_id not in view.teams):
        raise Forbidden("outside the teams you manage")


async def create(work: Work, data: IncidentCreate) -> tuple[Incident, bool]:
    """Returns the incident and whether it was created now (False: a retry with a known client id)."""
    view = await work.view()
    values: dict[str, Any] = {
        "id": data.id,
        "type": _type(data.type),
        "priority": parse_priority(data.priority),
        "title": _text(data.title, "title", required=True, max_len=300),
        "description": _text(data.description, "description"),
        "address": _text(data.address, "address", max_len=500),
        "reporter": _text(data.reporter, "reporter", max_len=300),
        "team_id": data.team_id if data.team_id is not None else (view.principal.team_id if view.teams else None),
        "created_by": work.actor_id,
        "required_skills": _skills(data.required_skills or []),
        **geometry_values(parse_location(data.location)),
    }
    await _check_team(work, values["team_id"])
    row = await repo.insert_incident(work.conn, values)
    if row is None:
        existing = await repo.get_incident(work.conn, data.id)  # type: ignore[arg-type]
        if existing is None or existing["created_by"] != work.actor_id:
            raise Conflict("an incident with this id exists")
        return to_incident(existing), False
    await repo.add_event(work.conn, row["id"], "created", work.actor_id, work.event_body(status="reported"))
    await audit.record(work.conn, work.principal, "incident.create", "incident", row["id"], {"type": values["type"]})
    return await work.incident_changed(row), True


async def get(work: Work, incident_id: uuid.UUID) -> Incident:
    return to_incident(await work.visible_incident(incident_id))


async def update(work: Work, incident_id: uuid.UUID, data: IncidentUpdate) -> Incident:
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None and k not in ("status", "note")}
    row = await work.visible_incident(incident_id, lock=True)
    view = await work.view()
    if fields and not view.is_staff:
        raise Forbidden("responders may change only the status of an incident")
    if not fields and data.status is None:
        raise InvalidInput("nothing to change", errors=[{"field": "body", "message": "no fields given"}])
    changes: dict[str, Any] = {}
    if "type" in fields:
        changes["type"] = _type(fields["type"])
    if "priority" in fields:
        changes["priority"] = parse_priority(fields["priority"])
    for name, max_len in (("title", 300), ("description", MAX_TEXT), ("address", 500), ("reporter", 300)):
        if name in fields:
            changes[name] = _text(fields[name], name, required=name == "title", max_len=max_len)
    if "required_skills" in fields:
        changes["required_skills"] = _skills(fields["required_skills"])
    if "location" in fields:
        changes.update(geometry_values(parse_location(fields["location"])))
    if "team_id" in fields:
        await _check_team(work, fields["team_id"])
        changes["team_id"] = fields["team_id"]
    if changes:
        if row["status"] in states.TERMINAL:
            raise Conflict(f"incident is {row['status']}")
        row = await repo.update_incident(work.conn, incident_id, changes)
        shown = sorted(k for k in changes if k not in ("wkb", "h3")) + (["location"] if "wkb" in changes else [])
        await repo.add_event(
            work.conn, incident_id, "updated", work.actor_id, work.event_body(fields=shown, note=data.note)
        )
        await audit.record(work.conn, work.principal, "incident.update", "incident", incident_id, {"fields": shown})
    if data.status is not None and data.status != row["status"]:
        row = await transition(work, row, data.status, note=data.note)
    elif data.status is not None and not changes:
        raise IllegalTransition(
            f"incident is already {row['status']}", extra={"from": row["status"], "to": data.status}
        )
    return await work.incident_changed(row)


async def transition(
    work: Work, row: asyncpg.Record, target: str, *, note: str | None = None, reason: str | None = None
) -> asyncpg.Record:
    """Move ``row`` (locked) to ``target``; ending states release every active assignment."""
    current = row["status"]
    if target not in states.STATUSES:
        raise InvalidInput(
            "unknown status", errors=[{"field": "status", "message": f"must be one of {', '.join(states.STATUSES)}"}]
        )
    if not states.can_move(current, target):
        raise IllegalTransition(
            f"an incident cannot go from {current} to {target}",
            extra={"from": current, "to": target, "allowed": sorted(states.INCIDENT_TRANSITIONS[current])},
        )
    row = await repo.update_incident(work.conn, row["id"], {}, status=target, stamps=states.stamps_for(current, target))
    await repo.add_event(
        work.conn,
        row["id"],
        "status",
        work.actor_id,
        work.event_body(**{"from": current, "to": target, "note": note, "reason": reason}),
    )
    await audit.record(
        work.conn, work.principal, "incident.status", "incident", row["id"], {"from": current, "to": target}
    )
    if target in ("resolved", "closed", "cancelled"):
        await release_all(work, row["id"], reason=f"incident {target}")
    return row


async def advance(work: Work, row: asyncpg.Record, floor: str, *, reason: str) -> asyncpg.Record:
    target = states.advance(row["status"], floor)
    return row if target is None else await transition(work, row, target, reason=reason)


async def release_all(work: Work, incident_id: uuid.UUID, *, reason: str) -> None:
    rows = await work.conn.fetch(
        "UPDATE assignments SET status = 'released', released_at = now(), updated_at = now() "
        "WHERE incident_id = $1 AND status IN ('pending','accepted','en_route','on_scene') "
        "RETURNING id, responder_id, resource_id",
        incident_id,
    )
    if not rows:
        return
    await repo.free_units(
        work.conn,
        [r["responder_id"] for r in rows if r["responder_id"]],
        [r["resource_id"] for r in rows if r["resource_id"]],
    )
    await work.responders_changed(r["responder_id"] for r in rows)
    await repo.end_arrival_fences(work.conn, [r["id"] for r in rows])
    for r in rows:
        await repo.add_event(
            work.conn,
            incident_id,
            "assignment.released",
            work.actor_id,
            work.event_body(
                assignment_id=str(r["id"]),
                responder_id=str(r["responder_id"]) if r["responder_id"] else None,
                resource_id=str(r["resource_id"]) if r["resource_id"] else None,
                status="released",
                reason=reason,
            ),
        )


async def post_message(work: Work, incident_id: uuid.UUID, data: MessageCreate) -> tuple[Message, bool]:
    text = _text(data.text, "text", required=True, max_len=4000)
    await work.visible_incident(incident_id)
    if data.id is not None:
        existing = await repo.message_by_client_id(work.conn, data.id)
        if existing is not None:
            if existing["incident_id"] != incident_id or existing["kind"] != "message":
                raise Conflict("this message id is in use")
            return Message(**{k: v for k, v in dict(existing).items() if k != "kind"}), False
    stored = await repo.add_event(work.conn, incident_id, "message", work.actor_id, work.event_body(text=text), data.id)
    if stored is None:  # a concurrent retry won the race
        raise Conflict("this message id is in use")
    await audit.record(
        work.conn, work.principal, "incident.message", "incident", incident_id, {"event_id": stored["id"]}
    )
    message = Message(**dict(await repo.message_by_id(work.conn, stored["id"])))
    row = await repo.get_incident(work.conn, incident_id)
    await work.incident_changed(row)  # type: ignore[arg-type]
    return message, True


async def list_messages(work: Work, incident_id: uuid.UUID, *, after: int, limit: int) -> list[Message]:
    await work.visible_incident(incident_id)
    return [Message(**dict(r)) for r in await repo.messages(work.conn, incident_id, after=after, limit=limit)]


async def list_timeline(work: Work, incident_id: uuid.UUID, *, after: int, limit: int) -> list[TimelineEntry]:
    await work.visible_incident(incident_id)
    return [TimelineEntry(**dict(r)) for r in await repo.timeline(work.conn, incident_id, after=after, limit=limit)]


def not_found(what: str) -> NotFound:
    return NotFound(f"no such {what}")
