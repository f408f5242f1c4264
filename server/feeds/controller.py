"""``/v1/feeds``: list feeds with their health (every role), add, edit and poll them (admin)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, patch, post
from litestar.status_codes import HTTP_202_ACCEPTED

from ..deps import check_limit, decode_cursor, encode_cursor, principal_of, runtime_of
from ..errors import NotFound
from ..permissions import requires
from . import repository as repo
from . import service
from .structs import Feed, FeedCreate, FeedPage, FeedUpdate


class FeedController(Controller):
    path = "/v1/feeds"
    tags = ["feeds"]

    @get("/", guards=[requires("feeds:read")])
    async def list_feeds(
        self, request: Request[Any, Any, Any], limit: int = 100, cursor: str | None = None
    ) -> FeedPage:
        check_limit(limit)
        after = decode_cursor(cursor, 1)
        async with runtime_of(request).pool.acquire() as conn:
            rows = [r for r in await repo.list_feeds(conn) if after is None or r["name"] > after[0]]
        items = [service.to_feed(r) for r in rows[:limit]]
        return FeedPage(items=items, next_cursor=encode_cursor(items[-1].name) if len(rows) > limit else None)

    @get("/{name:str}", guards=[requires("feeds:read")])
    async def get_feed(self, request: Request[Any, Any, Any], name: str) -> Feed:
        async with runtime_of(request).pool.acquire() as conn:
            row = await repo.get_feed(conn, name)
        if row is None:
            raise NotFound(f"no feed {name!r}")
        return service.to_feed(row)

    @post("/", guards=[requires("feeds:write")])
    async def create_feed(self, request: Request[Any, Any, Any], data: FeedCreate) -> Feed:
        return await service.create_feed(runtime_of(request), principal_of(request), data)

    @patch("/{name:str}", guards=[requires("feeds:write")])
    async def update_feed(self, request: Request[Any, Any, Any], name: str, data: FeedUpdate) -> Feed:
        return await service.update_feed(runtime_of(request), principal_of(request), name, data)

    @post("/{name:str}/poll", guards=[requires("feeds:write")], status_code=HTTP_202_ACCEPTED)
    async def poll_feed(self, request: Request[Any, Any, Any], name: str) -> Feed:
        return await service.poll_feed(runtime_of(request), principal_of(request), name)
