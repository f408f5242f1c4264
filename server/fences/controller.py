"""`GET /v1/fence-events`: stored fence and hazard events in fix-time order (Tile38-like shape)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter

from ..deps import check_limit, decode_cursor, encode_cursor, runtime_of
from ..errors import InvalidInput
from ..permissions import requires


class FenceEventOut(msgspec.Struct, kw_only=True):
    event_id: int
    command: str
    detect: str
    key: str
    id: str
    object: dict[str, Any]
    time: str
    fix_time: str
    hook: str
    group: str
    meta: dict[str, Any]
    fence: dict[str, Any]
    hazard: str | None = None
    late: bool
    uncertain: bool = False
    reason: str = "fix"


class FenceEventPage(msgspec.Struct, kw_only=True):
    items: list[FenceEventOut]
    next_cursor: str | None


async def list_events(
    conn: asyncpg.Connection,
    *,
    responder: uuid.UUID | None,
    fence: str | None,
    from_: datetime | None,
    to: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, fix_time, payload FROM fence_events "
        "WHERE ($1::uuid IS NULL OR responder_id = $1) AND ($2::text IS NULL OR fence_id = $2) "
        "AND ($3::timestamptz IS NULL OR fix_time >= $3) AND ($4::timestamptz IS NULL OR fix_time < $4) "
        "AND ($5::timestamptz IS NULL OR (fix_time, id) > ($5, $6)) "
        "ORDER BY fix_time, id LIMIT $7",
        responder,
        fence,
        from_,
        to,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


def _event(row: asyncpg.Record) -> FenceEventOut:
    p = dict(row["payload"])
    p["event_id"] = row["id"]
    return msgspec.convert(p, FenceEventOut)


class FenceEventController(Controller):
    path = "/v1/fence-events"
    tags = ["fences"]

    @get("/", guards=[requires("geofences:read")])
    async def list_fence_events(
        self, request: Request[Any, Any, Any], responder: uuid.UUID | None = None, fence: str | None = None,
        from_: datetime | None = Parameter(query="from", default=None), to: datetime | None = None,
        limit: int = 100, cursor: str | None = None,
    ) -> FenceEventPage:  # fmt: skip
        check_limit(limit)
        for name, value in (("from", from_), ("to", to)):
            if value is not None and value.tzinfo is None:
                raise InvalidInput("invalid time", errors=[{"field": name, "message": "must carry a UTC offset"}])
        after = decode_cursor(cursor, 2)
        async with runtime_of(request).pool.acquire() as conn:
            rows = await list_events(
                conn, responder=responder, fence=fence, from_=from_, to=to, limit=limit + 1,
                after=(datetime.fromisoformat(after[0]), int(after[1])) if after else None,
            )  # fmt: skip
        items = [_event(r) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return FenceEventPage(
            items=items, next_cursor=encode_cursor(last["fix_time"].isoformat(), last["id"]) if last else None
        )
