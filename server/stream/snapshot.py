"""Snapshots: the current state of an area, read from PostgreSQL, in the same item shape as
deltas (``topic``, ``key``, ``data``, ``accepted_at``), filtered by the subscriber's scope. With
the ``compact`` encoding, positions are a ``meta`` and a ``positions`` array per responder
(see :mod:`.compact`), encoded by the same functions as compact deltas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from ..hazards.repository import HAZARD_COLS, hazard_change
from ..incidents.repository import INCIDENT_COLS
from ..incidents.scope import to_incident
from . import compact
from .area import Area
from .scope import Scope

if TYPE_CHECKING:
    from .livetable import LivePositions

# Positions are the bulk of a snapshot (one row per responder, for every joining viewer), so
# PostgreSQL builds each item's JSON (compact, as row_to_json writes it), in the shape the positions area publishes as deltas (fix_time
# as Python's isoformat: microseconds only when non-zero); Python only filters and joins.
POSITION_ITEM_SQL = """(
  SELECT row_to_json(i)::text FROM (
    SELECT 'positions' AS topic, lp.responder_id AS key, (
      SELECT row_to_json(d) FROM (
        SELECT lp.responder_id AS id, r.callsign, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat,
               to_char(lp.fix_time AT TIME ZONE 'UTC',
                 CASE WHEN extract(microseconds FROM lp.fix_time)::bigint % 1000000 = 0
                      THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END) AS fix_time,
               lp.accuracy_m, lp.speed_mps, lp.heading_deg, lp.battery_pct, r.status, lp.stale,
               to_hex(lp.h3) AS h3
      ) d
    ) AS data, extract(epoch FROM lp.received_at)::float8 AS accepted_at
  ) i
)"""
"""One joined ``latest_positions lp`` + ``responders r`` row's JSON item."""

POSITIONS_SQL = f"""
SELECT ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat, {POSITION_ITEM_SQL} AS item
FROM latest_positions lp JOIN responders r ON r.id = lp.responder_id
WHERE ($1::float8 IS NULL OR lp.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326))
  AND ($5::boolean OR r.team_id = $6::uuid OR r.id = $7::uuid)
ORDER BY lp.responder_id
LIMIT $8
"""

# The compact form: plain columns, encoded in Python by the same functions as compact deltas.
COMPACT_POSITIONS_SQL = """
SELECT lp.responder_id::text AS id, r.callsign, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat, lp.fix_time,
       lp.accuracy_m, lp.speed_mps, lp.heading_deg, lp.battery_pct, r.status, lp.stale, r.team_id::text AS team_id,
       extract(epoch FROM lp.received_at)::float8 AS accepted_at
FROM latest_positions lp JOIN responders r ON r.id = lp.responder_id
WHERE ($1::float8 IS NULL OR lp.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326))
  AND ($5::boolean OR r.team_id = $6::uuid OR r.id = $7::uuid)
ORDER BY lp.responder_id
LIMIT $8
"""

# Incidents use the incidents area's own columns and struct, so snapshot items have exactly the
# shape of the deltas that area publishes.
INCIDENTS_SQL = f"""
SELECT {INCIDENT_COLS}
FROM incidents i
WHERE i.status NOT IN ('resolved', 'closed', 'cancelled')
  AND ($1::float8 IS NULL OR i.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326))
  AND ($5::boolean OR i.team_id = $6::uuid
       OR EXISTS (SELECT 1 FROM assignments a WHERE a.incident_id = i.id AND a.responder_id = $7::uuid))
ORDER BY i.priority, i.created_at
LIMIT $8
"""

# Hazards likewise use the hazards area's columns and change builder.
HAZARDS_SQL = f"""
SELECT {HAZARD_COLS}
FROM hazards h
WHERE h.status = 'active' AND (h.valid_until IS NULL OR h.valid_until > now())
  AND ($1::float8 IS NULL OR h.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326))
  AND (NOT $5::boolean OR h.is_public)
ORDER BY h.updated_at DESC
LIMIT $6
"""

ALERTS_SQL = """
SELECT a.id, a.identifier, a.status, a.cap_status, a.msg_type, a.content, a.sent_at, a.expires,
       ST_AsGeoJSON(a.area)::jsonb AS geometry,
       ST_XMin(a.area) AS xmin, ST_YMin(a.area) AS ymin, ST_XMax(a.area) AS xmax, ST_YMax(a.area) AS ymax,
       extract(epoch FROM coalesce(a.sent_at, a.updated_at))::float8 AS accepted_at
FROM alerts a
WHERE a.status = 'sent' AND (a.expires IS NULL OR a.expires > now())
  AND ($1::float8 IS NULL OR a.area IS NULL OR a.area && ST_MakeEnvelope($1, $2, $3, $4, 4326))
ORDER BY a.sent_at DESC NULLS LAST
LIMIT $5
"""

_enc = msgspec.json.Encoder()


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _item(topic: str, key: str, data: dict[str, Any], accepted_at: float) -> bytes:
    return _enc.encode({"topic": topic, "key": key, "data": data, "accepted_at": accepted_at})


SQL_TOPICS = frozenset({"incidents", "hazards", "alerts"})
"""Topics whose snapshot is always read from PostgreSQL (few objects each)."""


def needs_sql(topics: frozenset[str], scope: Scope, live: LivePositions | None) -> bool:
    """Does a snapshot of ``topics`` need a connection (or can the live table serve it all)?"""
    if topics & SQL_TOPICS:
        return True
    return "positions" in topics and scope.kind != "public" and (live is None or not live.warm)


