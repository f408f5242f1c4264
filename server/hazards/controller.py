"""`/v1/hazards`, `/v1/geofences`, and who is inside what (`/v1/hazards/{id}/responders`,
`/v1/responders/{id}/hazards`)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.status_codes import HTTP_204_NO_CONTENT

from ..deps import (
    check_limit,
    decode_cursor,
    decode_time_id_cursor,
    encode_cursor,
    parse_bbox,
    principal_of,
    runtime_of,
)
from ..errors import NotFound
from ..permissions import requires
from . import geofences as fence_repo
from . import repository as repo
from . import service
from .structs import (
    Geofence,
    GeofenceCreate,
    GeofencePage,
    GeofenceUpdate,
    Hazard,
    HazardCreate,
    HazardPage,
    HazardUpdate,
    ResponderHazard,
    ResponderInside,
)


class HazardController(Controller):
    path = "/v1/hazards"
    tags = ["hazards"]

    @post("/", guards=[requires("hazards:write")])
    async def create_hazard(self, request: Request[Any, Any, Any], data: HazardCreate) -> Hazard:
        return await service.create_hazard(runtime_of(request), principal_of(request), data)

    @get("/", guards=[requires("hazards:read")])
    async def list_hazards(
        self, request: Request[Any, Any, Any], status: str | None = "active", kind: str | None = None,
        source: str | None = None, bbox: str | None = None, limit: int = 100, cursor: str | None = None,
    ) -> HazardPage:  # fmt: skip
        check_limit(limit)
        after = decode_time_id_cursor(cursor)
        public_only = principal_of(request).role == "viewer"
        async with runtime_of(request).pool.acquire() as conn:
            rows = await repo.list_hazards(
                conn, limit=limit + 1, status=None if status == "all" else status, kind=kind, source=source,
                bbox=parse_bbox(bbox), public_only=public_only,
                after=after,
            )  # fmt: skip
        items = [service.to_hazard(r) for r in rows[:limit]]
        nxt = encode_cursor(items[-1].created_at.isoformat(), items[-1].id) if len(rows) > limit else None
        return HazardPage(items=items, next_cursor=nxt)

    @get("/{hazard_id:uuid}", guards=[requires("hazards:read")])
    async def get_hazard(self, request: Request[Any, Any, Any], hazard_id: uuid.UUID) -> Hazard:
        async with runtime_of(request).pool.acquire() as conn:
            row = await repo.get_hazard(conn, hazard_id)
        if row is None or (principal_of(request).role == "viewer" and not row["is_public"]):
            raise NotFound("no such hazard")
        return service.to_hazard(row)

    @patch("/{hazard_id:uuid}", guards=[requires("hazards:write")])
    async def update_hazard(self, request: Request[Any, Any, Any], hazard_id: uuid.UUID, data: HazardUpdate) -> Hazard:
        return await service.update_hazard(runtime_of(request), principal_of(request), hazard_id, data)

    @delete("/{hazard_id:uuid}", guards=[requires("hazards:write")], status_code=HTTP_204_NO_CONTENT)
    async def end_hazard(self, request: Request[Any, Any, Any], hazard_id: uuid.UUID) -> None:
        await service.end_hazard(runtime_of(request), principal_of(request), hazard_id)

    @get("/{hazard_id:uuid}/responders", guards=[requires("responders:read")])
    async def responders_inside(self, request: Request[Any, Any, Any], hazard_id: uuid.UUID) -> list[ResponderInside]:
        async with runtime_of(request).pool.acquire() as conn:
            if await repo.get_hazard(conn, hazard_id) is None:
                raise NotFound("no such hazard")
            rows = await repo.responders_inside(conn, str(hazard_id))
        return [ResponderInside(**dict(r)) for r in rows]


class ResponderHazardController(Controller):
    path = "/v1/responders"
    tags = ["hazards"]

    @get("/{responder_id:uuid}/hazards", guards=[requires("responders:read")])
    async def hazards_of_responder(
        self, request: Request[Any, Any, Any], responder_id: uuid.UUID
    ) -> list[ResponderHazard]:
        async with runtime_of(request).pool.acquire() as conn:
            rows = await repo.hazards_of_responder(conn, responder_id)
        return [ResponderHazard(hazard=service.to_hazard(r), since=r["since"]) for r in rows]


class GeofenceController(Controller):
    path = "/v1/geofences"
    tags = ["geofences"]

    @post("/", guards=[requires("geofences:write")])
    async def create_geofence(self, request: Request[Any, Any, Any], data: GeofenceCreate) -> Geofence:
        return await service.create_geofence(runtime_of(request), principal_of(request), data)

    @get("/", guards=[requires("geofences:read")])
    async def list_geofences(
        self, request: Request[Any, Any, Any], limit: int = 100, cursor: str | None = None
    ) -> GeofencePage:
        check_limit(limit)
        after = decode_cursor(cursor, 1)
        async with runtime_of(request).pool.acquire() as conn:
            rows = await fence_repo.list_geofences(conn, limit=limit + 1, after=after[0] if after else None)
        items = [service.to_geofence(r) for r in rows[:limit]]
        return GeofencePage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)

    @get("/{fence_id:uuid}", guards=[requires("geofences:read")])
    async def get_geofence(self, request: Request[Any, Any, Any], fence_id: uuid.UUID) -> Geofence:
        async with runtime_of(request).pool.acquire() as conn:
            row = await fence_repo.get_geofence(conn, fence_id)
        if row is None:
            raise NotFound("no such geofence")
        return service.to_geofence(row)

    @patch("/{fence_id:uuid}", guards=[requires("geofences:write")])
    async def update_geofence(
        self, request: Request[Any, Any, Any], fence_id: uuid.UUID, data: GeofenceUpdate
    ) -> Geofence:
        return await service.update_geofence(runtime_of(request), principal_of(request), fence_id, data)

    @delete("/{fence_id:uuid}", guards=[requires("geofences:write")], status_code=HTTP_204_NO_CONTENT)
    async def delete_geofence(self, request: Request[Any, Any, Any], fence_id: uuid.UUID) -> None:
        await service.delete_geofence(runtime_of(request), principal_of(request), fence_id)

    @get("/{fence_id:uuid}/responders", guards=[requires("responders:read")])
    async def responders_inside(self, request: Request[Any, Any, Any], fence_id: uuid.UUID) -> list[ResponderInside]:
        async with runtime_of(request).pool.acquire() as conn:
            rows = await repo.responders_inside(conn, str(fence_id))
        return [ResponderInside(**dict(r)) for r in rows]
