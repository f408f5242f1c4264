"""Runs the configured feeds: fetch → parse → (follow links, resolve zones) → sink.

:class:`FeedScheduler` is owned by the server's lifespan (on the leader worker): it starts
one asyncio task per feed in :meth:`FeedScheduler.run` and stops them when that coroutine is
cancelled. Nothing starts at import. Every feed is isolated: any exception in one feed's
cycle is recorded in its :class:`FeedHealth` and backs that feed off; the others go on.

Writes go through an injected :class:`FeedSink` (the server's PostgreSQL repository):
``apply`` receives every successful parse (the sink decides created/updated/unchanged/ended
by source + external id + version and ``references``), ``save_state`` persists
:class:`FeedState` + :class:`FeedHealth` after every poll, ``load_state`` restores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import msgspec
from shapely.geometry import box, shape

from feeds import cap, firms, gdacs, nws, usgs
from feeds.config import FeedConfig, FeedState
from feeds.http import FeedFetcher, FetchError
from feeds.model import FeedFormatError, HazardItem, ItemError, ParseResult
from feeds.nws import ZoneResolver, resolve_items

log = logging.getLogger("sitrep.feeds")

Parser = Callable[[bytes, Mapping[str, Any] | None, datetime | None], ParseResult]
PARSERS: dict[str, Parser] = {
    "nws": nws.parse,
    "usgs": usgs.parse,
    "gdacs": gdacs.parse,
    "firms": firms.parse,
    "cap": cap.parse,
}
HealthStatus = Literal["ok", "failing", "stale", "disabled"]


class FeedHealth(msgspec.Struct, kw_only=True):
    """Per-feed health, for the API, ``/metrics`` and the stream's ``feeds`` topic.

    ``items_last``/``errors_last``: items and item errors in the last parsed document;
    ``items_total``: items parsed since the feed started (a counter).
    """

    status: HealthStatus = "ok"
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_poll_at: datetime | None = None
    items_total: int = 0
    items_last: int = 0
    errors_last: int = 0
    fetch_latency_ms: float | None = None
    consecutive_errors: int = 0
    last_outcome: str | None = None


class ApplySummary(msgspec.Struct, kw_only=True):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ended: int = 0


class FeedSink(Protocol):
    """Where parsed feeds go. The server implements it over PostgreSQL."""

    async def apply(self, feed: FeedConfig, result: ParseResult) -> ApplySummary: ...

    async def save_state(self, feed_name: str, state: FeedState, health: FeedHealth) -> None: ...

    async def load_state(self, feed_name: str) -> tuple[FeedState, FeedHealth] | None: ...


def in_area(item: HazardItem, bbox: tuple[float, float, float, float]) -> bool:
    """True when the item's geometry (or point) touches ``(west, south, east, north)``.

    Items with neither (geocodes only) are kept: their area is not known yet.
    """
    area = box(*bbox)
    if item.geometry is not None:
        return bool(shape(item.geometry).intersects(area))
    if item.point is not None:
        return bool(area.intersects(shape({"type": "Point", "coordinates": list(item.point)})))
    return True


class _FeedRun:
    """Mutable per-feed runtime record."""

    def __init__(self, config: FeedConfig) -> None:
        self.config = config
        self.state = FeedState()
        self.health = FeedHealth(status="ok" if config.enabled else "disabled")
        self.wake = asyncio.Event()
        self.lock = asyncio.Lock()


class FeedScheduler:
    """Polls feeds on their own schedules and writes results through a :class:`FeedSink`."""

    def __init__(
        self,
        feeds: Sequence[FeedConfig],
        sink: FeedSink,
        fetcher: FeedFetcher,
        *,
        resolver: ZoneResolver | None = None,
        clock: Callable[[], datetime] | None = None,
        stale_after_s: float | None = None,
    ) -> None:
        self._sink = sink
        self._fetcher = fetcher
        self._resolver = resolver
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stale_after_s = stale_after_s
        self._runs: dict[str, _FeedRun] = {f.name: _FeedRun(f) for f in feeds}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False

    # ----------------------------------------------------------------- public API
    def health(self) -> dict[str, FeedHealth]:
        """Current health of every feed (``stale`` is evaluated now)."""
        return {name: self._with_status(run) for name, run in self._runs.items()}

    def state(self, name: str) -> FeedState:
        return self._runs[name].state

    def configs(self) -> list[FeedConfig]:
        return [run.config for run in self._runs.values()]

    def poll_now(self, name: str) -> None:
        """Ask a running feed loop to poll at once (e.g. after an API edit)."""
        run = self._runs[name]
        run.state = msgspec.structs.replace(run.state, next_poll_at=None)
        run.wake.set()

    def upsert_feed(self, config: FeedConfig) -> None:
        """Add or reconfigure a feed (URL, interval, enabled…); a running loop picks it up."""
        run = self._runs.get(config.name)
        if run is None:
            run = self._runs[config.name] = _FeedRun(config)
            if self._running:
                self._tasks[config.name] = asyncio.create_task(self._loop(run), name=f"feed:{config.name}")
        else:
            run.config = config
        run.wake.set()

    async def remove_feed(self, name: str) -> None:
        self._runs.pop(name, None)
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def load(self) -> None:
        """Restore persisted state and health for every feed (a failing sink is logged, not fatal)."""
        for name, run in self._runs.items():
            try:
                loaded = await self._sink.load_state(name)
            except Exception as exc:  # the sink is outside our control
                log.warning("feed %s: load_state failed: %s", name, exc)
                continue
            if loaded is not None:
                run.state, run.health = loaded

    async def run(self) -> None:
        """Load state, then poll every feed until cancelled (owned by the server lifespan)."""
        await self.load()
        self._running = True
        try:
            for name, run in self._runs.items():
                self._tasks[name] = asyncio.create_task(self._loop(run), name=f"feed:{name}")
            await asyncio.Event().wait()
        finally:
            self._running = False
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def poll_feed(self, name: str) -> FeedHealth:
        """One complete cycle for one feed, now. Never raises (except cancellation)."""
        run = self._runs[name]
        async with run.lock:
            try:
                await self._cycle(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # isolation: one feed's bug must not stop the others
                log.exception("feed %s: cycle failed", name)
                self._fail(run, f"internal error: {type(exc).__name__}: {exc}")
            await self._save(run)
        return self._with_status(run)

    # ----------------------------------------------------------------- internals
    def _stale_after(self, run: _FeedRun) -> float:
        opt = run.config.options.get("stale_after_s") or self._stale_after_s
        if opt:
            return float(opt)
        return max(3 * self._fetcher.poll_interval_s(run.config), 600.0)

    def _with_status(self, run: _FeedRun) -> FeedHealth:
        health = run.health
        now = self._clock()
        status: HealthStatus = "ok"
        if not run.config.enabled:
            status = "disabled"
        elif run.state.consecutive_errors > 0:
            status = "failing"
        elif health.last_success_at is None or now - health.last_success_at > timedelta(seconds=self._stale_after(run)):
            status = "stale" if health.last_success_at is not None or health.last_outcome else "ok"
        return msgspec.structs.replace(
            health,
            status=status,
            next_poll_at=run.state.next_poll_at,
            consecutive_errors=run.state.consecutive_errors,
        )

    def _fail(self, run: _FeedRun, reason: str, status: int | None = None) -> None:
        run.state = self._fetcher.failure_state(run.config, run.state, status)
        run.health = msgspec.structs.replace(
            run.health, last_error=reason, last_error_at=self._clock(), last_outcome="error"
        )

    async def _save(self, run: _FeedRun) -> None:
        run.health = self._with_status(run)
        try:
            await self._sink.save_state(run.config.name, run.state, run.health)
        except Exception as exc:
            log.warning("feed %s: save_state failed: %s", run.config.name, exc)

    async def _cycle(self, run: _FeedRun) -> None:
        feed = run.config
        fetched = await self._fetcher.fetch(feed, run.state)
        run.health = msgspec.structs.replace(run.health, fetch_latency_ms=round(fetched.latency_ms, 1))
        now = self._clock()
        if fetched.outcome == "error":
            run.state = fetched.state
            run.health = msgspec.structs.replace(
                run.health, last_error=fetched.error, last_error_at=now, last_outcome="error"
            )
            return
        if fetched.outcome in ("not_modified", "unchanged"):
            run.state = fetched.state
            run.health = msgspec.structs.replace(
                run.health, last_success_at=now, last_outcome=fetched.outcome, errors_last=0
            )
            return
        assert fetched.body is not None
        options = dict(feed.options)
        if feed.area_of_interest and feed.kind == "firms":
            options.setdefault("bbox", feed.area_of_interest)
        options.setdefault("url", feed.url)
        try:
            result = await asyncio.to_thread(PARSERS[feed.kind], fetched.body, options, now)
        except FeedFormatError as exc:
            self._fail(run, f"unreadable document: {exc}", fetched.http_status)
            return
        if feed.kind == "cap" and result.follow:
            await self._follow(feed, result, now)
        if feed.area_of_interest:
            result.items = [i for i in result.items if in_area(i, feed.area_of_interest)]
        if self._resolver is not None:
            await self._resolve(result)
        summary = await self._sink.apply(feed, result)
        run.state = fetched.state  # validators and content hash only count once applied
        run.health = msgspec.structs.replace(
            run.health,
            last_success_at=now,
            last_outcome="changed",
            items_last=len(result.items),
            items_total=run.health.items_total + len(result.items),
            errors_last=len(result.errors),
        )
        log.info("feed %s: %d items, %d errors, %s", feed.name, len(result.items), len(result.errors), summary)

    async def _follow(self, feed: FeedConfig, result: ParseResult, now: datetime) -> None:
        """Fetch the full CAP documents an index links to; they replace provisional items."""
        limit = int(feed.options.get("follow_limit", 50))
        for link in result.follow[:limit]:
            try:
                body = await self._fetcher.get(link.url, "application/cap+xml, application/xml;q=0.9")
                sub = await asyncio.to_thread(cap.parse, body, {"url": link.url}, now)
            except (FetchError, FeedFormatError) as exc:
                result.errors.append(ItemError(link.external_id, f"linked CAP {link.url}: {exc}"))
                continue
            result.errors.extend(sub.errors)
            if sub.items:
                replaced = {i.external_id for i in sub.items}
                result.items = [
                    i
                    for i in result.items
                    if i.external_id not in replaced and not (i.raw.get("provisional") and i.url == link.url)
                ]
                result.items.extend(sub.items)

    async def _resolve(self, result: ParseResult) -> None:
        assert self._resolver is not None
        result.errors.extend(await resolve_items(result.items, self._resolver))

    async def _loop(self, run: _FeedRun) -> None:
        while True:
            run.wake.clear()
            if not run.config.enabled:
                await run.wake.wait()
                continue
            due = run.state.next_poll_at
            wait_s = 0.0 if due is None else (due - self._clock()).total_seconds()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.wake.wait(), timeout=wait_s)
                if run.wake.is_set():
                    continue
            await self.poll_feed(run.config.name)
