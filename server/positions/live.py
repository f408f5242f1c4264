"""A responder's live map entry as a stream change, built from its stored latest position.

Fixes publish their own changes as they commit (``batcher.position_change``). Everything else that alters
what the map shows for a responder without a new fix (the staleness leader marking it stale, a coordinator
changing its status or team, an assignment making it busy or freeing it) publishes the same shape through
here, so a viewer's marker changes colour at once instead of at the responder's next fix.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from geo.h3index import cell_to_str

from ..bus import Change

LIVE_SQL = """
SELECT lp.responder_id, lp.fix_time, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat, lp.h3, lp.accuracy_m,
       lp.speed_mps, lp.heading_deg, lp.battery_pct, lp.stale, r.callsign, r.team_id, r.status
FROM latest_positions lp JOIN responders r ON r.id = lp.responder_id
WHERE lp.responder_id = ANY($1::uuid[])
"""


def position_change(
    responder_id: str,
    *,
    callsign: str | None,
    lon: float,
    lat: float,
    fix_time: datetime,
    accuracy_m: float | None,
    speed_mps: float | None,
    heading_deg: float | None,
    battery_pct: float | None,
    status: str | None,
    stale: bool,
    h3: int,
    team_id: uuid.UUID | str | None,
    accepted_at: float,
) -> Change:
    """The one shape of a ``positions`` change, whatever produced it (a committed fix or a stored row)."""
    return Change(
        topic="positions",
        key=responder_id,
        data={
            "id": responder_id,
            "callsign": callsign,
            "lon": lon,
            "lat": lat,
            "fix_time": fix_time.isoformat().replace("+00:00", "Z"),
            "accuracy_m": accuracy_m,
            "speed_mps": speed_mps,
            "heading_deg": heading_deg,
            "battery_pct": battery_pct,
            "status": status,
            "stale": bool(stale),
            "h3": cell_to_str(h3),
        },
        accepted_at=accepted_at,
        lon=lon,
        lat=lat,
        team_id=str(team_id) if team_id else None,
    )


def change_from_row(row: Any, *, accepted_at: float | None = None) -> Change:
    """The ``positions`` change for one joined latest-position + responder row."""
    return position_change(
        str(row["responder_id"]),
        callsign=row["callsign"],
        lon=row["lon"],
        lat=row["lat"],
        fix_time=row["fix_time"],
        accuracy_m=row["accuracy_m"],
        speed_mps=row["speed_mps"],
        heading_deg=row["heading_deg"],
        battery_pct=row["battery_pct"],
        status=row["status"],
        stale=row["stale"],
        h3=row["h3"],
        team_id=row["team_id"],
        accepted_at=time.time() if accepted_at is None else accepted_at,
    )


async def live_changes(conn: asyncpg.Connection, responder_ids: Iterable[uuid.UUID | None]) -> list[Change]:
    """Current map entries of these responders (those with no position yet have none)."""
    ids = list({r for r in responder_ids if r is not None})
    if not ids:
        return []
    return [change_from_row(r) for r in await conn.fetch(LIVE_SQL, ids)]
