"""Who is inside an alert's area: H3 cells first, the exact test only at the boundary.

Every subscriber place stores its H3 cells at each of :data:`RES_LEVELS` (a point: one cell per level;
an area: its covering cells per level). An alert's area is covered at one of those levels
(:class:`geo.cover.PolygonCover`): a place sharing an *interior* cell is inside without more work; a
place sharing only *boundary* cells gets PostGIS ``ST_Intersects`` (a point on the edge counts as
inside: better one alert too many at the edge than one too few).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geo.cover import PolygonCover, choose_res, classify_cells
from geo.geodesy import buffer_geometry_m
from geo.h3index import cell_for

RES_LEVELS = (5, 7, 9)
MAX_PLACE_CELLS = 6000


def place_cells(geom: BaseGeometry) -> list[int]:
    """The cells a subscriber place is stored with (see module doc)."""
    if isinstance(geom, Point):
        return [cell_for(geom.x, geom.y, r) for r in RES_LEVELS]
    out: list[int] = []
    for res in RES_LEVELS:
        interior, boundary = classify_cells(geom, res, max_cells=MAX_PLACE_CELLS)
        out.extend(sorted(interior | boundary))
    if len(out) > MAX_PLACE_CELLS:
        raise ValueError("place area too large")
    return out


def area_cover(area: BaseGeometry) -> PolygonCover:
    res = choose_res(area, min_res=RES_LEVELS[0], max_res=RES_LEVELS[-1])
    level = max(r for r in RES_LEVELS if r <= res)
    return PolygonCover(area, res=level)


@dataclass(frozen=True)
class Recipient:
    id: str
    email: str | None
    phone: str | None
    webhook_url: str | None
    push: dict[str, Any] | None
    language: str
    quiet_hours: dict[str, Any] | None
    exercise: bool


_RECIPIENT_COLS = (
    "s.id::text AS id, s.email, s.phone, s.webhook_url, s.language, s.quiet_hours, s.exercise, "
    "(SELECT jsonb_build_object('endpoint', ps.endpoint, 'keys', jsonb_build_object('p256dh', ps.p256dh, "
    "'auth', ps.auth)) FROM push_subscriptions ps WHERE ps.subscriber_id = s.id) AS push"
)
_ACTIVE = "s.confirmed_at IS NOT NULL AND s.unsubscribed_at IS NULL AND ($4::bool = false OR s.exercise)"


async def recipients_in(conn: asyncpg.Connection, area: BaseGeometry, *, exercise: bool) -> list[Recipient]:
    """Confirmed, subscribed people with a place intersecting ``area`` (only exercise recipients if
    ``exercise``)."""
    cover = area_cover(area)
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (s.id) {_RECIPIENT_COLS}
            FROM subscriber_places p JOIN subscribers s ON s.id = p.subscriber_id
            WHERE p.cells && $1::bigint[]
              AND (p.cells && $2::bigint[] OR ST_Intersects(p.geom, ST_SetSRID(ST_GeomFromWKB($3), 4326)))
              AND {_ACTIVE}
            ORDER BY s.id""",
        sorted(cover.interior | cover.boundary),
        sorted(cover.interior),
        shapely.to_wkb(area),
        exercise,
    )
    return [Recipient(**dict(r)) for r in rows]


async def recipients_by_id(conn: asyncpg.Connection, ids: list[str], *, exercise: bool) -> list[Recipient]:
    rows = await conn.fetch(
        f"""SELECT {_RECIPIENT_COLS} FROM subscribers s
            WHERE s.id = ANY($1::uuid[]) AND s.unsubscribed_at IS NULL
              AND ($2::bool = false OR s.exercise) ORDER BY s.id""",
        ids,
        exercise,
    )
    return [Recipient(**dict(r)) for r in rows]


async def near_edge_count(conn: asyncpg.Connection, area: BaseGeometry, distance_m: float, *, exercise: bool) -> int:
    """Subscribers outside ``area`` but within ``distance_m`` of its edge."""
    grown = buffer_geometry_m(area, distance_m)
    cover = area_cover(grown)
    return int(
        await conn.fetchval(
            f"""SELECT count(DISTINCT s.id)
                FROM subscriber_places p JOIN subscribers s ON s.id = p.subscriber_id
                WHERE p.cells && $1::bigint[]
                  AND ST_Intersects(p.geom, ST_SetSRID(ST_GeomFromWKB($3), 4326))
                  AND {_ACTIVE}
                  AND NOT EXISTS (
                      SELECT 1 FROM subscriber_places q WHERE q.subscriber_id = s.id
                        AND ST_Intersects(q.geom, ST_SetSRID(ST_GeomFromWKB($2), 4326)))""",
            sorted(cover.interior | cover.boundary),
            shapely.to_wkb(area),
            shapely.to_wkb(grown),
            exercise,
        )
    )
