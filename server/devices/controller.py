"""`/v1/devices` (tokens shown once, stored hashed, revocable) and responder administration."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Controller, Request, get, patch, post

from .. import audit
from ..deps import check_limit, decode_cursor, encode_cursor, principal_of, runtime_of
from ..errors import Conflict, InvalidInput, NotFound
from ..permissions import requires
from ..positions.live import live_changes
from ..security import new_opaque_token, token_hash
from ..structs import Body
from ..tables import RESPONDER_STATUSES
from ..users.scope import managed_teams, require_manages
from . import repository as repo


class Device(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    unique_id: str
    name: str
    responder_id: uuid.UUID
    created_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None


class DeviceCreated(Device, kw_only=True):
    token: str
    """Shown once; sitrep stores only its hash."""


class DevicePage(msgspec.Struct, kw_only=True):
    items: list[Device]
    next_cursor: str | None


class DeviceCreate(Body):
    responder_id: uuid.UUID
    unique_id: str | None = None
    name: str = ""


class Responder(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID | None
    callsign: str
    name: str
    team_id: uuid.UUID | None
    status: str
    skills: list[str]
    phone: str | None
    created_at: datetime
    updated_at: datetime


class ResponderCreate(Body):
    callsign: str
    name: str = ""
    team_id: uuid.UUID | None = None
    status: str = "available"
    skills: list[str] = msgspec.field(default_factory=list)
    phone: str | None = None
    user_id: uuid.UUID | None = None


class ResponderUpdate(Body):
    callsign: str | None = None
    name: str | None = None
    team_id: uuid.UUID | None = None
    status: str | None = None
    skills: list[str] | None = None
    phone: str | None = None


def _device(row: asyncpg.Record) -> Device:
    return Device(**{k: row[k] for k in Device.__struct_fields__})


def _check_status(status: str | None) -> None:
    if status is not None and status not in RESPONDER_STATUSES:
        raise InvalidInput(
            "invalid status",
            errors=[{"field": "status", "message": f"one of {', '.join(RESPONDER_STATUSES)}"}],
        )


class DeviceController(Controller):
    path = "/v1/devices"
    tags = ["devices"]

    @post("/", guards=[requires("devices:write")], summary="Register a device; its token is returned once")
    async def create_device(self, request: Request[Any, Any, Any], data: DeviceCreate) -> DeviceCreated:
        principal = principal_of(request)
        unique_id = (data.unique_id or uuid.uuid4().hex[:15]).strip()
        if not (1 <= len(unique_id) <= 128):
            raise InvalidInput("invalid unique_id", errors=[{"field": "unique_id", "message": "1-128 characters"}])
        token = new_opaque_token("dev")
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            responder = await repo.get_responder(conn, data.responder_id)
            if responder is None:
                raise InvalidInput(
                    "unknown responder", errors=[{"field": "responder_id", "message": "no such responder"}]
                )
            await require_manages(conn, principal, responder["team_id"])
            try:
                row = await repo.create_device(
                    conn,
                    unique_id=unique_id,
                    name=data.name,
                    responder_id=data.responder_id,
                    token_hash=token_hash(token),
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"device {unique_id!r} is already registered") from exc
            await audit.record(conn, principal, "device.create", "device", row["id"], {"unique_id": unique_id})
        return DeviceCreated(**msgspec.structs.asdict(_device(row)), token=token)

    @get("/", guards=[requires("devices:read")])
    async def list_devices(
        self,
        request: Request[Any, Any, Any],
        responder_id: uuid.UUID | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DevicePage:
        check_limit(limit)
        after = decode_cursor(cursor, 1)
        async with runtime_of(request).pool.acquire() as conn:
            scope = await managed_teams(conn, principal_of(request))
            rows = await repo.list_devices(conn, responder_id, scope, limit + 1, after[0] if after else None)
        items = [_device(r) for r in rows[:limit]]
        return DevicePage(items=items, next_cursor=encode_cursor(items[-1].unique_id) if len(rows) > limit else None)

    @post("/{device_id:uuid}/revoke", guards=[requires("devices:write")], status_code=200)
    async def revoke_device(self, request: Request[Any, Any, Any], device_id: uuid.UUID) -> Device:
        principal = principal_of(request)
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn, conn.transaction():
            existing = await repo.get_device(conn, device_id)
            if existing is None:
                raise NotFound("no such device")
            await require_manages(conn, principal, existing["team_id"])
            row = await repo.revoke_device(conn, device_id)
            await audit.record(conn, principal, "device.revoke", "device", device_id)
        await rt.device_auth.revoked(rt.redis, row["token_hash"])
        return _device(row)


class ResponderAdminController(Controller):
    """Creating and editing responders. Listing with live positions lives with the positions area."""

    path = "/v1/responders"
    tags = ["responders"]

    @post("/", guards=[requires("responders:write")])
    async def create_responder(self, request: Request[Any, Any, Any], data: ResponderCreate) -> Responder:
        _check_status(data.status)
        if not data.callsign.strip():
            raise InvalidInput("callsign required", errors=[{"field": "callsign", "message": "must not be empty"}])
        principal = principal_of(request)
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            await require_manages(conn, principal, data.team_id)
            try:
                row = await repo.create_responder(conn, **msgspec.structs.asdict(data))
            except asyncpg.ForeignKeyViolationError as exc:
                raise InvalidInput(
                    "unknown team or user", errors=[{"field": "team_id", "message": "no such team"}]
                ) from exc
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("that user already is a responder") from exc
            await audit.record(conn, principal, "responder.create", "responder", row["id"], {"callsign": data.callsign})
        return Responder(**dict(row))

    @get("/{responder_id:uuid}/profile", guards=[requires("responders:read")])
    async def get_responder(self, request: Request[Any, Any, Any], responder_id: uuid.UUID) -> Responder:
        async with runtime_of(request).pool.acquire() as conn:
            row = await repo.get_responder(conn, responder_id)
        if row is None:
            raise NotFound("no such responder")
        return Responder(**dict(row))

    @patch("/{responder_id:uuid}", guards=[requires("responders:write")])
    async def update_responder(
        self, request: Request[Any, Any, Any], responder_id: uuid.UUID, data: ResponderUpdate
    ) -> Responder:
        _check_status(data.status)
        principal = principal_of(request)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            existing = await repo.get_responder(conn, responder_id)
            if existing is None:
                raise NotFound("no such responder")
            await require_manages(conn, principal, existing["team_id"])
            if "team_id" in changes:
                await require_manages(conn, principal, changes["team_id"])
            row = await repo.update_responder(conn, responder_id, changes)
            await audit.record(
                conn, principal, "responder.update", "responder", responder_id, {"fields": sorted(changes)}
            )
            shown = (
                await live_changes(conn, [responder_id]) if changes.keys() & {"status", "callsign", "team_id"} else []
            )
        runtime_of(request).bus.publish(shown)
        if "team_id" in changes:  # cached device identities carry the team
            rt = runtime_of(request)
            await rt.device_auth.revoked(rt.redis, None)
        return Responder(**dict(row))
