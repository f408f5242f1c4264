"""The worker's in-memory copy of ``latest_positions``, for ``positions`` snapshots without SQL.

Thousands of viewers each subscribing to their own box would otherwise cost one SQL query (and
one Python encoding of every row) per box. Here each responder's current entry is held once, with
its items already encoded (the compact position and meta arrays, the json item), and its lon/lat
in numpy arrays, so a box's snapshot is one vectorized comparison and a join of bytes.

Kept exactly like ``latest_positions``:

- loaded in full from PostgreSQL when the worker's first viewer arrives, whenever the stream's epoch changes (Redis
  lost history, a tick may have been lost, the subscriber could not fill a gap), and every
  ``stream_live_refresh_s`` as a safety net for writes that bypass the stream (a worker without viewers
  keeps no copy: the hub stops applying batches and invalidates it);
- then every ``positions`` change the worker receives through Redis is applied (the very batches
  it routes to viewers, so a snapshot taken at ``(epoch, seq)`` holds exactly the batches up to
  ``seq``): a newer-or-equal fix time replaces the entry (PostgreSQL keeps only the newest fix, and
  status/stale changes carry the stored fix time), a delete removes it; changes received while
  a load runs are applied on top of it when it finishes;
- while not loaded (start, epoch change) :attr:`warm` is False and snapshots use SQL.

Scope is applied per snapshot (team and own responder for responders, nothing for the public).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np

from . import compact
from .area import Area
from .scope import Scope
from .snapshot import POSITION_ITEM_SQL
from .ticks import Item

LOAD_SQL = f"""
SELECT lp.responder_id::text AS id, r.callsign, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat, lp.fix_time,
       lp.accuracy_m, lp.speed_mps, lp.heading_deg, lp.battery_pct, r.status, lp.stale, r.team_id::text AS team_id,
       extract(epoch FROM lp.received_at)::float8 AS accepted_at, {POSITION_ITEM_SQL} AS item
