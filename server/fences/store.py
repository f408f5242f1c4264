"""SQL of the fence evaluator: leadership, loading fences and state, reading positions, writing results.

Everything here runs on the leader's dedicated connection (the one holding the advisory lock).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec
import shapely

from geo.cover import PolygonCover
from geo.fences import Fence, FenceEvent, Fix

LEADER_NAME = "fences"
LOCK_KEY = 0x5173_6665_6E63  # "sitrep fences" advisory lock
HAZARD_DETECTS = frozenset({"enter", "exit"})


class Deposed(Exception):
    """The fencing token no longer matches: another worker took over; this one must stop writing."""


async def try_lock(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY))


async def take_over(conn: asyncpg.Connection, holder: str) -> tuple[int, int, bool, datetime | None]:
    """Bump the fencing token. Returns ``(token, checkpoint_seq, first_time, previous_commit_at)``.

    The very first leader starts at the newest committed seq (history is not replayed) and seeds
    its positions from ``latest_positions``.
    """
    async with conn.transaction():
        prev = await conn.fetchrow(
            "SELECT fencing_token, checkpoint_seq, updated_at FROM leader_state WHERE name = $1 FOR UPDATE", LEADER_NAME
        )
        if prev is None:
            start = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM positions")
            token = await conn.fetchval(
                "INSERT INTO leader_state (name, fencing_token, checkpoint_seq, holder, updated_at) "
                "VALUES ($1, 1, $2, $3, now()) ON CONFLICT (name) DO UPDATE SET fencing_token = leader_state.fencing_token + 1 "
                "RETURNING fencing_token",
                LEADER_NAME,
                start,
                holder,
            )
            await conn.execute(
                "INSERT INTO fence_positions (responder_id, team_id, lon, lat, fix_time, accuracy_m, seq) "
                "SELECT lp.responder_id, r.team_id, ST_X(lp.geom), ST_Y(lp.geom), lp.fix_time, lp.accuracy_m, lp.seq "
                "FROM latest_positions lp LEFT JOIN responders r ON r.id = lp.responder_id WHERE lp.seq <= $1 "
                "ON CONFLICT (responder_id) DO NOTHING",
                start,
            )
            return int(token), int(start), True, None
        token = await conn.fetchval(
            "UPDATE leader_state SET fencing_token = fencing_token + 1, holder = $2 WHERE name = $1 RETURNING fencing_token",
            LEADER_NAME,
            holder,
        )
        return int(token), int(prev["checkpoint_seq"]), False, prev["updated_at"]


async def check_token(conn: asyncpg.Connection, token: int, checkpoint: int) -> None:
    """Inside the write transaction: advance the checkpoint only while still holding ``token``."""
    result = await conn.execute(
        "UPDATE leader_state SET checkpoint_seq = $1, updated_at = now() WHERE name = $2 AND fencing_token = $3",
        checkpoint,
        LEADER_NAME,
        token,
    )
    if result != "UPDATE 1":
        raise Deposed(f"fencing token {token} is stale")


# ----------------------------------------------------------------------------- fences


def hazard_fence(row: asyncpg.Record) -> Fence:
    return Fence(
        id=str(row["id"]),
        kind="hazard",
        name=row["title"] or row["kind"],
        geometry=shapely.from_wkb(row["wkb"]),
        detect=HAZARD_DETECTS,
        meta={"kind": row["kind"], "severity": row["severity"], "source": row["source"]},
        valid_until=row["valid_until"],
        version=int(row["updated_at"].timestamp() * 1_000_000),
    )


def geofence_fence(row: asyncpg.Record) -> Fence:
    applies: frozenset[str] | None = None
    if not row["applies_to_all"]:
        applies = frozenset(str(x) for x in [*row["team_ids"], *row["responder_ids"]])
    return Fence(
        id=str(row["id"]),
        kind="geofence",
        name=row["name"],
        geometry=shapely.from_wkb(row["wkb"]),
        detect=frozenset(row["detect"]),
        dwell_s=float(row["dwell_s"]),
        hysteresis_m=float(row["hysteresis_m"]),
        applies_to=applies,
        meta=dict(row["meta"] or {}),
        valid_until=row["valid_until"],
        version=int(row["version"]),
    )


_HAZARD_SQL = (
    "SELECT id, kind, severity, source, title, ST_AsBinary(geom) AS wkb, valid_until, updated_at, status, valid_from, "
    "cc.interior_cells, cc.boundary_cells FROM hazards LEFT JOIN LATERAL (SELECT "
    "array_agg(c.cell) FILTER (WHERE c.interior) AS interior_cells, "
    "array_agg(c.cell) FILTER (WHERE NOT c.interior) AS boundary_cells "
    "FROM hazard_cells c WHERE c.hazard_id = hazards.id) cc ON true "
)
"""A hazard with its stored cover cells, read in one statement (one snapshot: geometry and cells agree)."""
_ACTIVE_HAZARD = (
    "status = 'active' AND (valid_from IS NULL OR valid_from <= now()) AND (valid_until IS NULL OR valid_until > now())"
)
_GEOFENCE_SQL = (
    "SELECT id, name, ST_AsBinary(geom) AS wkb, detect, dwell_s, hysteresis_m, applies_to_all, team_ids, "
    "responder_ids, meta, valid_until, version, updated_at, deleted_at FROM geofences "
)
_ACTIVE_GEOFENCE = "deleted_at IS NULL AND (valid_until IS NULL OR valid_until > now())"


def stored_cover(fence: Fence, row: asyncpg.Record) -> PolygonCover | None:
    """The hazard's cover from its stored ``hazard_cells`` (classified when it was written, for this
    geometry), so the evaluator does not classify every area again; None when there are none."""
    interior, boundary = row["interior_cells"] or [], row["boundary_cells"] or []
    if not interior and not boundary:
        return None
    try:
        return PolygonCover.from_cells(fence.geometry, interior, boundary)
    except ValueError:
        return None


class Loaded(NamedTuple):
    fence: Fence
    updated_at: datetime
    cover: PolygonCover | None
    """Precomputed cover (hazards, from their stored cells), else None: the engine covers it."""


def _hazard(row: asyncpg.Record) -> Loaded:
    fence = hazard_fence(row)
    return Loaded(fence, row["updated_at"], stored_cover(fence, row))


async def load_active_fences(conn: asyncpg.Connection) -> list[Loaded]:
    """Every active hazard and geofence, with its ``updated_at`` (and a stored cover when there is one)."""
    out = [_hazard(row) for row in await conn.fetch(_HAZARD_SQL + "WHERE " + _ACTIVE_HAZARD)]
    for row in await conn.fetch(_GEOFENCE_SQL + "WHERE " + _ACTIVE_GEOFENCE):
        out.append(Loaded(geofence_fence(row), row["updated_at"], None))
    return out


async def load_fences(conn: asyncpg.Connection, kind: str, object_ids: list[str]) -> dict[str, Loaded]:
    """The active ones among many hazards (``kind="hazard"``) or geofences, in one query, by id;
    ids that are missing, inactive or not uuids are absent."""
    ids = []
    for oid in object_ids:
        try:
            ids.append(uuid.UUID(oid))
        except ValueError:
            continue
    if not ids:
        return {}
    if kind == "hazard":
        rows = await conn.fetch(_HAZARD_SQL + f"WHERE id = ANY($1::uuid[]) AND ({_ACTIVE_HAZARD})", ids)
        return {str(r["id"]): _hazard(r) for r in rows}
    rows = await conn.fetch(_GEOFENCE_SQL + f"WHERE id = ANY($1::uuid[]) AND ({_ACTIVE_GEOFENCE})", ids)
    return {str(r["id"]): Loaded(geofence_fence(r), r["updated_at"], None) for r in rows}


async def fence_detects(
    conn: asyncpg.Connection, fence_ids: list[str]
) -> dict[str, tuple[str, str, frozenset[str], dict[str, Any]]]:
    """``id -> (kind, name, detect, meta)`` for fences regardless of status (exits of vanished fences)."""
    ids = [uuid.UUID(f) for f in fence_ids]
    out: dict[str, tuple[str, str, frozenset[str], dict[str, Any]]] = {}
    for r in await conn.fetch("SELECT id, title, kind, severity, source FROM hazards WHERE id = ANY($1)", ids):
        out[str(r["id"])] = ("hazard", r["title"] or r["kind"], HAZARD_DETECTS,
                             {"kind": r["kind"], "severity": r["severity"], "source": r["source"]})  # fmt: skip
    for r in await conn.fetch("SELECT id, name, detect, meta FROM geofences WHERE id = ANY($1)", ids):
        out[str(r["id"])] = ("geofence", r["name"], frozenset(r["detect"]), dict(r["meta"] or {}))
    return out


async def newly_valid_hazards(conn: asyncpg.Connection, since: datetime) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM hazards WHERE status = 'active' AND valid_from > $1 AND valid_from <= now()", since
    )
    return [str(r["id"]) for r in rows]


async def end_expired_hazards(conn: asyncpg.Connection) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "UPDATE hazards SET status = 'ended', ended_at = valid_until, updated_at = clock_timestamp() "
        "WHERE status = 'active' AND valid_until <= now() RETURNING id"
    )
    return [r["id"] for r in rows]


# ----------------------------------------------------------------------------- state


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


async def load_positions(conn: asyncpg.Connection) -> list[Fix]:
    rows = await conn.fetch("SELECT responder_id, team_id, lon, lat, fix_time, accuracy_m, seq FROM fence_positions")
    return [
        Fix(
            responder_id=str(r["responder_id"]),
            team_id=str(r["team_id"]) if r["team_id"] else None,
            fix_time=r["fix_time"],
            lon=r["lon"],
            lat=r["lat"],
            accuracy_m=r["accuracy_m"],
            seq=r["seq"],
        )
        for r in rows
    ]


async def load_states(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT responder_id, fence_id, state FROM fence_states")
    out = []
    for r in rows:
        s = r["state"]
        out.append(
            {
                "responder_id": str(r["responder_id"]),
                "fence_id": r["fence_id"],
                "state": s["state"],
                "since": _dt(s["since"]),
                "group": s["group"],
                "last_fix_time": _dt(s["last_fix_time"]),
                "fence_version": int(s.get("fence_version", 0)),
            }
        )
    return out


async def write_states(
    conn: asyncpg.Connection, upserts: list[tuple[str, str, str]], deletes: list[tuple[str, str]]
) -> None:
    """``upserts`` are ``(responder_id, fence_id, state_json)``; ``deletes`` ``(responder_id, fence_id)``.

    Ids go as text and are cast by PostgreSQL (no per-row ``uuid.UUID`` in Python).
    """
    if deletes:
        await conn.execute(
            "DELETE FROM fence_states s USING unnest($1::text[]::uuid[], $2::text[]) AS d(r, f) "
            "WHERE s.responder_id = d.r AND s.fence_id = d.f",
            [r for r, _ in deletes],
            [f for _, f in deletes],
        )
    if upserts:
        await conn.execute(
            "INSERT INTO fence_states (responder_id, fence_id, state, updated_at) "
            "SELECT r, f, s::jsonb, now() FROM unnest($1::text[]::uuid[], $2::text[], $3::text[]) AS u(r, f, s) "
            "ON CONFLICT (responder_id, fence_id) DO UPDATE SET state = excluded.state, updated_at = now()",
            [u[0] for u in upserts],
            [u[1] for u in upserts],
            [u[2] for u in upserts],
        )


async def write_positions(conn: asyncpg.Connection, rows: list[Fix]) -> None:
    """Upsert the last evaluated fix of each responder (ids go as text, cast by PostgreSQL)."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO fence_positions (responder_id, team_id, lon, lat, fix_time, accuracy_m, seq) "
        "SELECT * FROM unnest($1::text[]::uuid[], $2::text[]::uuid[], $3::float8[], $4::float8[], $5::timestamptz[], "
        "$6::float8[], $7::bigint[]) "
        "ON CONFLICT (responder_id) DO UPDATE SET team_id = excluded.team_id, lon = excluded.lon, lat = excluded.lat, "
        "fix_time = excluded.fix_time, accuracy_m = excluded.accuracy_m, seq = excluded.seq",
        [r.responder_id for r in rows],
        [r.team_id for r in rows],
        [r.lon for r in rows],
        [r.lat for r in rows],
        [r.fix_time for r in rows],
        [r.accuracy_m for r in rows],
        [r.seq for r in rows],
    )


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_EVENT_IDS_SQL = (
    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('fence_events', 'id')::regclass AS seq) "
    "SELECT nextval(s.seq) FROM s, generate_series(1, $1)"
)
_EVENT_COLUMNS = ("id", "detect", "fence_id", "fence_kind", "responder_id", "fix_time", "time", "late", "payload")


