"""Helpers for the incidents tests: create things through the API, move a responder."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

CITY = (-91.6656, 41.9779)


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


async def create_incident(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"type": "fire", "priority": "P2", "title": "Test incident", "location": point(*CITY), **fields}
    r = await client.post("/v1/incidents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def place(
    client: httpx.AsyncClient,
    db: Any,
    device: dict[str, str] | None,
    responder_id: str,
    lon: float,
    lat: float,
    *,
    age_s: float = 0.0,
) -> None:
    """Put a responder at lon/lat: through `POST /v1/positions` with its device token, or directly."""
    fix_time = datetime.now(UTC) - timedelta(seconds=age_s)
    if device is not None:
        r = await client.post(
            "/v1/positions",
            json=[{"fix_time": fix_time.isoformat(), "lon": lon, "lat": lat, "accuracy_m": 5}],
            headers={"Authorization": f"Bearer {device['token']}"},
        )
        if r.status_code == 200:
            return
        assert r.status_code in (404, 405), r.text
    from geo.h3index import cell_for

    await db.execute(
        "INSERT INTO latest_positions (responder_id, fix_time, received_at, seq, geom, h3, accuracy_m, source) "
        "VALUES ($1, $2, now(), nextval('positions_seq'), ST_SetSRID(ST_MakePoint($3, $4), 4326), $5, 5, 'test') "
        "ON CONFLICT (responder_id) DO UPDATE SET fix_time = excluded.fix_time, geom = excluded.geom, "
        "h3 = excluded.h3, stale = false, received_at = now()",
        uuid.UUID(responder_id),
        fix_time,
        lon,
        lat,
        cell_for(lon, lat),
    )


async def fresh_responders(db: Any, n: int, *, team: str | None = None, skills: list[str] | None = None) -> list[str]:
    """New available responders (no position yet), so tests do not fight over the demo fleet."""
    team_id = await db.fetchval("SELECT id FROM teams WHERE name = $1", team) if team else None
    ids = []
    for i in range(n):
        rid = await db.fetchval(
            "INSERT INTO responders (callsign, name, team_id, skills, status) VALUES ($1, $2, $3, $4, 'available') RETURNING id",
            f"T-{uuid.uuid4().hex[:6]}",
            f"Test responder {i}",
            team_id,
            skills or [],
        )
        ids.append(str(rid))
    return ids
