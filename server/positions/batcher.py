"""The group-commit batcher (component ``ingest``): acknowledged means committed.

Handlers :meth:`IngestBatcher.submit` validated fixes and await the answer. A single loop hands
what is queued (up to ``SITREP_INGEST_MAX_BATCH`` fixes) to one of ``SITREP_INGEST_WRITERS`` writer
connections, which runs ONE statement in ONE transaction (:mod:`.writer`) and commits. Only then are
the submitters' futures resolved (``stored`` / ``duplicate``) and the new live positions published on
the change bus.

When a flush starts: once a writer is free AND the oldest queued submission has waited
``SITREP_INGEST_FLUSH_MS`` (the linger, counted from its arrival), or at once when
``SITREP_INGEST_MAX_BATCH`` fixes are queued. Time spent waiting for a busy writer counts toward the
linger, so under load (writers always busy) a flush starts as soon as a writer frees up, with what
arrived during the running commits (classic group commit), and a fix never waits for the linger
*and then* for a writer. Until 2026-11-26 the loop slept the whole linger after each wakeup and only
then waited for a writer: both waits added up.

The queue is bounded per worker (``SITREP_INGEST_QUEUE_LIMIT`` fixes): when it is full, submit
raises :class:`Unavailable` (503 + Retry-After) instead of growing memory. On stop: refuse new
fixes, flush what is queued, then exit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
from prometheus_client import Counter, Histogram

from ..bus import Change
from ..errors import Unavailable
from ..maintenance import ensure_partitions
from . import live
from .fixes import Fix
from .writer import Latest, Written, write_fixes

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("sitrep.ingest")

FIXES = Counter("sitrep_ingest_fixes_total", "Fixes through the group commit", ["outcome"])
FLUSH_SECONDS = Histogram(
    "sitrep_ingest_flush_seconds",
    "Duration of one group commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
FLUSH_SIZE = Histogram(
    "sitrep_ingest_flush_fixes", "Fixes per group commit", buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000)
)

_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class _Submission:
    __slots__ = ("at", "fixes", "future", "responders")

    def __init__(
        self,
        fixes: Sequence[Fix],
        future: asyncio.Future[list[str]],
        responders: AbstractSet[uuid.UUID] | None,
        at: float = 0.0,
    ) -> None:
        self.fixes = fixes
        self.future = future
        self.responders = responders
        self.at = at
        """Arrival (event-loop time): the linger counts from the oldest queued submission's."""