def _jsonb_out(value: Any) -> bytes:
    # jsonb's binary format is a version byte (1) then the JSON text; bytes are JSON already encoded
    return b"\x01" + (value if isinstance(value, bytes) else _encode(value))


def _jsonb_in(data: bytes) -> Any:
    return _decode(data[1:])


async def binary_jsonb(conn: asyncpg.Connection) -> None:
    """Give the leader's write connection a binary ``jsonb`` codec (same Python values as
    :func:`server.db._init_connection`'s text one), which ``COPY`` needs; a ``bytes`` value is
    taken as already encoded JSON."""
    await conn.set_type_codec("jsonb", encoder=_jsonb_out, decoder=_jsonb_in, schema="pg_catalog", format="binary")


async def write_events(conn: asyncpg.Connection, events: list[FenceEvent], payloads: list[dict[str, Any]]) -> list[int]:
    """Insert events in order with pre-allocated ids (returned, same order); ``payload["event_id"]`` is set.

    ``COPY`` (binary) rather than an ``unnest`` INSERT: the first-fix burst of a large deployment is
    tens of thousands of rows in one transaction. ``conn`` needs :func:`binary_jsonb`.
    """
    if not events:
        return []
    # the sequence is looked up once per statement, not once per row (pg_get_serial_sequence per row
    # cost more than the insert itself)
    ids: list[int] = [r[0] for r in await conn.fetch(_EVENT_IDS_SQL, len(events))]
    enc = _encode
    records = []
    for i, e, p in zip(ids, events, payloads, strict=True):
        p["event_id"] = i
        records.append((i, e.detect, e.fence_id, e.fence_kind, e.responder_id, e.fix_time, e.time, e.late, enc(p)))
    await conn.copy_records_to_table("fence_events", columns=_EVENT_COLUMNS, records=records)
    return ids


POSITIONS_SQL = (
    "SELECT p.seq, p.responder_id::text AS responder_id, r.team_id::text AS team_id, p.fix_time, p.received_at, "
    "ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, p.accuracy_m FROM positions p LEFT JOIN responders r ON r.id = p.responder_id "
    "WHERE p.seq > $1 ORDER BY p.seq LIMIT $2"
)
"""Ids come as text: the engine keys responders by string, and PostgreSQL formats uuids faster than Python."""


def to_fixes(rows: list[asyncpg.Record]) -> list[Fix]:
    """:data:`POSITIONS_SQL` rows as fixes (column order: seq, responder, team, fix_time, received_at, lon, lat, acc)."""
    return [
        Fix(responder_id=r[1], team_id=r[2], fix_time=r[3], lon=r[5], lat=r[6], accuracy_m=r[7], seq=r[0],
            received_at=r[4])
        for r in rows
    ]  # fmt: skip


def utcnow() -> datetime:
    return datetime.now(UTC)
