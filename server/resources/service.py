"""Resources: equipment and vehicles with type, capabilities, status, home station, team and a
location — a fixed point, or the latest position of an attached device (through the device's
responder link, since positions are keyed by responder)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from .. import audit
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..incidents.scope import Work
from ..incidents.service import parse_location
from ..structs import Body

STATUSES = ("available", "in_use", "maintenance", "out_of_service")
SETTABLE = ("available", "maintenance", "out_of_service")
"""``in_use`` follows assignments; it is never set by hand."""


class ResourceCreate(Body, kw_only=True):
    id: uuid.UUID | None = None
    name: str
    type: str
    capabilities: list[str] = []
    status: str = "available"
    home_station: str = ""
    team_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None
    location: dict[str, Any] | None = None
    """GeoJSON Point (e.g. the home station); a device position, when there is one, wins."""


class ResourceUpdate(Body, kw_only=True):
    name: str | None = None
    type: str | None = None
    capabilities: list[str] | None = None
    status: str | None = None
    home_station: str | None = None
    team_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None
    location: dict[str, Any] | None = None


class Resource(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    type: str
    capabilities: list[str]
    status: str
    home_station: str
    team_id: uuid.UUID | None
    device_id: uuid.UUID | None
    location: dict[str, Any] | None
    location_source: str | None
    """``device`` (latest fix of the attached device), ``fixed``, or None."""
    fix_time: datetime | None
    created_at: datetime
    updated_at: datetime


class ResourcePage(msgspec.Struct, kw_only=True):
    items: list[Resource]
    next_cursor: str | None


COLS = """
    rs.id, rs.name, rs.type, rs.capabilities, rs.status, rs.home_station, rs.team_id, rs.device_id,
    ST_AsGeoJSON(coalesce(lp.geom, rs.geom), 7)::json AS location,
    CASE WHEN lp.geom IS NOT NULL THEN 'device' WHEN rs.geom IS NOT NULL THEN 'fixed' END AS location_source,
    lp.fix_time, rs.created_at, rs.updated_at
"""
FROM = """
    FROM resources rs
    LEFT JOIN devices d ON d.id = rs.device_id AND d.revoked_at IS NULL
    LEFT JOIN latest_positions lp ON lp.responder_id = d.responder_id
"""


def _resource(row: asyncpg.Record) -> Resource:
    values = dict(row)
    values["capabilities"] = list(values["capabilities"] or [])
    return Resource(**values)


async def get_row(conn: asyncpg.Connection, resource_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLS} {FROM} WHERE rs.id = $1", resource_id)


async def _visible(work: Work, resource_id: uuid.UUID) -> asyncpg.Record:
    row = await get_row(work.conn, resource_id)
    view = await work.view()
    if row is None or (
        view.teams is not None
        and view.is_staff
        and row["team_id"] not in (view.teams or [])
        and row["team_id"] is not None
    ):
        raise NotFound("no such resource")
    return row


def _validate(values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    errors = []
    for name in ("name", "type"):
        if name in values:
            values[name] = values[name].strip()
            if not values[name] or len(values[name]) > 200:
                errors.append({"field": name, "message": "1-200 characters"})
    if "status" in values and values["status"] not in (STATUSES if creating else SETTABLE):
        errors.append({"field": "status", "message": f"must be one of {', '.join(SETTABLE)}"})
    if "capabilities" in values:
        values["capabilities"] = sorted({c.strip() for c in values["capabilities"] if c.strip()})
    if errors:
        raise InvalidInput("invalid resource", errors=errors)
    if "location" in values:
        geom = parse_location(values.pop("location"))
        if geom.geom_type != "Point":
            raise InvalidInput(
                "location must be a Point", errors=[{"field": "location.type", "message": "expected Point"}]
            )
        values["wkb"] = geom.wkb
    return values


async def _check_team(work: Work, team_id: uuid.UUID | None) -> None:
    view = await work.view()
    if view.teams is not None and (team_id is None or team_id not in view.teams):
        raise Forbidden("outside the teams you manage")


async def create(work: Work, data: ResourceCreate) -> Resource:
    values = _validate({k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}, creating=True)
    if values.get("status") == "in_use":
        raise InvalidInput("in_use follows assignments", errors=[{"field": "status", "message": "not settable"}])
    view = await work.view()
    if values.get("team_id") is None and view.teams:
        values["team_id"] = work.principal.team_id
    await _check_team(work, values.get("team_id"))
    try:
        rid = await work.conn.fetchval(
            "INSERT INTO resources (id, name, type, capabilities, status, home_station, team_id, device_id, geom) "
            "VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, ST_GeomFromWKB($9, 4326)) RETURNING id",
            values.get("id"),
            values["name"],
            values["type"],
            values.get("capabilities", []),
            values.get("status", "available"),
            values.get("home_station", ""),
            values.get("team_id"),
            values.get("device_id"),
            values.get("wkb"),
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("a resource with this id exists") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise InvalidInput(
            "unknown team or device", errors=[{"field": "team_id", "message": "no such team or device"}]
        ) from exc
    await audit.record(work.conn, work.principal, "resource.create", "resource", rid, {"name": values["name"]})
    res = _resource(await get_row(work.conn, rid))  # type: ignore[arg-type]
    return res


async def update(work: Work, resource_id: uuid.UUID, data: ResourceUpdate) -> Resource:
    row = await _visible(work, resource_id)
    values = _validate({k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}, creating=False)
    if not values:
        raise InvalidInput("nothing to change", errors=[{"field": "body", "message": "no fields given"}])
    if "status" in values and row["status"] == "in_use":
        raise Conflict("resource is in use; release its assignment first")
    if "team_id" in values:
        await _check_team(work, values["team_id"])
    sets, args = ["updated_at = now()"], [resource_id]
    for col, value in values.items():
        args.append(value)
        sets.append(f"geom = ST_GeomFromWKB(${len(args)}, 4326)" if col == "wkb" else f"{col} = ${len(args)}")
    try:
        await work.conn.execute(f"UPDATE resources SET {', '.join(sets)} WHERE id = $1", *args)
    except asyncpg.ForeignKeyViolationError as exc:
        raise InvalidInput(
            "unknown team or device", errors=[{"field": "team_id", "message": "no such team or device"}]
        ) from exc
    await audit.record(
        work.conn, work.principal, "resource.update", "resource", resource_id, {"fields": sorted(values)}
    )
    res = _resource(await get_row(work.conn, resource_id))  # type: ignore[arg-type]
    return res


async def get(work: Work, resource_id: uuid.UUID) -> Resource:
    return _resource(await _visible(work, resource_id))


async def list_resources(
    work: Work, *, status: str | None, type_: str | None, limit: int, after: uuid.UUID | None
) -> ResourcePage:
    view = await work.view()
    args: list[Any] = [limit + 1]
    where = ["TRUE"]
    if view.teams is not None and view.is_staff:
        args.append(view.teams)
        where.append(f"(rs.team_id IS NULL OR rs.team_id = ANY(${len(args)}::uuid[]))")
    if status:
        args.append(status)
        where.append(f"rs.status = ${len(args)}")
    if type_:
        args.append(type_)
        where.append(f"rs.type = ${len(args)}")
    if after:
        args.append(after)
        where.append(f"rs.id > ${len(args)}")
    rows = await work.conn.fetch(f"SELECT {COLS} {FROM} WHERE {' AND '.join(where)} ORDER BY rs.id LIMIT $1", *args)
    items = [_resource(r) for r in rows[:limit]]
    return ResourcePage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)
