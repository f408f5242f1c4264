"""Arrival detection: an assignment is ``on_scene`` once its responder has stayed near the incident.

Two paths lead here, both ending in :func:`server.incidents.assignments.act` (``arrive``), which is
a conditional transition, so whichever comes first wins and the other is a no-op:

1. **Fence events.** Accepting an assignment draws a geofence (``meta.purpose = "arrival"``,
   ``meta.incident_id``, ``meta.assignment_id``, ``dwell_s``) for the fence engine. The
   :class:`ArrivalMonitor` subscribes to ``runtime.bus``; a ``fence_events`` change whose fence
   meta names an ``assignment_id`` with ``detect`` ``enter`` or ``dwell`` (the engine emits
   ``enter`` only after the dwell) is queued and applied.
2. **Its own check**, independent of the fence evaluator: every ``arrival_check_interval_s`` it
   compares active (accepted / en route) assignments with ``latest_positions``. A fix within
   ``arrival_radius_m`` of the incident starts a visit (``assignments.inside_since`` = its fix
   time); a later fix still inside with ``fix_time - inside_since >= arrival_dwell_s`` is an
   arrival; a fix outside ends the visit. The state lives in PostgreSQL, and one worker at a time
   runs the check (a transaction-level advisory lock), so it works with any number of workers.
   It samples latest positions, so an excursion shorter than the check interval can go unseen.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from typing import Any

from ..bus import Change
from ..errors import SitrepError
from ..security import Principal
from . import assignments
from .scope import Work

log = logging.getLogger("sitrep.incidents.arrival")
LOCK_KEY = 0x51_72_41_72  # advisory lock id of the arrival check
SYSTEM = Principal(kind="system", id=uuid.UUID(int=0), name="arrival-monitor", role="admin")

CANDIDATES_SQL = """
SELECT a.id, a.inside_since, lp.fix_time,
       ST_DWithin(lp.geom::geography, i.geom::geography, $1) AS inside
FROM assignments a
JOIN incidents i ON i.id = a.incident_id
JOIN latest_positions lp ON lp.responder_id = a.responder_id
WHERE a.status IN ('accepted', 'en_route') AND a.responder_id IS NOT NULL
  AND lp.fix_time > now() - make_interval(secs => $2)
"""


async def check_arrivals(work: Work) -> list[uuid.UUID]:
    """One pass of the position check (inside the caller's transaction); returns arrived assignments."""
    s = work.settings
    if not await work.conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
        return []
    arrived: list[uuid.UUID] = []
    rows = await work.conn.fetch(CANDIDATES_SQL, s.incidents.arrival_radius_m, float(s.ingest.stale_after_s))
    for row in rows:
        if not row["inside"]:
            if row["inside_since"] is not None:
                await work.conn.execute("UPDATE assignments SET inside_since = NULL WHERE id = $1", row["id"])
            continue
        since = row["inside_since"]
        if since is None or row["fix_time"] < since:
            await work.conn.execute(
                "UPDATE assignments SET inside_since = $2 WHERE id = $1", row["id"], row["fix_time"]
            )
            since = row["fix_time"]
        if (row["fix_time"] - since).total_seconds() >= s.incidents.arrival_dwell_s:
            dwell = (row["fix_time"] - since).total_seconds()
            await assignments.act(
                work,
                row["id"],
                "arrive",
                reason=f"arrival detected: within {s.incidents.arrival_radius_m:.0f} m for {dwell:.0f} s",
            )
            arrived.append(row["id"])
    return arrived


def fence_arrival(change: Change) -> uuid.UUID | None:
    """The assignment a fence event reports an arrival for, if any."""
    data = change.data
    meta = data.get("meta") or (data.get("fence") or {}).get("meta") or {}
    if data.get("detect") not in ("enter", "dwell") or meta.get("purpose") != "arrival":
        return None
    try:
        return uuid.UUID(str(meta.get("assignment_id")))
    except ValueError:
        return None


class ArrivalMonitor:
    """A runtime component: the periodic arrival check plus the fence-event listener."""

    name = "arrival-monitor"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[uuid.UUID] = asyncio.Queue(maxsize=10_000)
        self._unsubscribe: Any = None
        self._runtime: Any = None

    async def start(self, runtime: Any) -> None:
        self._runtime = runtime
        self._unsubscribe = runtime.bus.subscribe(self._on_changes)
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _on_changes(self, changes: list[Change]) -> None:
        for change in changes:
            if change.topic == "fence_events" and (assignment_id := fence_arrival(change)) is not None:
                try:
                    self._queue.put_nowait(assignment_id)
                except asyncio.QueueFull:
                    log.warning("arrival queue full; the position check will catch up")

    async def _run(self) -> None:
        interval = self._runtime.settings.incidents.arrival_check_interval_s
        while True:
            try:
                assignment_id = await asyncio.wait_for(self._queue.get(), timeout=interval)
                await self._apply(functools.partial(_fence_arrive, assignment_id=assignment_id))
            except TimeoutError:
                await self._apply(check_arrivals)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("arrival monitor pass failed")
                await asyncio.sleep(interval)

    async def _apply(self, fn: Any) -> None:
        runtime = self._runtime
        async with runtime.pool.acquire() as conn:
            async with conn.transaction():
                work = Work(conn, SYSTEM, runtime.settings)
                await fn(work)
        runtime.bus.publish(list(work.changes.values()))


async def _fence_arrive(work: Work, assignment_id: uuid.UUID) -> None:
    try:
        await assignments.act(work, assignment_id, "arrive", reason="arrival fence entered")
    except SitrepError as exc:  # already arrived, released or gone
        log.info("fence arrival ignored", extra={"assignment": str(assignment_id), "why": exc.detail})
