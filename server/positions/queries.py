"""Read queries over live state and history. Every function takes the connection.

H3 parents are computed in SQL from the stored res-9 cell by bit arithmetic (no h3-pg needed):
set the resolution field to ``r`` and every digit below ``r`` to 7.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


def h3_parent_sql(column: str, res: int) -> str:
    if not 0 <= res <= 15:
        raise ValueError("res must be 0..15")
    low_bits = (1 << (3 * (15 - res))) - 1
    return f"((({column}) & ~(15::int8 << 52)) | ({res}::int8 << 52) | {low_bits}::int8)"


@dataclass(slots=True)
class Scope:
    """What the caller may see: ``teams`` None means everything."""

    teams: list[uuid.UUID] | None
    self_id: uuid.UUID | None = None


class _Where:
    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def scope(self, scope: Scope, team_col: str = "r.team_id", id_col: str = "r.id") -> None:
        if scope.teams is None:
            return
        clause = f"{team_col} = ANY({self.arg(scope.teams)}::uuid[])"
        if scope.self_id is not None:
            clause = f"({clause} OR {id_col} = {self.arg(scope.self_id)}::uuid)"
        self.add(clause)

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


_LIVE_COLUMNS = """
    r.id, r.callsign, r.name, r.team_id, r.status, r.skills,
    lp.fix_time, lp.received_at, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat, lp.h3, lp.accuracy_m,
    lp.speed_mps, lp.heading_deg, lp.altitude_m, lp.battery_pct, lp.source, lp.stale,
    extract(epoch FROM now() - lp.fix_time) AS age_s
"""


async def list_live(
    conn: asyncpg.Connection,
    scope: Scope,
    *,
    team_ids: list[uuid.UUID] | None,
    status: str | None,
    bbox: tuple[float, float, float, float] | None,
    cells: dict[int, list[int]] | None,
    limit: int,
    after: tuple[str, uuid.UUID] | None,
) -> list[asyncpg.Record]:
    w = _Where()
    w.scope(scope)
    if team_ids is not None:
        w.add(f"r.team_id = ANY({w.arg(team_ids)}::uuid[])")
    if status is not None:
        w.add(f"r.status = {w.arg(status)}")
    if bbox is not None:
        w.add(
            f"lp.geom && ST_MakeEnvelope({w.arg(bbox[0])}, {w.arg(bbox[1])}, {w.arg(bbox[2])}, {w.arg(bbox[3])}, 4326)"
        )
    if cells:
        w.add(
            "("
            + " OR ".join(f"{h3_parent_sql('lp.h3', res)} = ANY({w.arg(ids)}::int8[])" for res, ids in cells.items())
            + ")"
        )
    if after is not None:
        w.add(f"(r.callsign, r.id) > ({w.arg(after[0])}, {w.arg(after[1])}::uuid)")
    join = "JOIN" if bbox is not None or cells else "LEFT JOIN"
    sql = (
        f"SELECT {_LIVE_COLUMNS} FROM responders r {join} latest_positions lp ON lp.responder_id = r.id"
        f"{w.sql()} ORDER BY r.callsign, r.id LIMIT {int(limit)}"
    )
    return await conn.fetch(sql, *w.args)


async def get_live(conn: asyncpg.Connection, responder_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_LIVE_COLUMNS} FROM responders r LEFT JOIN latest_positions lp ON lp.responder_id = r.id "
        "WHERE r.id = $1",
        responder_id,
    )


def envelope_for(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float] | None:
    """A lon/lat box surely containing the geodesic circle; None near poles or the antimeridian."""
    dlat = radius_m / 110_574.0 * 1.02 + 1e-4
    if abs(lat) + dlat >= 89.0:
        return None
    dlon = radius_m / (111_320.0 * math.cos(math.radians(abs(lat) + dlat))) * 1.02 + 1e-4
    if abs(lon) + dlon >= 180.0:
        return None
    return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)


async def nearby(
    conn: asyncpg.Connection,
    scope: Scope,
    *,
    lon: float,
    lat: float,
    radius_m: float,
    status: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Responders whose live position lies within ``radius_m`` geodesic metres, nearest first."""
    w = _Where()
    point = f"ST_SetSRID(ST_MakePoint({w.arg(lon)}, {w.arg(lat)}), 4326)"
    box = envelope_for(lon, lat, radius_m)
    if box is not None:
        # The GiST index on latest_positions.geom narrows to the box; the geography test is exact.
        w.add(f"lp.geom && ST_MakeEnvelope({w.arg(box[0])}, {w.arg(box[1])}, {w.arg(box[2])}, {w.arg(box[3])}, 4326)")
    w.add(f"ST_DWithin(lp.geom::geography, {point}::geography, {w.arg(radius_m)})")
    w.scope(scope)
    if status is not None:
        w.add(f"r.status = {w.arg(status)}")
    sql = (
        f"SELECT {_LIVE_COLUMNS}, ST_Distance(lp.geom::geography, {point}::geography) AS distance_m "
        f"FROM latest_positions lp JOIN responders r ON r.id = lp.responder_id{w.sql()} "
        f"ORDER BY distance_m, r.id LIMIT {int(limit)}"
    )
    return await conn.fetch(sql, *w.args)


