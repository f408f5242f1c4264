"""The one statement a group commit runs: history insert + live-state upsert, from arrays.

``positions`` takes every new fix (``ON CONFLICT DO NOTHING``: a repeat of responder + fix time is
a duplicate); ``latest_positions`` takes the newest *new* fix per responder, and only where it is
newer than what is there, so a late fix goes to history and never moves a responder back.
Rows are sorted by responder so concurrent flushes lock latest rows in the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from .fixes import Fix

_encode = msgspec.json.Encoder().encode

WRITE_SQL = """
WITH input AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::timestamptz[], $3::float8[], $4::float8[], $5::int8[], $6::float8[],
        $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::text[], $12::uuid[],
        $13::text[], $14::bool[], $15::text[]
    ) AS u(responder_id, fix_time, lon, lat, h3, accuracy_m, speed_mps, heading_deg, altitude_m,
           battery_pct, source, device_id, client_id, poor_accuracy, attributes)
    ORDER BY responder_id, fix_time
),
ins AS (
    INSERT INTO positions (responder_id, fix_time, geom, h3, accuracy_m, speed_mps, heading_deg,
                           altitude_m, battery_pct, source, device_id, client_id, poor_accuracy,
                           attributes)
    SELECT responder_id, fix_time, ST_SetSRID(ST_MakePoint(lon, lat), 4326), h3, accuracy_m,
           speed_mps, heading_deg, altitude_m, battery_pct, source, device_id, client_id,
           poor_accuracy, attributes::jsonb
    FROM input
    ON CONFLICT (responder_id, fix_time) DO NOTHING
    RETURNING responder_id, fix_time, received_at, seq, geom, h3, accuracy_m, speed_mps,
              heading_deg, altitude_m, battery_pct, source
),
newest AS (
    SELECT DISTINCT ON (responder_id) * FROM ins ORDER BY responder_id, fix_time DESC
),
up AS (
    INSERT INTO latest_positions (responder_id, fix_time, received_at, seq, geom, h3, accuracy_m,
                                  speed_mps, heading_deg, altitude_m, battery_pct, source, stale)
    SELECT n.responder_id, n.fix_time, n.received_at, n.seq, n.geom, n.h3, n.accuracy_m,
           n.speed_mps, n.heading_deg, n.altitude_m, n.battery_pct, n.source,
           n.fix_time < now() - make_interval(secs => $16)
    FROM newest n JOIN responders r ON r.id = n.responder_id
    ORDER BY n.responder_id
    ON CONFLICT (responder_id) DO UPDATE SET
        fix_time = excluded.fix_time, received_at = excluded.received_at, seq = excluded.seq,
        geom = excluded.geom, h3 = excluded.h3, accuracy_m = excluded.accuracy_m,
        speed_mps = excluded.speed_mps, heading_deg = excluded.heading_deg,
        altitude_m = excluded.altitude_m, battery_pct = excluded.battery_pct,
        source = excluded.source, stale = excluded.stale
    WHERE excluded.fix_time > latest_positions.fix_time
    RETURNING responder_id, fix_time, stale
)
SELECT ins.responder_id, ins.fix_time, up.responder_id IS NOT NULL AS is_latest,
       coalesce(up.stale, false) AS stale, r.callsign, r.team_id, r.status
FROM ins
LEFT JOIN up ON up.responder_id = ins.responder_id AND up.fix_time = ins.fix_time
LEFT JOIN responders r ON r.id = up.responder_id
"""


@dataclass(slots=True)
class Written:
    stored: set[tuple[uuid.UUID, datetime]]
    latest: list[asyncpg.Record]
    """Rows that became a responder's live position (with callsign, team_id, status, stale)."""


def columns(fixes: Sequence[Fix]) -> list[list[object]]:
    return [
        [f.responder_id for f in fixes],
        [f.fix_time for f in fixes],
        [f.lon for f in fixes],
        [f.lat for f in fixes],
        [f.h3 for f in fixes],
        [f.accuracy_m for f in fixes],
        [f.speed_mps for f in fixes],
        [f.heading_deg for f in fixes],
        [f.altitude_m for f in fixes],
        [f.battery_pct for f in fixes],
        [f.source for f in fixes],
        [f.device_id for f in fixes],
        [f.client_id for f in fixes],
        [f.poor_accuracy for f in fixes],
        [None if f.attributes is None else _encode(f.attributes).decode() for f in fixes],
    ]


async def write_fixes(conn: asyncpg.Connection, fixes: Sequence[Fix], stale_after_s: float) -> Written:
    """Insert ``fixes`` (unique by responder + fix time): one statement, so one transaction."""
    rows = await conn.fetch(WRITE_SQL, *columns(fixes), float(stale_after_s))
    stored = {(r["responder_id"], r["fix_time"]) for r in rows}
    return Written(stored, [r for r in rows if r["is_latest"]])
