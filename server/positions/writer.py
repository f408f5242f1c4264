"""The one statement a group commit runs: history insert + live-state upsert, from arrays.

``positions`` takes every new fix (``ON CONFLICT DO NOTHING``: a repeat of responder + fix time is
a duplicate); ``latest_positions`` takes the newest *new* fix per responder, and only where it is
newer than what is there, so a late fix goes to history and never moves a responder back.
Latest rows are upserted in responder order, so concurrent flushes lock them in the same order.
History rows go in as they come (sorting them cost PostgreSQL more than the rest of the statement
besides the insert itself); two flushes racing to insert the same fixes in opposite orders would
be a deadlock, which the batcher retries.

Parameters are cheap to encode: the fix time travels as unix microseconds (int8, exact), and a
column with no value in any fix (often heading, altitude, client id, attributes) as a NULL array,
which ``unnest`` pads with NULLs, so its elements are never encoded one by one; so are the source and
the device when every fix shares them (their one value is a parameter of its own).

The answer is one row of arrays, in positions of the input (its ordinality), never one row per fix:
how many were stored, which were duplicates (only computed when some were), and which became a
responder's live position (with what the stream change needs: stale, callsign, team, status).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import NamedTuple

import asyncpg
import msgspec
from msgspec.structs import astuple

from .fixes import Fix

_encode = msgspec.json.Encoder().encode

WRITE_SQL = """
WITH input AS (
    SELECT responder_id, 'epoch'::timestamptz + fix_us * interval '1 microsecond' AS fix_time, lon, lat,
           h3, accuracy_m, speed_mps, heading_deg, altitude_m, battery_pct,
           coalesce(source, $17::text) AS source, coalesce(device_id, $18::uuid) AS device_id, client_id,
           coalesce(poor_accuracy, false) AS poor_accuracy, attributes, ord
    FROM unnest(
        $1::uuid[], $2::int8[], $3::float8[], $4::float8[], $5::int8[], $6::float8[],
        $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::text[], $12::uuid[],
        $13::text[], $14::bool[], $15::text[]
    ) WITH ORDINALITY AS u(responder_id, fix_us, lon, lat, h3, accuracy_m, speed_mps, heading_deg,
           altitude_m, battery_pct, source, device_id, client_id, poor_accuracy, attributes, ord)
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
    FROM newest n
    -- A probe per responder (a scalar subquery is not turned into a join scanning every responder).
    WHERE (SELECT true FROM responders r WHERE r.id = n.responder_id)
    ORDER BY n.responder_id
    ON CONFLICT (responder_id) DO UPDATE SET
        fix_time = excluded.fix_time, received_at = excluded.received_at, seq = excluded.seq,
        geom = excluded.geom, h3 = excluded.h3, accuracy_m = excluded.accuracy_m,
        speed_mps = excluded.speed_mps, heading_deg = excluded.heading_deg,
        altitude_m = excluded.altitude_m, battery_pct = excluded.battery_pct,
        source = excluded.source, stale = excluded.stale
    WHERE excluded.fix_time > latest_positions.fix_time
    RETURNING responder_id, fix_time, stale
),
stored AS (SELECT count(*) AS n FROM ins)
SELECT stored.n AS stored,
       CASE WHEN stored.n < cardinality($1::uuid[]) THEN ARRAY(
           SELECT i.ord FROM input i WHERE NOT EXISTS (
               SELECT 1 FROM ins WHERE ins.responder_id = i.responder_id AND ins.fix_time = i.fix_time)
       ) END AS duplicates,
       l.*
FROM stored, (
    SELECT array_agg(i.ord) AS latest, array_agg(up.stale) AS stale, array_agg(r.callsign) AS callsign,
           array_agg(r.team_id) AS team_id, array_agg(r.status) AS status
    FROM up
    JOIN input i ON i.responder_id = up.responder_id AND i.fix_time = up.fix_time
    JOIN responders r ON r.id = up.responder_id
) l
"""


class Latest(NamedTuple):
    """A fix that became its responder's live position, with what its stream change needs."""

    at: int
    """Position of the fix in the list written."""
    stale: bool
    callsign: str | None
    team_id: uuid.UUID | None
    status: str | None


