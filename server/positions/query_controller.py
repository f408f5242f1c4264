"""Live state and history queries: `/v1/responders` (list, one, nearby, track) and hexbins.

Scope: admins see everything, coordinators the teams they manage, responders their own team;
viewers are refused by the permission table (``responders:read`` / ``positions:read``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter

from geo.h3index import cell_center, cell_to_str, resolution, str_to_cell

from ..deps import check_limit, decode_cursor, encode_cursor, parse_bbox, principal_of, runtime_of
from ..errors import Forbidden, InvalidInput, NotFound
from ..permissions import requires
from ..security import Principal
from ..tables import RESPONDER_STATUSES
from ..users.repository import team_subtree
from ..users.scope import managed_teams
from . import queries
from .queries import Scope


class LivePosition(msgspec.Struct, kw_only=True):
    lon: float
    lat: float
    fix_time: datetime
    received_at: datetime
    h3: str
    accuracy_m: float | None
    speed_mps: float | None
    heading_deg: float | None
    altitude_m: float | None
    battery_pct: float | None
    source: str


class ResponderLive(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    callsign: str
    name: str
    team_id: uuid.UUID | None
    status: str
    skills: list[str]
    position: LivePosition | None
    age_s: float | None
    """Seconds since the latest fix (None: never reported)."""
    battery_pct: float | None
    stale: bool
    distance_m: float | None = None
    """Only in `nearby` answers: geodesic metres from the query point."""


class ResponderPage(msgspec.Struct, kw_only=True):
    items: list[ResponderLive]
    next_cursor: str | None


class HexBin(msgspec.Struct, kw_only=True):
    cell: str
    count: int
    lon: float
    lat: float


class HexBins(msgspec.Struct, kw_only=True):
    res: int
    start: datetime
    end: datetime
    cells: list[HexBin]


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"invalid {field}", errors=[{"field": field, "message": message}])


def parse_cells(raw: str | None) -> dict[int, list[int]] | None:
    if raw is None:
        return None
    by_res: dict[int, list[int]] = {}
    for text in filter(None, (p.strip() for p in raw.split(","))):
        try:
            cell = str_to_cell(text)
        except ValueError as exc:
            raise _bad("cells", f"{text!r} is not an H3 cell") from exc
        res = resolution(cell)
        if res > 9:
            raise _bad("cells", "cells must be resolution 9 or coarser")
        by_res.setdefault(res, []).append(cell)
    if not by_res or sum(len(v) for v in by_res.values()) > 10_000:
        raise _bad("cells", "1..10000 H3 cells")
    return by_res


def _status(status: str | None) -> str | None:
    if status is not None and status not in RESPONDER_STATUSES:
        raise _bad("status", f"one of {', '.join(RESPONDER_STATUSES)}")
    return status


async def scope_for(conn: asyncpg.Connection, principal: Principal) -> Scope:
    if principal.role == "viewer":
        raise Forbidden("viewers may not see responders")
    if principal.role == "responder":
        return Scope([principal.team_id] if principal.team_id else [], principal.responder_id)
    return Scope(await managed_teams(conn, principal))


def _visible(scope: Scope, row: Any) -> bool:
    return scope.teams is None or row["team_id"] in scope.teams or row["id"] == scope.self_id


def to_live(row: Any, stale_after_s: float) -> ResponderLive:
    position = None
    if row["fix_time"] is not None:
        position = LivePosition(
            lon=row["lon"],
            lat=row["lat"],
            fix_time=row["fix_time"],
            received_at=row["received_at"],
            h3=cell_to_str(row["h3"]),
            accuracy_m=row["accuracy_m"],
            speed_mps=row["speed_mps"],
            heading_deg=row["heading_deg"],
            altitude_m=row["altitude_m"],
            battery_pct=row["battery_pct"],
            source=row["source"],
        )
    age = float(row["age_s"]) if row["age_s"] is not None else None
    return ResponderLive(
        id=row["id"],
        callsign=row["callsign"],
        name=row["name"],
        team_id=row["team_id"],
        status=row["status"],
        skills=list(row["skills"]),
        position=position,
        age_s=None if age is None else round(age, 3),
        battery_pct=row["battery_pct"],
        stale=position is None or bool(row["stale"]) or (age is not None and age > stale_after_s),
        distance_m=round(float(row["distance_m"]), 2) if "distance_m" in row else None,
    )


def _window(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - default
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    if start > end:
        raise _bad("from", "from must not be after to")
    return start, end


# Plain handlers rather than a Controller: Litestar 2 refuses two controllers sharing a path
# (ResponderAdminController owns POST/PATCH on the same paths).
_READ = {"guards": [requires("responders:read")], "tags": ["responders"]}


@get("/v1/responders", **_READ, summary="Responders with their live position, age, battery, status and staleness")
async def list_responders(
    request: Request[Any, Any, Any],
    team: uuid.UUID | None = None,
    status: str | None = None,
    bbox: str | None = None,
    cells: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> ResponderPage:
    check_limit(limit)
    rt = runtime_of(request)
    after = decode_cursor(cursor, 2)
    async with rt.pool.acquire() as conn:
        scope = await scope_for(conn, principal_of(request))
        rows = await queries.list_live(
            conn,
            scope,
            team_ids=await team_subtree(conn, team) if team else None,
            status=_status(status),
            bbox=parse_bbox(bbox),
            cells=parse_cells(cells),
            limit=limit + 1,
            after=(after[0], uuid.UUID(after[1])) if after else None,
        )
    stale_s = rt.settings.ingest.stale_after_s
    items = [to_live(r, stale_s) for r in rows[:limit]]
    more = len(rows) > limit
    return ResponderPage(items=items, next_cursor=encode_cursor(items[-1].callsign, items[-1].id) if more else None)


@get("/v1/responders/nearby", **_READ, summary="Responders within radius_m geodesic metres of lon/lat, nearest first")
async def nearby_responders(
    request: Request[Any, Any, Any],
    lon: float,
    lat: float,
    radius_m: float = 5_000.0,
    status: str | None = None,
    limit: int = 20,
) -> list[ResponderLive]:
    check_limit(limit, 500)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise _bad("lon", "lon -180..180, lat -90..90")
    if not (0 < radius_m <= 500_000):
        raise _bad("radius_m", "0 < radius_m <= 500000")
    rt = runtime_of(request)
    async with rt.pool.acquire() as conn:
        scope = await scope_for(conn, principal_of(request))
        rows = await queries.nearby(
            conn, scope, lon=lon, lat=lat, radius_m=radius_m, status=_status(status), limit=limit
        )
    return [to_live(r, rt.settings.ingest.stale_after_s) for r in rows]


@get("/v1/responders/{responder_id:uuid}", **_READ, summary="One responder with the live position")
async def get_responder_live(request: Request[Any, Any, Any], responder_id: uuid.UUID) -> ResponderLive:
    rt = runtime_of(request)
    async with rt.pool.acquire() as conn:
        scope = await scope_for(conn, principal_of(request))
        row = await queries.get_live(conn, responder_id)
    if row is None:
        raise NotFound("no such responder")
    if not _visible(scope, row):
        raise Forbidden("outside your team")
    return to_live(row, rt.settings.ingest.stale_after_s)


@get(
    "/v1/responders/{responder_id:uuid}/track",
    **_READ,
    summary="Where a responder has been, as a GeoJSON Feature (optionally simplified in metres)",
)
async def responder_track(
    request: Request[Any, Any, Any],
    responder_id: uuid.UUID,
    from_: Annotated[datetime | None, Parameter(query="from")] = None,
    to: datetime | None = None,
    simplify_m: float = 0.0,
) -> dict[str, Any]:
    if not (0 <= simplify_m <= 10_000):
        raise _bad("simplify_m", "0..10000")
    start, end = _window(from_, to, timedelta(hours=24))
    rt = runtime_of(request)
    async with rt.pool.acquire() as conn:
        scope = await scope_for(conn, principal_of(request))
        row = await queries.get_live(conn, responder_id)
        if row is None:
            raise NotFound("no such responder")
        if not _visible(scope, row):
            raise Forbidden("outside your team")
        line = await queries.track(conn, responder_id, start, end, simplify_m)
    props = {
        "responder_id": str(responder_id),
        "callsign": row["callsign"],
        "from": start.isoformat(),
        "to": end.isoformat(),
        "fix_count": int(line["n"]) if line else 0,
        "point_count": int(line["points"]) if line else 0,
        "simplify_m": simplify_m,
    }
    return {"type": "Feature", "geometry": line["geometry"] if line else None, "properties": props}


class HexbinController(Controller):
    path = "/v1/positions"
    tags = ["positions"]

    @get("/hexbins", guards=[requires("positions:read")], summary="Fix counts per H3 cell (heatmaps)")
    async def hexbins(
        self,
        request: Request[Any, Any, Any],
        res: int = 7,
        bbox: str | None = None,
        from_: Annotated[datetime | None, Parameter(query="from")] = None,
        to: datetime | None = None,
    ) -> HexBins:
        if not 0 <= res <= 9:
            raise _bad("res", "0..9 (positions are stored at res 9)")
        start, end = _window(from_, to, timedelta(hours=1))
        async with runtime_of(request).pool.acquire() as conn:
            scope = await scope_for(conn, principal_of(request))
            rows = await queries.hexbins(conn, scope, res=res, start=start, end=end, bbox=parse_bbox(bbox))
        cells = []
        for r in rows:
            lon, lat = cell_center(r["cell"])
            cells.append(HexBin(cell=cell_to_str(r["cell"]), count=r["n"], lon=lon, lat=lat))
        return HexBins(res=res, start=start, end=end, cells=cells)
