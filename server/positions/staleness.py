"""Component ``staleness``: one leader worker marks silent responders stale and runs partition
maintenance (creating daily partitions ahead, dropping whole partitions past retention).

Leadership is a PostgreSQL session advisory lock held on a dedicated direct connection: if the
worker dies its connection closes, the lock is released and another worker's next attempt takes
over. Un-staling is done by the ingest upsert itself (a new fix sets ``stale`` from its age).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import asyncpg

from ..bus import Change
from ..db import connect
from ..maintenance import run_partition_maintenance
from .live import change_from_row

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("sitrep.staleness")

LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('sitrep.leader.staleness'))"
MAINTENANCE_EVERY_S = 24 * 3600

MARK_STALE_SQL = """
WITH marked AS (
    UPDATE latest_positions SET stale = true
    WHERE NOT stale AND fix_time < now() - make_interval(secs => $1)
    RETURNING responder_id, fix_time, ST_X(geom) AS lon, ST_Y(geom) AS lat, h3, accuracy_m,
              speed_mps, heading_deg, battery_pct, received_at, stale
)
SELECT m.*, r.callsign, r.team_id, r.status FROM marked m JOIN responders r ON r.id = m.responder_id
"""


async def mark_stale(conn: asyncpg.Connection, stale_after_s: float) -> list[Change]:
    """Flag live positions older than ``stale_after_s``; returns one change per responder flagged."""
    rows = await conn.fetch(MARK_STALE_SQL, float(stale_after_s))
    return [change_from_row(r) for r in rows]


class StalenessLeader:
    name = "staleness"

    def __init__(self) -> None:
        self.runtime: Runtime = None  # type: ignore[assignment]
        self.is_leader = False
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_maintenance = 0.0

    async def start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._task = asyncio.create_task(self._run(), name="staleness-leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._release()

    async def _release(self) -> None:
        self.is_leader = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except Exception:
                conn.terminate()

    def interval_s(self) -> float:
        return max(0.2, min(5.0, self.runtime.settings.ingest.stale_after_s / 4))

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("staleness leader tick failed; dropping leadership")
                await self._release()
            await asyncio.sleep(self.interval_s())

    async def _tick(self) -> None:
        if self._conn is None or self._conn.is_closed():
            self.is_leader = False
            self._conn = await connect(self.runtime.settings.db)
        if not self.is_leader:
            self.is_leader = bool(await self._conn.fetchval(LOCK_SQL))
            if self.is_leader:
                log.info("became the staleness and partition-maintenance leader")
        if not self.is_leader:
            return
        s = self.runtime.settings
        if time.monotonic() - self._last_maintenance > MAINTENANCE_EVERY_S or not self._last_maintenance:
            await run_partition_maintenance(
                self._conn, retention_days=s.db.retention_days, ahead_days=s.db.partitions_ahead_days
            )
            self._last_maintenance = time.monotonic()
        changes = await mark_stale(self._conn, s.ingest.stale_after_s)
        if changes:
            self.runtime.bus.publish(changes)
