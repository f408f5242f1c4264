"""Component ``feeds``: on every worker; the one holding the feed advisory lock runs the ingesters.

Every ``feed_leader_retry_s`` a follower opens a dedicated direct connection
(:func:`server.db.connect`, never a pooled one), tries ``pg_try_advisory_lock`` and hangs up when
it is taken; the leader keeps its connection (and so the lock) for as long as it leads. The holder loads the feed
rows from ``feed_state`` (built-in rows are seeded by every worker at start), makes sure the
county boundaries are loaded, and runs a :class:`feeds.scheduler.FeedScheduler` with the
PostgreSQL sink. It LISTENs on ``sitrep_feeds`` for the API's ``reload:<name>`` / ``poll:<name>``.
When the holder dies its connection closes, PostgreSQL drops the lock, and another worker's next
attempt takes over (state and health continue from ``feed_state``). Every write re-checks in its
own transaction that the lock is still held by this worker's connection (the fencing check), so
a leader that was paused while another took over cannot write late results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from prometheus_client import Gauge

from feeds.http import FeedFetcher, FetchSettings
from feeds.scheduler import FeedScheduler

from ..db import connect
from . import repository as repo
from .sink import PgFeedSink, observe
from .zones import DbZoneResolver, ensure_counties

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("sitrep.feeds.leader")

LOCK_KEY = 0x53_0007_01
"""The feed leader's advisory lock (one bigint key; shown in pg_locks as classid 0, objid KEY)."""

FEED_LEADER = Gauge("sitrep_feed_leader", "1 on the worker running the feed ingesters", multiprocess_mode="livesum")

HOLDS_LOCK_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1 "
    "AND classid = 0 AND objid = $2::bigint::oid AND objsubid = 1)"
)


class FeedLeader:
    name = "feeds"

    def __init__(self) -> None:
        self.runtime: Runtime = None  # type: ignore[assignment]
        self.is_leader = False
        self.scheduler: FeedScheduler | None = None
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # Notifications are handled in arrival order: a poll asked right after an edit must see the edit.
        self._notify_lock = asyncio.Lock()

    async def start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        try:
            async with runtime.pool.acquire() as conn:
                await repo.seed_builtin(conn, runtime.settings.feeds)
        except asyncpg.PostgresError as exc:  # e.g. two workers seeding at once: the other one did it
            log.warning("seeding built-in feeds failed: %s", exc)
        if runtime.settings.feeds.feeds_enabled:
            self._task = asyncio.create_task(self._run(), name="feeds-leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._release()

    # ------------------------------------------------------------------ leadership
    async def _release(self) -> None:
        self.is_leader = False
        self.scheduler = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except Exception:
                conn.terminate()

    async def _run(self) -> None:
        retry_s = self.runtime.settings.feeds.feed_leader_retry_s
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await connect(self.runtime.settings.db)
                if await self._conn.fetchval("SELECT pg_try_advisory_lock($1::bigint)", LOCK_KEY):
                    log.info("became the feed leader")
                    await self._lead(self._conn)
                    log.warning("feed leadership ended")
                await self._release()  # followers hold no connection between attempts
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed leader: %s: %s", type(exc).__name__, exc)
                await self._release()
            await asyncio.sleep(retry_s)

    async def holds_lock(self, conn: asyncpg.Connection) -> bool:
        """The fencing check, run inside each write's own transaction."""
        lock_conn = self._conn
        if not self.is_leader or lock_conn is None or lock_conn.is_closed():
            return False
        return bool(await conn.fetchval(HOLDS_LOCK_SQL, lock_conn.get_server_pid(), LOCK_KEY))

    async def _lead(self, conn: asyncpg.Connection) -> None:
        """Run the ingesters until the lock connection fails (or cancellation)."""
        rt = self.runtime
        s = rt.settings.feeds
        fetcher = FeedFetcher(FetchSettings(user_agent=s.feed_contact))
        sched_task: asyncio.Task[None] | None = None
        # LISTEN before anything else: a reload or poll asked while the rows load and the counties
        # are checked is held here and handled once the scheduler exists, not lost.
        early: list[str] | None = []

        def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
            if early is not None:
                early.append(payload)
                return
            self._spawn_notify(payload)

        try:
            await conn.add_listener(repo.NOTIFY_CHANNEL, on_notify)
            try:
                await ensure_counties(rt.pool, Path(s.feed_boundaries_dir))
            except (OSError, asyncpg.PostgresError, ValueError) as exc:
                log.warning("county boundaries unavailable: %s", exc)
            async with rt.pool.acquire() as pconn:
                rows = await repo.list_feeds(pconn)
            resolver = DbZoneResolver(rt.pool, fetcher, s.feed_base_url or "https://api.weather.gov")
            sink = PgFeedSink(rt.pool, rt.bus, fencing=self.holds_lock)
            self.scheduler = FeedScheduler([repo.config_of(r) for r in rows], sink, fetcher, resolver=resolver)
            # Leadership is announced (gauge, fencing) only once requests can be served.
            self.is_leader = True
            FEED_LEADER.set(1)
            sched_task = asyncio.create_task(self.scheduler.run(), name="feed-scheduler")
            held = early or []
            early = None
            for payload in held:
                self._spawn_notify(payload)
            await asyncio.sleep(0)
            for name, health in self.scheduler.health().items():
                observe(name, health)
            while not sched_task.done():
                await asyncio.sleep(s.feed_leader_retry_s)
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=max(5.0, s.feed_leader_retry_s))
            sched_task.result()  # surfaces a scheduler crash in the log
        finally:
            self.is_leader = False
            FEED_LEADER.set(0)
            if sched_task is not None:
                sched_task.cancel()
                await asyncio.gather(sched_task, return_exceptions=True)
            for task in list(self._pending):
                task.cancel()
            with contextlib.suppress(Exception):
                await conn.remove_listener(repo.NOTIFY_CHANNEL, on_notify)
            await fetcher.aclose()

    def _spawn_notify(self, payload: str) -> None:
        task = asyncio.create_task(self._on_notify(payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _on_notify(self, payload: str) -> None:
        action, _, name = payload.partition(":")
        sched = self.scheduler
        if sched is None:
            return
        try:
            async with self._notify_lock:  # FIFO: waits for reloads that arrived earlier
                if action == "reload":
                    async with self.runtime.pool.acquire() as conn:
                        row = await repo.get_feed(conn, name)
                    if row is None:
                        await sched.remove_feed(name)
                    else:
                        sched.upsert_feed(repo.config_of(row))
            if action == "poll":
                # a full cycle now, after any poll in progress (``poll_now`` would be lost if it
                # arrived while a poll was running: that poll's result sets the next time again)
                if name in {c.name for c in sched.configs()}:
                    await sched.poll_feed(name)
        except Exception:
            log.exception("feed leader: handling %r failed", payload)
