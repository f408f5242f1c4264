"""SQL for hazards and their H3 cells, including the upsert the feed ingesters call.

Every write here also sends ``NOTIFY sitrep_fences, 'hazard:<id>'`` in the same transaction, so
the fence evaluator (:mod:`server.fences`) re-evaluates responders against the new geometry as
soon as the change commits. Callers publish :class:`server.bus.Change` *after* commit with
:func:`hazard_change`.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec
from shapely.geometry.base import BaseGeometry

from ..bus import Change
from ..errors import InvalidGeometry
from .shapes import cover_rows, parse_shape, wkb

FENCE_CHANNEL = "sitrep_fences"
SEVERITIES = ("extreme", "severe", "moderate", "minor", "unknown")
DEFAULT_POINT_RADIUS_M = 5000.0
"""Radius of the area of a feed item that only has a point (e.g. an earthquake epicentre)."""

HAZARD_COLS = (
    "h.id, h.source, h.external_id, h.version, h.kind, h.severity, h.title, h.description, "
    "ST_AsGeoJSON(h.geom)::jsonb AS geometry, h.h3_res, h.valid_from, h.valid_until, h.status, h.ended_at, "
    "h.is_public, h.created_at, h.updated_at, "
    "ST_XMin(h.geom) AS min_lon, ST_YMin(h.geom) AS min_lat, ST_XMax(h.geom) AS max_lon, ST_YMax(h.geom) AS max_lat"
)

Outcome = Literal["created", "updated", "unchanged", "ended"]


async def notify(conn: asyncpg.Connection, kind: str, object_id: Any) -> None:
    """Tell the fence evaluator (on commit) that a hazard/geofence changed."""
    await conn.execute("SELECT pg_notify($1, $2)", FENCE_CHANNEL, f"{kind}:{object_id}")


def hazard_change(row: asyncpg.Record | dict[str, Any], *, deleted: bool = False) -> Change:
    """The bus change for a hazard row selected with :data:`HAZARD_COLS`.

    The data equals ``msgspec.to_builtins`` of the row, but the decoded GeoJSON geometry is passed on
    as it is (it came from JSON): converting it copied every coordinate again, ~2 s for the 13,582
    fire areas of one FIRMS apply on a loaded machine.
    """
    d = dict(row)
    box = (d.pop("min_lon"), d.pop("min_lat"), d.pop("max_lon"), d.pop("max_lat"))
    geometry = d.pop("geometry", None)
    data: dict[str, Any] = msgspec.to_builtins(d)
    data["geometry"] = geometry if isinstance(geometry, dict | str | None) else msgspec.to_builtins(geometry)
    if deleted or d.get("status") == "ended":
        data["deleted"] = True
    return Change(topic="hazards", key=str(d["id"]), data=data, bbox=box, public=bool(d["is_public"]))


async def replace_cells(conn: asyncpg.Connection, hazard_id: uuid.UUID, geom: BaseGeometry) -> int:
    """Store the H3 cover (interior and boundary cells) with one unnest insert; returns the resolution."""
    res, cells, interior = cover_rows(geom)
    await conn.execute("DELETE FROM hazard_cells WHERE hazard_id = $1", hazard_id)
    await conn.execute(
        "INSERT INTO hazard_cells (hazard_id, cell, interior) SELECT $1, c, i FROM unnest($2::bigint[], $3::bool[]) AS u(c, i)",
        hazard_id,
        cells,
        interior,
    )
    await conn.execute("UPDATE hazards SET h3_res = $2 WHERE id = $1", hazard_id, res)
    return res


async def get_hazard(conn: asyncpg.Connection, hazard_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(f"SELECT {HAZARD_COLS} FROM hazards h WHERE h.id = $1", hazard_id)
    return row


async def insert_hazard(conn: asyncpg.Connection, geom: BaseGeometry, fields: dict[str, Any]) -> asyncpg.Record:
    hazard_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO hazards (source, external_id, version, kind, severity, title, description, geom, h3_res, "
        "valid_from, valid_until, is_public, raw, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, ST_GeomFromWKB($8, 4326), 0, $9, $10, $11, $12, $13) RETURNING id",
        fields.get("source", "manual"),
        fields.get("external_id"),
        fields.get("version", "1"),
        fields["kind"],
        fields.get("severity", "unknown"),
        fields.get("title", ""),
        fields.get("description", ""),
        wkb(geom),
        fields.get("valid_from"),
        fields.get("valid_until"),
        fields.get("is_public", True),
        fields.get("raw"),
        fields.get("created_by"),
    )
    await replace_cells(conn, hazard_id, geom)
    await notify(conn, "hazard", hazard_id)
    row = await get_hazard(conn, hazard_id)
    assert row is not None
    return row


_UPDATABLE = (
    "kind",
    "severity",
    "title",
    "description",
    "valid_from",
    "valid_until",
    "is_public",
    "version",
    "raw",
    "status",
)


async def update_hazard(
    conn: asyncpg.Connection, hazard_id: uuid.UUID, changes: dict[str, Any], geom: BaseGeometry | None
) -> asyncpg.Record | None:
    """Apply ``changes`` (and a new geometry); manual versions count up. Reactivates an ended hazard
    when ``status='active'`` is among the changes."""
    keys = [k for k in changes if k in _UPDATABLE]
    sets = [f"{k} = ${i + 2}" for i, k in enumerate(keys)]
    args: list[Any] = [changes[k] for k in keys]
    if geom is not None:
        args.append(wkb(geom))
        sets.append(f"geom = ST_GeomFromWKB(${len(args) + 1}, 4326)")
    if "version" not in changes:
        sets.append("version = CASE WHEN version ~ '^[0-9]+$' THEN (version::bigint + 1)::text ELSE version END")
    if changes.get("status") == "active":
        sets.append("ended_at = NULL")
    sets.append("updated_at = clock_timestamp()")
    found = await conn.fetchval(f"UPDATE hazards SET {', '.join(sets)} WHERE id = $1 RETURNING id", hazard_id, *args)
    if found is None:
        return None
    if geom is not None:
        await replace_cells(conn, hazard_id, geom)
    await notify(conn, "hazard", hazard_id)
    return await get_hazard(conn, hazard_id)


async def end_hazard(conn: asyncpg.Connection, hazard_id: uuid.UUID) -> asyncpg.Record | None:
    """Mark a hazard ended (kept for history); everyone inside gets an ``exit``."""
    found = await conn.fetchval(
        "UPDATE hazards SET status = 'ended', ended_at = coalesce(ended_at, now()), updated_at = clock_timestamp() "
        "WHERE id = $1 RETURNING id",
        hazard_id,
    )
    if found is None:
        return None
    await notify(conn, "hazard", hazard_id)
    return await get_hazard(conn, hazard_id)


async def list_hazards(
    conn: asyncpg.Connection,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    status: str | None,
    kind: str | None,
    source: str | None,
    bbox: tuple[float, float, float, float] | None,
    public_only: bool,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {HAZARD_COLS} FROM hazards h WHERE ($2::text IS NULL OR h.status = $2) "
        "AND ($3::text IS NULL OR h.kind = $3) AND ($4::text IS NULL OR h.source = $4) "
        "AND ($5::float8 IS NULL OR h.geom && ST_MakeEnvelope($5, $6, $7, $8, 4326)) "
        "AND (NOT $9 OR h.is_public) "
        "AND ($10::timestamptz IS NULL OR (h.created_at, h.id) < ($10, $11)) "
        "ORDER BY h.created_at DESC, h.id DESC LIMIT $1",
        limit,
        status,
        kind,
        source,
        *(bbox or (None, None, None, None)),
        public_only,
        after[0] if after else None,
        after[1] if after else None,
    )
    return rows


async def responders_inside(conn: asyncpg.Connection, fence_id: str) -> list[asyncpg.Record]:
    """Responders inside a hazard or geofence now (the evaluator's committed state)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT s.responder_id, r.callsign, r.team_id, (s.state->>'since')::timestamptz AS since, "
        "s.state->>'group' AS \"group\", lp.fix_time, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat "
        "FROM fence_states s JOIN responders r ON r.id = s.responder_id "
        "LEFT JOIN latest_positions lp ON lp.responder_id = s.responder_id "
        "WHERE s.fence_id = $1 AND s.state->>'state' = 'inside' ORDER BY r.callsign",
        fence_id,
    )
    return rows


