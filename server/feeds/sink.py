"""The PostgreSQL :class:`feeds.scheduler.FeedSink`, and per-feed metrics.

``apply`` stores a whole parsed document in one transaction (:mod:`.hazard_apply`), checks the
fencing condition first (the caller still holds the feed leadership; a paused old leader's late
write is refused), and publishes the hazard changes on the bus after commit. ``save_state`` writes
the feed's state and health (with the last document's item errors) to ``feed_state``, updates the
``/metrics`` gauges and publishes the health on the stream's ``feeds`` topic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge

from feeds.config import FeedConfig, FeedState
from feeds.model import ParseResult
from feeds.scheduler import ApplySummary, FeedHealth
from server.bus import Change, ChangeBus
from server.hazards.repository import DEFAULT_POINT_RADIUS_M

from . import repository as repo
from .covers import CoverCache
from .hazard_apply import apply_items

log = logging.getLogger("sitrep.feeds")

MAX_ITEM_ERRORS = 20
"""Item errors kept in a feed's health (the first ones of the last document)."""

FEED_UP = Gauge("sitrep_feed_up", "1 when the feed's last poll succeeded", ["feed"], multiprocess_mode="livemax")
FEED_LAST_SUCCESS = Gauge(
    "sitrep_feed_last_success_timestamp_seconds", "Unix time of the last successful poll", ["feed"],
    multiprocess_mode="livemax",
)  # fmt: skip
FEED_LATENCY = Gauge(
    "sitrep_feed_fetch_latency_seconds", "Latency of the last fetch", ["feed"], multiprocess_mode="livemax"
)
FEED_ITEMS = Gauge("sitrep_feed_items", "Items in the feed's last document", ["feed"], multiprocess_mode="livemax")
FEED_ITEM_ERRORS = Gauge(
    "sitrep_feed_item_errors", "Item errors in the feed's last document", ["feed"], multiprocess_mode="livemax"
)
FEED_CONSECUTIVE_ERRORS = Gauge(
    "sitrep_feed_consecutive_errors", "Failed polls in a row", ["feed"], multiprocess_mode="livemax"
)
FEED_POLLS = Counter("sitrep_feed_polls_total", "Feed polls by outcome", ["feed", "outcome"])
FEED_HAZARDS = Counter("sitrep_feed_hazards_total", "Hazards written by feeds", ["feed", "change"])


class LeadershipLost(RuntimeError):
    """The feed leader lost its lock: its writes are refused."""


FencingCheck = Callable[[asyncpg.Connection], Awaitable[bool]]


def health_json(health: FeedHealth, item_errors: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(health)
    out["item_errors"] = item_errors
    return out


class PgFeedSink:
    """Implements :class:`feeds.scheduler.FeedSink` over PostgreSQL."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: ChangeBus | None = None,
        *,
        fencing: FencingCheck | None = None,
        point_radius_m: float = DEFAULT_POINT_RADIUS_M,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._fencing = fencing
        self._point_radius_m = point_radius_m
        self._item_errors: dict[str, list[dict[str, Any]]] = {}
        self._error_counts: dict[str, int] = {}
        self.covers = CoverCache()

    async def apply(self, feed: FeedConfig, result: ParseResult) -> ApplySummary:
        sources = sorted({feed.kind, *(i.source for i in result.items)})
        async with self._pool.acquire() as conn, conn.transaction():
            if self._fencing is not None and not await self._fencing(conn):
                raise LeadershipLost("no longer the feed leader; write refused")
            applied = await apply_items(
                conn, result.items, sweep_sources=sources, point_radius_m=self._point_radius_m, cache=self.covers
            )
        result.errors.extend(applied.errors)  # the scheduler counts them into the health
        self._item_errors[feed.name] = [
            {"external_id": e.external_id, "reason": e.reason} for e in result.errors[:MAX_ITEM_ERRORS]
        ]
        self._error_counts[feed.name] = len(result.errors)
        if self._bus is not None and applied.changes:
            self._bus.publish(applied.changes)
        for change, n in msgspec.structs.asdict(applied.summary).items():
            if n:
                FEED_HAZARDS.labels(feed.name, change).inc(n)
        return applied.summary

    async def save_state(self, feed_name: str, state: FeedState, health: FeedHealth) -> None:
        errors = self._item_errors.get(feed_name)
        async with self._pool.acquire() as conn:
            if errors is None:  # keep what the last applied document recorded
                old = await conn.fetchval("SELECT health->'item_errors' FROM feed_state WHERE name = $1", feed_name)
                errors = self._item_errors[feed_name] = list(old or [])
            if health.last_outcome in ("not_modified", "unchanged") and feed_name in self._error_counts:
                # the document did not change, nor did its item errors (the scheduler counts 0)
                health = msgspec.structs.replace(health, errors_last=self._error_counts[feed_name])
            data = health_json(health, errors)
            await repo.save_state(conn, feed_name, msgspec.to_builtins(state), data)
        observe(feed_name, health)
        if self._bus is not None:
            self._bus.publish(Change(topic="feeds", key=feed_name, data={"name": feed_name, **data}, public=False))

    async def load_state(self, feed_name: str) -> tuple[FeedState, FeedHealth] | None:
        async with self._pool.acquire() as conn:
            row = await repo.get_feed(conn, feed_name)
        return None if row is None else repo.state_of(row)


def observe(name: str, health: FeedHealth) -> None:
    """Export one feed's health to ``/metrics``."""
    FEED_UP.labels(name).set(1 if health.status == "ok" else 0)
    if health.last_success_at is not None:
        FEED_LAST_SUCCESS.labels(name).set(health.last_success_at.timestamp())
    if health.fetch_latency_ms is not None:
        FEED_LATENCY.labels(name).set(health.fetch_latency_ms / 1000.0)
    FEED_ITEMS.labels(name).set(health.items_last)
    FEED_ITEM_ERRORS.labels(name).set(health.errors_last)
    FEED_CONSECUTIVE_ERRORS.labels(name).set(health.consecutive_errors)
    FEED_POLLS.labels(name, health.last_outcome or "none").inc()