@dataclass(slots=True)
class Written:
    stored: int
    """How many of the fixes were new (the rest were duplicates of stored ones)."""
    duplicates: list[int]
    """Positions (in the list written) of the fixes that were already stored."""
    latest: list[Latest]


_columns = [
    attrgetter(name)
    for name in (
        "responder_id",
        "fix_time",
        "lon",
        "lat",
        "h3",
        "accuracy_m",
        "speed_mps",
        "heading_deg",
        "altitude_m",
        "battery_pct",
        "source",
        "device_id",
        "client_id",
        "poor_accuracy",
    )
]


def columns(fixes: Sequence[Fix]) -> list[list[object]]:
    """One list per column, in the order of ``fixes`` (fix times as datetimes; bench/ingest's raw insert)."""
    cols: list[list[object]] = [list(map(get, fixes)) for get in _columns]
    cols.append([None if f.attributes is None else _encode(f.attributes).decode() for f in fixes])
    return cols


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


_FIX_FIELDS = (
    "responder_id",
    "fix_time",
    "lon",
    "lat",
    "accuracy_m",
    "speed_mps",
    "heading_deg",
    "altitude_m",
    "battery_pct",
    "source",
    "device_id",
    "client_id",
    "poor_accuracy",
    "attributes",
    "accepted_at",
    "h3",
)
if Fix.__struct_fields__ != _FIX_FIELDS:  # write_columns unpacks fixes by field position
    raise ImportError(f"positions.writer expects Fix fields {_FIX_FIELDS}, not {Fix.__struct_fields__}")


def write_columns(fixes: Sequence[Fix]) -> list[object]:
    """:data:`WRITE_SQL`'s arrays ($1-$15, then $17 and $18: the shared source and device, if any).

    Fix times in unix microseconds; NULL for a column without a value, and for the source and
    device columns when one value is shared by every fix.
    """
    n = len(fixes)
    # One tuple per fix (C), transposed into one tuple per Fix field (C).
    (rid, times, lon, lat, acc, speed, heading, alt, battery, source, device, client, poor, attrs, _, h3) = zip(
        *map(astuple, fixes), strict=True
    )
    epoch, us = _EPOCH, _US
    same_source = source.count(source[0]) == n
    same_device = device.count(device[0]) == n
    return [
        rid,
        [(t - epoch) // us for t in times],
        lon,
        lat,
        h3,
        _or_null(acc),
        _or_null(speed),
        _or_null(heading),
        _or_null(alt),
        _or_null(battery),
        None if same_source else source,
        None if same_device else device,
        _or_null(client),
        poor if True in poor else None,  # none flagged: the statement defaults to false
        None if attrs.count(None) == n else [None if a is None else _encode(a).decode() for a in attrs],
        source[0] if same_source else None,
        device[0] if same_device else None,
    ]


def _or_null(values: tuple[object, ...]) -> tuple[object, ...] | None:
    return None if values.count(None) == len(values) else values


async def write_fixes(conn: asyncpg.Connection, fixes: Sequence[Fix], stale_after_s: float) -> Written:
    """Insert ``fixes`` (unique by responder + fix time): one statement, so one transaction."""
    *cols, source, device_id = write_columns(fixes)
    row = await conn.fetchrow(WRITE_SQL, *cols, float(stale_after_s), source, device_id)
    assert row is not None
    duplicates = [i - 1 for i in row["duplicates"]] if row["duplicates"] is not None else []
    latest = []
    if row["latest"] is not None:
        latest = [
            Latest(i - 1, stale, callsign, team, status)
            for i, stale, callsign, team, status in zip(
                row["latest"], row["stale"], row["callsign"], row["team_id"], row["status"], strict=True
            )
        ]
    return Written(row["stored"], duplicates, latest)