async def load(
    conn: asyncpg.Connection | None,
    topics: frozenset[str],
    area: Area,
    scope: Scope,
    limit: int,
    encoding: str = "json",
    live: LivePositions | None = None,
) -> tuple[str, bool, dict[str, bytes]]:
    """The snapshot's body fields for ``topics`` in ``area`` (``"items":[…]``, plus ``meta`` and
    ``positions`` when compact), whether any topic hit ``limit``, and (compact) each responder's
    encoded meta. Positions come from ``live`` when it is warm (see :mod:`.livetable`), otherwise
    from SQL; ``conn`` may be None when :func:`needs_sql` is False."""
    env = area.bbox or area.envelope
    box: list[float | None] = list(env) if env else [None, None, None, None]
    everyone = scope.kind == "all"
    team = scope.team_id
    rsp = scope.responder_id
    items: list[bytes] = []
    metas: dict[str, bytes] = {}
    positions: list[bytes] = []
    truncated = False
    if "positions" in topics and scope.kind != "public" and live is not None and live.warm:
        picked, hit = live.select(area, scope, limit)
        truncated |= hit
        if encoding == "compact":
            metas, positions = live.compact_parts(picked)
        else:
            items.extend(live.json_items(picked))
    elif "positions" in topics and scope.kind != "public" and encoding == "compact":
        assert conn is not None
        rows = await conn.fetch(COMPACT_POSITIONS_SQL, *box, everyone, team, rsp, limit)
        truncated |= len(rows) >= limit
        for r in rows:
            if area.cells is not None and not area.contains_point(r["lon"], r["lat"]):
                continue
            rid = r["id"]
            metas[rid] = compact.meta_array(rid, r["callsign"], r["status"], r["team_id"], r["battery_pct"])
            positions.append(compact.row_position_array(r))
    elif "positions" in topics and scope.kind != "public":
        assert conn is not None
        rows = await conn.fetch(POSITIONS_SQL, *box, everyone, team, rsp, limit)
        truncated |= len(rows) >= limit
        exact = area.cells is not None  # a bbox is exact in SQL already
        for r in rows:
            if exact and not area.contains_point(r["lon"], r["lat"]):
                continue
            items.append(r["item"].encode())
    if "incidents" in topics and scope.kind != "public":
        assert conn is not None
        rows = await conn.fetch(INCIDENTS_SQL, *box, everyone, team, rsp, limit)
        truncated |= len(rows) >= limit
        for r in rows:
            if not area.contains_point(r["lon"], r["lat"]):
                continue
            data = msgspec.to_builtins(to_incident(r))
            items.append(_item("incidents", str(r["id"]), data, r["updated_at"].timestamp()))
    if "hazards" in topics:
        assert conn is not None
        rows = await conn.fetch(HAZARDS_SQL, *box, scope.kind == "public", limit)
        truncated |= len(rows) >= limit
        for r in rows:
            change = hazard_change(r)
            if change.bbox is not None and not area.intersects_bbox(change.bbox):
                continue
            items.append(_item("hazards", change.key, change.data, r["updated_at"].timestamp()))
    if "alerts" in topics:
        assert conn is not None
        rows = await conn.fetch(ALERTS_SQL, *box, limit)
        truncated |= len(rows) >= limit
        for r in rows:
            if r["xmin"] is not None and not area.intersects_bbox((r["xmin"], r["ymin"], r["xmax"], r["ymax"])):
                continue
            aid = str(r["id"])
            content = r["content"] or {}
            data = {
                "id": aid,
                "identifier": r["identifier"],
                "status": r["status"],
                "cap_status": r["cap_status"],
                "msg_type": r["msg_type"],
                "headline": _headline(content),
                "sent_at": _iso(r["sent_at"]),
                "expires": _iso(r["expires"]),
                "geometry": r["geometry"],
            }
            items.append(_item("alerts", aid, data, r["accepted_at"]))
    if encoding == "compact":
        return compact.join(items, list(metas.values()), positions), truncated, metas
    return '"items":[' + b",".join(items).decode() + "]", truncated, metas


def load_live(
    topics: frozenset[str], area: Area, scope: Scope, limit: int, encoding: str, live: LivePositions
) -> tuple[str, bool, dict[str, bytes]]:
    """:func:`load` without I/O, for topics the warm live table serves alone (see :func:`needs_sql`)."""
    items: list[bytes] = []
    metas: dict[str, bytes] = {}
    positions: list[bytes] = []
    truncated = False
    if "positions" in topics and scope.kind != "public":
        picked, truncated = live.select(area, scope, limit)
        if encoding == "compact":
            metas, positions = live.compact_parts(picked)
        else:
            items = live.json_items(picked)
    if encoding == "compact":
        return compact.join(items, list(metas.values()), positions), truncated, metas
    return '"items":[' + b",".join(items).decode() + "]", truncated, metas


def _headline(content: Any) -> str | None:
    if not isinstance(content, dict):
        return None
    info = content.get("info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        info = info[0]
    if isinstance(info, dict) and isinstance(info.get("headline"), str):
        return str(info["headline"])
    return content.get("headline") if isinstance(content.get("headline"), str) else None


def snapshot_message(
    sub_id: str,
    epoch: str,
    seq: int,
    body: str,
    *,
    reset: bool,
    truncated: bool,
    bbox: tuple[float, float, float, float] | None = None,
) -> str:
    """A snapshot message around the body fields :func:`load` returned; ``bbox``: the area the
    subscription really follows (the asked bbox widened to its grid, see ``protocol.snap_bbox``)."""
    head = (
        f'{{"type":"snapshot","id":{_enc.encode(sub_id).decode()},"epoch":"{epoch}","seq":{seq},'
        f'"reset":{"true" if reset else "false"},"truncated":{"true" if truncated else "false"},'
    )
    if bbox is not None:
        head += f'"bbox":{_enc.encode(list(bbox)).decode()},'
    return head + body + "}"