FROM latest_positions lp JOIN responders r ON r.id = lp.responder_id
"""


class CanonicalMetas(dict[str, bytes]):
    """Metas by responder id that are the worker's shared meta objects (``StreamHub._metas``), so a
    group can keep these very objects without looking each one up (see ``Group.seed_meta``)."""

    canonical = True


class LivePositions:
    def __init__(self, canon: dict[str, bytes] | None = None) -> None:
        self._canon: dict[str, bytes] = {} if canon is None else canon
        """The worker's shared meta object per responder: loaded metas join it, so the table, the
        groups and the received items hold one bytes object per responder's meta."""
        self.warm = False
        self.loading = False
        self._buffer: list[Item] = []
        self._generation = 0
        """Bumped by :meth:`invalidate`: a load that began before it does not make the table warm."""
        self._reset()

    def _reset(self) -> None:
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._free: list[int] = []
        self._lon = np.zeros(64)
        self._lat = np.zeros(64)
        self._alive = np.zeros(64, dtype=bool)
        self._team: list[str | None] = []
        self._fix_ms: list[int] = []
        self._position: list[bytes] = []
        self._meta: list[bytes] = []
        self._json: list[bytes] = []
        self._rank: np.ndarray | None = None
        """Each slot's place in responder-id order (rebuilt when a responder is added)."""

    def __len__(self) -> int:
        return len(self._index)

    # ---- loading -----------------------------------------------------------------------------
    def invalidate(self) -> None:
        """History may have been lost: serve snapshots from SQL until the next :meth:`load`."""
        self.warm = False
        self._generation += 1

    async def load(self, conn: asyncpg.Connection) -> None:
        """Replace the table with ``latest_positions``, then apply what arrived meanwhile. A refresh
        (the table is warm) keeps serving and applying changes while the query runs."""
        generation = self._generation
        self.loading = True
        self._buffer = []
        try:
            rows = await conn.fetch(LOAD_SQL)
        except BaseException:
            self.loading = False
            self._buffer = []
            raise
        self._reset()
        canon = self._canon
        for r in rows:
            rid = r["id"]
            meta = compact.meta_array(rid, r["callsign"], r["status"], r["team_id"], r["battery_pct"])
            shared = canon.get(rid)
            if shared == meta:
                meta = shared
            else:
                canon[rid] = meta
            self._put(
                rid,
                r["lon"],
                r["lat"],
                r["team_id"],
                compact._ms(r["fix_time"]) or 0,
                compact.row_position_array(r),
                meta,
                r["item"].encode(),
            )
        buffered, self._buffer = self._buffer, []
        self.loading = False
        self.warm = generation == self._generation
        self._apply(buffered)

    def point(self, key: str) -> tuple[float, float] | None:
        """Where the table has responder ``key`` (warm tables only), else None."""
        if not self.warm:
            return None
        i = self._index.get(key)
        return None if i is None else (float(self._lon[i]), float(self._lat[i]))

    # ---- changes -----------------------------------------------------------------------------
    def apply(self, items: list[Item]) -> None:
        """Apply a received batch's ``positions`` changes (in order)."""
        if self.loading:
            self._buffer.extend(it for it in items if it.topic == "positions")
        if self.warm:
            self._apply(items)

    def _apply(self, items: list[Item]) -> None:
        index = self._index
        for it in items:
            if it.topic != "positions" or it.compact is None:
                continue
            i = index.get(it.key)
            if it.meta is None:  # deleted
                if i is not None:
                    self._remove(it.key, i)
                continue
            if it.lon is None or it.lat is None:
                continue
            fix_ms = it.fix_ms or 0
            if i is not None and fix_ms < self._fix_ms[i]:
                continue  # an older fix than the stored one: PostgreSQL kept the newer
            self._put(it.key, it.lon, it.lat, it.team_id, fix_ms, it.compact, it.meta, it.json, i)

    def _put(
        self,
        rid: str,
        lon: float,
        lat: float,
        team_id: str | None,
        fix_ms: int,
        position: bytes,
        meta: bytes,
        item: bytes,
        i: int | None = None,
    ) -> None:
        if i is None:
            i = self._index.get(rid)
        if i is None:
            if self._free:
                i = self._free.pop()
                self._ids[i] = rid
                self._team[i], self._fix_ms[i] = team_id, fix_ms
                self._position[i], self._meta[i], self._json[i] = position, meta, item
            else:
                i = len(self._ids)
                if i >= len(self._lon):
                    self._grow()
                self._ids.append(rid)
                self._team.append(team_id)
                self._fix_ms.append(fix_ms)
                self._position.append(position)
                self._meta.append(meta)
                self._json.append(item)
            self._index[rid] = i
            self._alive[i] = True
            self._rank = None
        else:
            self._team[i], self._fix_ms[i] = team_id, fix_ms
            self._position[i], self._meta[i], self._json[i] = position, meta, item
        self._lon[i] = lon
        self._lat[i] = lat

    def _remove(self, rid: str, i: int) -> None:
        del self._index[rid]
        self._alive[i] = False
        self._free.append(i)

    def _grow(self) -> None:
        n = len(self._lon) * 2
        for name in ("_lon", "_lat", "_alive"):
            old = getattr(self, name)
            new = np.zeros(n, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    # ---- snapshots ---------------------------------------------------------------------------
    def select(self, area: Area, scope: Scope, limit: int) -> tuple[list[int], bool]:
        """Rows a snapshot of ``area`` shows to ``scope``, ordered by responder id like the SQL
        path (envelope, scope and limit first, then the exact cell test), and whether the limit was hit."""
        if scope.kind == "public":
            return [], False
        n = len(self._ids)
        mask = self._alive[:n].copy()
        env = area.bbox or area.envelope
        if env is not None:
            lon, lat = self._lon[:n], self._lat[:n]
            mask &= (lon >= env[0]) & (lon <= env[2]) & (lat >= env[1]) & (lat <= env[3])
        picked = np.flatnonzero(mask)
        rows: list[int] = picked[np.argsort(self._ranks()[picked], kind="stable")].tolist()
        if scope.kind != "all":
            team, rsp, teams, ids = scope.team_id, scope.responder_id, self._team, self._ids
            rows = [i for i in rows if (team is not None and teams[i] == team) or ids[i] == rsp]
        truncated = len(rows) >= limit
        rows = rows[:limit]
        if area.cells is not None:
            lons, lats = self._lon, self._lat
            rows = [i for i in rows if area.contains_point(float(lons[i]), float(lats[i]))]
        return rows, truncated

    def _ranks(self) -> np.ndarray:
        if self._rank is None or len(self._rank) != len(self._ids):
            ids = self._ids
            order = sorted(range(len(ids)), key=ids.__getitem__)
            rank = np.empty(len(ids), dtype=np.int64)
            rank[order] = np.arange(len(ids))
            self._rank = rank
        return self._rank

    def compact_parts(self, rows: list[int]) -> tuple[CanonicalMetas, list[bytes]]:
        """Each row's meta (by responder id) and compact position."""
        ids, meta, position = self._ids, self._meta, self._position
        return CanonicalMetas(zip(map(ids.__getitem__, rows), map(meta.__getitem__, rows), strict=True)), list(
            map(position.__getitem__, rows)
        )

    def json_items(self, rows: list[int]) -> list[bytes]:
        items = self._json
        return [items[i] for i in rows]

    def entry(self, rid: str) -> dict[str, Any] | None:
        """One responder's stored entry (tests and diagnostics)."""
        i = self._index.get(rid)
        if i is None:
            return None
        return {
            "lon": float(self._lon[i]),
            "lat": float(self._lat[i]),
            "team_id": self._team[i],
            "fix_ms": self._fix_ms[i],
            "position": self._position[i],
            "meta": self._meta[i],
            "json": self._json[i],
        }
