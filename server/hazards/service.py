"""Hazard and geofence use cases: validate, write in one transaction (with audit), publish after commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from geo.fence_model import DETECTS

from .. import audit
from ..errors import InvalidInput, NotFound
from ..runtime import Runtime
from ..security import Principal
from . import geofences as fence_repo
from . import repository as repo
from .shapes import parse_shape
from .structs import Geofence, GeofenceCreate, GeofenceUpdate, Hazard, HazardCreate, HazardUpdate


def to_hazard(row: asyncpg.Record | dict[str, Any]) -> Hazard:
    d = dict(row)
    d["bbox"] = [d.pop("min_lon"), d.pop("min_lat"), d.pop("max_lon"), d.pop("max_lat")]
    for extra in ("since",):
        d.pop(extra, None)
    return Hazard(**d)


def to_geofence(row: asyncpg.Record) -> Geofence:
    return Geofence(**dict(row))


def _check_times(errors: list[dict[str, str]], valid_from: datetime | None, valid_until: datetime | None) -> None:
    for name, value in (("valid_from", valid_from), ("valid_until", valid_until)):
        if value is not None and value.tzinfo is None:
            errors.append({"field": name, "message": "must carry a UTC offset (RFC 3339)"})
    if valid_from and valid_until and valid_from.tzinfo and valid_until.tzinfo and valid_until <= valid_from:
        errors.append({"field": "valid_until", "message": "must be after valid_from"})


def _check_hazard_fields(data: HazardCreate | HazardUpdate) -> None:
    errors: list[dict[str, str]] = []
    if data.kind is not None and not (1 <= len(data.kind) <= 64):
        errors.append({"field": "kind", "message": "1-64 characters"})
    if data.severity is not None and data.severity not in repo.SEVERITIES:
        errors.append({"field": "severity", "message": f"one of {', '.join(repo.SEVERITIES)}"})
    _check_times(errors, data.valid_from, data.valid_until)
    if errors:
        raise InvalidInput("invalid hazard", errors=errors)


def _actor_id(principal: Principal) -> uuid.UUID | None:
    return principal.id if principal.kind == "user" else None


async def create_hazard(runtime: Runtime, principal: Principal, data: HazardCreate) -> Hazard:
    _check_hazard_fields(data)
    geom = parse_shape(data.geometry, data.point, data.radius_m)
    assert geom is not None
    fields = msgspec.structs.asdict(data)
    fields["created_by"] = _actor_id(principal)
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await repo.insert_hazard(conn, geom, fields)
        await audit.record(conn, principal, "hazard.create", "hazard", row["id"], {"kind": data.kind})
    runtime.bus.publish(repo.hazard_change(row))
    return to_hazard(row)


async def update_hazard(runtime: Runtime, principal: Principal, hazard_id: uuid.UUID, data: HazardUpdate) -> Hazard:
    _check_hazard_fields(data)
    geom = parse_shape(data.geometry, data.point, data.radius_m, required=False)
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    for k in ("geometry", "point", "radius_m"):
        changes.pop(k, None)
    async with runtime.pool.acquire() as conn, conn.transaction():
        current = await repo.get_hazard(conn, hazard_id)
        if current is None:
            raise NotFound("no such hazard")
        errors: list[dict[str, str]] = []
        _check_times(
            errors, changes.get("valid_from", current["valid_from"]), changes.get("valid_until", current["valid_until"])
        )
        if errors:
            raise InvalidInput("invalid hazard", errors=errors)
        row = await repo.update_hazard(conn, hazard_id, changes, geom)
        assert row is not None
        detail = {"fields": sorted([*changes, *(["geometry"] if geom is not None else [])])}
        await audit.record(conn, principal, "hazard.update", "hazard", hazard_id, detail)
    runtime.bus.publish(repo.hazard_change(row))
    return to_hazard(row)


async def end_hazard(runtime: Runtime, principal: Principal, hazard_id: uuid.UUID) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await repo.end_hazard(conn, hazard_id)
        if row is None:
            raise NotFound("no such hazard")
        await audit.record(conn, principal, "hazard.end", "hazard", hazard_id)
    runtime.bus.publish(repo.hazard_change(row, deleted=True))


def _fence_fields(data: GeofenceCreate | GeofenceUpdate, current: asyncpg.Record | None) -> dict[str, Any]:
    errors: list[dict[str, str]] = []
    if data.name is not None and not (1 <= len(data.name) <= 200):
        errors.append({"field": "name", "message": "1-200 characters"})
    if data.detect is not None:
        unknown = sorted(set(data.detect) - DETECTS)
        if unknown:
            errors.append({"field": "detect", "message": f"unknown detect names {unknown}; allowed: {sorted(DETECTS)}"})
        elif not data.detect:
            errors.append({"field": "detect", "message": "name at least one detect"})
    if data.dwell_s is not None and not (0 <= data.dwell_s <= 7 * 86400):
        errors.append({"field": "dwell_s", "message": "must be 0..604800"})
    if data.hysteresis_m is not None and not (0 <= data.hysteresis_m <= 50_000):
        errors.append({"field": "hysteresis_m", "message": "must be 0..50000"})
    _check_times(errors, None, data.valid_until)
    if errors:
        raise InvalidInput("invalid geofence", errors=errors)
    fields = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    for k in ("geometry", "point", "radius_m"):
        fields.pop(k, None)
    if "detect" in fields:
        fields["detect"] = sorted(set(fields["detect"]))
    if current is None or "team_ids" in fields or "responder_ids" in fields or "applies_to_all" in fields:
        teams = fields.get("team_ids", current["team_ids"] if current else [])
        people = fields.get("responder_ids", current["responder_ids"] if current else [])
        fields["applies_to_all"] = fields.get("applies_to_all", not (teams or people))
    return fields


async def create_geofence(runtime: Runtime, principal: Principal, data: GeofenceCreate) -> Geofence:
    fields = _fence_fields(data, None)
    geom = parse_shape(data.geometry, data.point, data.radius_m)
    assert geom is not None
    fields["created_by"] = _actor_id(principal)
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await fence_repo.insert_geofence(conn, geom, fields)
        await audit.record(conn, principal, "geofence.create", "geofence", row["id"], {"name": data.name})
    return to_geofence(row)


async def update_geofence(
    runtime: Runtime, principal: Principal, fence_id: uuid.UUID, data: GeofenceUpdate
) -> Geofence:
    geom = parse_shape(data.geometry, data.point, data.radius_m, required=False)
    async with runtime.pool.acquire() as conn, conn.transaction():
        current = await fence_repo.get_geofence(conn, fence_id)
        if current is None:
            raise NotFound("no such geofence")
        fields = _fence_fields(data, current)
        row = await fence_repo.update_geofence(conn, fence_id, fields, geom)
        assert row is not None
        await audit.record(conn, principal, "geofence.update", "geofence", fence_id, {"fields": sorted(fields)})
    return to_geofence(row)


async def delete_geofence(runtime: Runtime, principal: Principal, fence_id: uuid.UUID) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        if not await fence_repo.delete_geofence(conn, fence_id):
            raise NotFound("no such geofence")
        await audit.record(conn, principal, "geofence.delete", "geofence", fence_id)