TRACK_SQL = """
WITH pts AS (
    SELECT fix_time, geom FROM positions
    WHERE responder_id = $1 AND fix_time >= $2 AND fix_time <= $3
    ORDER BY fix_time LIMIT $5
), line AS (
    SELECT ST_MakeLine(geom ORDER BY fix_time) AS g, count(*) AS n,
           min(fix_time) AS t0, max(fix_time) AS t1
    FROM pts
), shaped AS (
    SELECT n, t0, t1,
           CASE
             WHEN n = 1 THEN ST_StartPoint(g)
             WHEN $4 > 0 AND n > 2 THEN ST_Transform(
                 ST_Simplify(ST_Transform(g, 3857), $4 / cos(radians(ST_Y(ST_Centroid(g))))), 4326)
             ELSE g
           END AS g
    FROM line WHERE n > 0
)
SELECT n, t0, t1, ST_NPoints(g) AS points, ST_AsGeoJSON(g, 7)::json AS geometry FROM shaped
"""


async def track(
    conn: asyncpg.Connection,
    responder_id: uuid.UUID,
    start: datetime,
    end: datetime,
    simplify_m: float,
    max_points: int = 50_000,
) -> asyncpg.Record | None:
    return await conn.fetchrow(TRACK_SQL, responder_id, start, end, float(simplify_m), max_points)


async def hexbins(
    conn: asyncpg.Connection,
    scope: Scope,
    *,
    res: int,
    start: datetime,
    end: datetime,
    bbox: tuple[float, float, float, float] | None,
    limit: int = 20_000,
) -> list[asyncpg.Record]:
    """Fix counts per H3 cell at ``res`` (parents of the stored res-9 cells) in [start, end)."""
    w = _Where()
    w.add(f"p.fix_time >= {w.arg(start)} AND p.fix_time < {w.arg(end)}")
    if bbox is not None:
        w.add(
            f"p.geom && ST_MakeEnvelope({w.arg(bbox[0])}, {w.arg(bbox[1])}, {w.arg(bbox[2])}, {w.arg(bbox[3])}, 4326)"
        )
    if scope.teams is not None:
        inner = _Where()
        inner.args = w.args
        inner.scope(scope)
        w.add(f"p.responder_id IN (SELECT r.id FROM responders r{inner.sql()})")
    sql = (
        f"SELECT {h3_parent_sql('p.h3', res)} AS cell, count(*) AS n FROM positions p{w.sql()} "
        f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {int(limit)}"
    )
    return await conn.fetch(sql, *w.args)
