"""`/v1/resources`: equipment and vehicles."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, patch, post

from ..deps import check_limit
from ..incidents.idempotency import mutate, read
from ..permissions import requires
from . import service
from .service import Resource, ResourceCreate, ResourcePage, ResourceUpdate


class ResourceController(Controller):
    path = "/v1/resources"
    tags = ["resources"]

    @post("/", guards=[requires("resources:write")], status_code=201)
    async def create_resource(self, request: Request[Any, Any, Any], data: ResourceCreate) -> Response[Resource]:
        return await mutate(request, lambda w: _with(service.create(w, data), 201))

    @get("/", guards=[requires("resources:read")])
    async def list_resources(
        self,
        request: Request[Any, Any, Any],
        status: str | None = None,
        type: str | None = None,
        limit: int = 100,
        cursor: uuid.UUID | None = None,
    ) -> ResourcePage:
        check_limit(limit)
        return await read(  # type: ignore[no-any-return]
            request, lambda w: service.list_resources(w, status=status, type_=type, limit=limit, after=cursor)
        )

    @get("/{resource_id:uuid}", guards=[requires("resources:read")])
    async def get_resource(self, request: Request[Any, Any, Any], resource_id: uuid.UUID) -> Resource:
        return await read(request, lambda w: service.get(w, resource_id))  # type: ignore[no-any-return]

    @patch("/{resource_id:uuid}", guards=[requires("resources:write")])
    async def update_resource(
        self, request: Request[Any, Any, Any], resource_id: uuid.UUID, data: ResourceUpdate
    ) -> Response[Resource]:
        return await mutate(request, lambda w: _with(service.update(w, resource_id, data), 200))


async def _with(result: Any, status: int) -> tuple[Any, int]:
    return await result, status