class IngestBatcher:
    name = "ingest"

    def __init__(self, writers: int = 2) -> None:
        self.writers = max(1, writers)
        self.runtime: Runtime = None  # type: ignore[assignment]
        self._queue: collections.deque[_Submission] = collections.deque()
        self._queued = 0
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.writers)
        self._flushes: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._accepting = False

    # -- component -------------------------------------------------------------------------
    async def start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        s = runtime.settings.ingest
        self.flush_s = s.ingest_flush_ms / 1000.0
        self.max_batch = s.ingest_max_batch
        self.queue_limit = s.ingest_queue_limit
        self.stale_after_s = s.stale_after_s
        self._accepting = True
        self._loop_task = asyncio.create_task(self._run(), name="ingest-batcher")

    async def stop(self) -> None:
        self._accepting = False
        self._wakeup.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(self._loop_task, timeout=30)
            except TimeoutError:
                log.error("ingest batcher did not drain in time; unacknowledged fixes dropped")
                self._loop_task.cancel()
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    # -- producers -------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        return self._queued

    async def submit(self, fixes: Sequence[Fix], responders: AbstractSet[uuid.UUID] | None = None) -> list[str]:
        """Queue ``fixes`` (unique by responder + fix time) and wait until they are committed.

        ``responders``: the responder ids of ``fixes`` when the caller knows them (a flush whose
        submissions share no responder needs no cross-submission duplicate check).
        Returns one status per fix: ``stored`` or ``duplicate``.
        """
        if not fixes:
            return []
        if not self._accepting:
            raise Unavailable("the server is shutting down", retry_after_s=1)
        if self._queued + len(fixes) > self.queue_limit:
            FIXES.labels("refused").inc(len(fixes))
            raise Unavailable("ingest queue is full; retry shortly", retry_after_s=1)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str]] = loop.create_future()
        self._queue.append(_Submission(fixes, future, responders, loop.time()))
        self._queued += len(fixes)
        self._wakeup.set()
        # Not shielded: cancelling this wait cancels only this submission's future (the flush skips
        # futures already done), never the commit it shares with other submitters.
        return await future

    # -- the flusher -----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._queue:
                self._wakeup.clear()
                if not self._accepting:
                    return
                continue
            await self._slots.acquire()
            if self._accepting and self._queued < self.max_batch and self.flush_s > 0:
                # Linger: the oldest queued fix waits at most flush_s in all (a busy writer included).
                linger = self._queue[0].at + self.flush_s - asyncio.get_running_loop().time()
                if linger > 0:
                    await asyncio.sleep(linger)
            batch = self._take()
            task = asyncio.create_task(self._flush(batch), name="ingest-flush")
            self._flushes.add(task)
            task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        self._slots.release()

    def _take(self) -> list[_Submission]:
        batch: list[_Submission] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].fixes) <= self.max_batch):
            sub = self._queue.popleft()
            batch.append(sub)
            count += len(sub.fixes)
        self._queued -= count
        return batch

    async def _flush(self, batch: list[_Submission]) -> None:
        fixes, where = _merge(batch)
        started = time.perf_counter()
        try:
            written = await self._write(fixes)
        except Exception as exc:
            log.exception("group commit failed", extra={"fixes": len(fixes)})
            FIXES.labels("failed").inc(len(fixes))
            error = Unavailable("could not store the fixes; retry", retry_after_s=1)
            error.__cause__ = exc
            for sub in batch:
                if not sub.future.done():
                    sub.future.set_exception(error)
            return
        FLUSH_SECONDS.observe(time.perf_counter() - started)
        FLUSH_SIZE.observe(len(fixes))
        FIXES.labels("stored").inc(written.stored)
        # Committed: now (and only now) answer the submitters.
        status = [_STORED] * len(fixes)
        for i in written.duplicates:
            status[i] = _DUPLICATE
        offset = 0
        for sub in batch:
            end = offset + len(sub.fixes)
            if where is None:
                statuses = status[offset:end]
            else:
                # A fix merged into an earlier submission's equal fix is that one's duplicate.
                statuses = [status[i] if i >= 0 else _DUPLICATE for i in where[offset:end]]
            offset = end
            if not sub.future.done():
                sub.future.set_result(statuses)
        if written.latest:
            self.runtime.bus.publish([position_change(fixes[x.at], x) for x in written.latest])

    async def _write(self, fixes: list[Fix]) -> Written:
        attempts = 0
        while True:
            attempts += 1
            try:
                # One statement = one implicit transaction, committed when it returns (no
                # BEGIN/COMMIT round trips): history and live state commit together or not at all.
                async with self.runtime.pool.acquire() as conn:
                    return await write_fixes(conn, fixes, self.stale_after_s)
            except _RETRYABLE:
                if attempts >= 5:
                    raise
                await asyncio.sleep(0.005 * attempts)
            except asyncpg.CheckViolationError as exc:
                # "no partition of relation positions found for row": create partitions, retry once.
                if attempts >= 2 or "partition" not in str(exc):
                    raise
                db = self.runtime.settings.db
                async with self.runtime.pool.acquire() as conn:
                    await ensure_partitions(conn, retention_days=db.retention_days, ahead_days=db.partitions_ahead_days)


_STORED, _DUPLICATE = "stored", "duplicate"


def _merge(batch: list[_Submission]) -> tuple[list[Fix], list[int] | None]:
    """The fixes of a flush, unique by responder + fix time.

    Each submission is unique already; so are submissions whose responders differ (the usual
    case: a device posts for its own responder), which are simply concatenated (``None``).
    Otherwise also the position in the merged list of every submitted fix (-1: a repeat of an
    earlier submission's fix).
    """
    if len(batch) == 1:
        return list(batch[0].fixes), None
    seen: set[uuid.UUID] = set()
    total = 0
    for sub in batch:
        if sub.responders is None:
            break
        seen.update(sub.responders)
        total += len(sub.responders)
        if len(seen) != total:
            break
    else:
        return [fix for sub in batch for fix in sub.fixes], None
    first: dict[tuple[uuid.UUID, datetime], int] = {}
    fixes: list[Fix] = []
    where: list[int] = []
    for sub in batch:
        for fix in sub.fixes:
            pos = first.setdefault(fix.key, len(fixes))
            if pos == len(fixes):
                fixes.append(fix)
                where.append(pos)
            else:
                where.append(-1)
    return fixes, where


def position_change(fix: Fix, latest: Latest) -> Change:
    return live.position_change(
        str(fix.responder_id),
        callsign=latest.callsign,
        lon=fix.lon,
        lat=fix.lat,
        fix_time=fix.fix_time,
        accuracy_m=fix.accuracy_m,
        speed_mps=fix.speed_mps,
        heading_deg=fix.heading_deg,
        battery_pct=fix.battery_pct,
        status=latest.status,
        stale=latest.stale,
        h3=fix.h3,
        team_id=latest.team_id,
        accepted_at=fix.accepted_at,
    )