async def hazards_of_responder(conn: asyncpg.Connection, responder_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {HAZARD_COLS}, (s.state->>'since')::timestamptz AS since FROM fence_states s "
        "JOIN hazards h ON h.id::text = s.fence_id "
        "WHERE s.responder_id = $1 AND s.state->>'state' = 'inside' AND h.status = 'active' ORDER BY h.created_at",
        responder_id,
    )
    return rows


# --------------------------------------------------------------------------- feeds


_NUM = re.compile(r"^-?\d+(\.\d+)?$")


def is_newer_version(new: str, old: str) -> bool:
    """Numbers compare numerically, anything else (ISO times, ETags) as text; equal is not newer."""
    if new == old:
        return False
    if _NUM.match(new) and _NUM.match(old):
        return float(new) > float(old)
    return new > old


async def upsert_external_hazard(
    conn: asyncpg.Connection,
    item: Any,
    *,
    changes: list[Change] | None = None,
    point_radius_m: float = DEFAULT_POINT_RADIUS_M,
) -> Outcome:
    """Create, update or end the hazard of one feed item, keyed on ``(item.source, item.external_id)``.

    ``item`` is a :class:`feeds.model.HazardItem`. Call inside a transaction (the caller's); the
    fence evaluator is notified on commit. If ``changes`` is given, the bus changes to publish
    *after commit* are appended to it (``runtime.bus.publish(changes)``).

    * ``item.status`` ``cancelled``/``expired`` ends an existing active hazard → ``"ended"``
      (an unknown one is not created → ``"unchanged"``).
    * An existing hazard with the same or an older ``version`` → ``"unchanged"`` (nothing written).
    * A newer version replaces every field and the geometry → ``"updated"`` (an ended hazard
      becomes active again).
    * Otherwise a new hazard → ``"created"``.
    * Ids in ``item.references`` (same source) are ended as superseded.

    The area is ``item.geometry`` (GeoJSON Polygon/MultiPolygon, validated and repaired like the
    API's), or a geodesic circle of ``point_radius_m`` around ``item.point``. Raises
    :class:`server.errors.InvalidGeometry` when there is neither (geocodes must be resolved by the
    caller first) or the geometry is unusable.
    """
    for ref in item.references:
        if ref != item.external_id:
            ref_id = await conn.fetchval(
                "SELECT id FROM hazards WHERE source = $1 AND external_id = $2 AND status = 'active'", item.source, ref
            )
            if ref_id is not None:
                row = await end_hazard(conn, ref_id)
                if changes is not None and row is not None:
                    changes.append(hazard_change(row))
    existing = await conn.fetchrow(
        "SELECT id, version, status FROM hazards WHERE source = $1 AND external_id = $2 FOR UPDATE",
        item.source,
        item.external_id,
    )
    if item.status != "active":
        if existing is None or existing["status"] == "ended":
            return "unchanged"
        row = await end_hazard(conn, existing["id"])
        if changes is not None and row is not None:
            changes.append(hazard_change(row))
        return "ended"
    if existing is not None and not is_newer_version(item.version, existing["version"]):
        return "unchanged"
    if item.geometry is None and item.point is None:
        raise InvalidGeometry(
            f"feed item {item.external_id!r} has no geometry",
            errors=[{"field": "geometry", "message": "resolve geocodes before upserting"}],
        )
    geom = parse_shape(item.geometry, list(item.point) if item.geometry is None else None,
                       point_radius_m if item.geometry is None else None)  # fmt: skip
    assert geom is not None
    fields: dict[str, Any] = {
        "source": item.source,
        "external_id": item.external_id,
        "version": item.version,
        "kind": item.kind,
        "severity": item.severity if item.severity in SEVERITIES else "unknown",
        "title": item.title,
        "description": item.description,
        "valid_from": item.valid_from,
        "valid_until": item.valid_until,
        "is_public": True,
        "raw": item.raw or None,
    }
    if existing is None:
        row = await insert_hazard(conn, geom, fields)
        outcome: Outcome = "created"
    else:
        fields["status"] = "active"
        for k in ("source", "external_id"):
            fields.pop(k)
        updated = await update_hazard(conn, existing["id"], fields, geom)
        assert updated is not None
        row, outcome = updated, "updated"
    if changes is not None:
        changes.append(hazard_change(row))
    return outcome
