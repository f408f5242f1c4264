"""SQL for the ``feed_state`` table: feed configuration rows, their poll state and health.

One row per feed: ``kind``, ``url``, ``enabled``, ``interval_s``, ``area`` (``[w, s, e, n]``),
``options`` (parser/scheduler options; ``builtin``/``managed`` mark the built-in rows that follow
the settings until an admin edits them), ``state`` (:class:`feeds.config.FeedState`) and
``health`` (:class:`feeds.scheduler.FeedHealth` plus the last document's ``item_errors``).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from feeds.config import FeedConfig, FeedState
from feeds.scheduler import FeedHealth

from ..settings import FeedSettings

FEED_COLS = "name, kind, url, enabled, interval_s, area, options, state, health, updated_at"
NOTIFY_CHANNEL = "sitrep_feeds"
"""The API tells the leader about edits and poll requests: ``reload:<name>``, ``poll:<name>``."""


def builtin_feeds(settings: FeedSettings) -> list[dict[str, Any]]:
    """The built-in feed rows. Enabled only when feeds are on and a URL is known; with
    ``feed_base_url`` (the demo's fake feed server) every one points there."""
    base = settings.feed_base_url.rstrip("/")
    key = settings.feed_firms_map_key
    if base:
        urls = {
            "nws": f"{base}/alerts/active",
            "usgs": f"{base}/earthquakes/feed/v1.0/summary/all_hour.geojson",
            "gdacs": f"{base}/xml/rss.xml",
            "firms": f"{base}/api/area/csv/{key or 'DEMO_KEY'}/VIIRS_SNPP_NRT/world/1",
            "cap": f"{base}/cap/index.atom",
        }
    else:
        urls = {
            "nws": "https://api.weather.gov/alerts/active",
            "usgs": "https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/all_hour.geojson",
            "gdacs": "https://www.gdacs.org/xml/rss.xml",
            "firms": f"https://firms.modaps.eosdis.nasa.gov/api/area/csv/{key}/VIIRS_SNPP_NRT/world/1" if key else "",
            "cap": settings.feed_cap_url,
        }
    intervals = {"nws": 60.0, "usgs": 60.0, "gdacs": 300.0, "firms": 900.0, "cap": 300.0}
    return [
        {
            "name": kind,
            "kind": kind,
            "url": url,
            "enabled": bool(settings.feeds_enabled and url),
            "interval_s": intervals[kind],
            "options": {"builtin": True, "managed": True},
        }
        for kind, url in urls.items()
    ]


async def seed_builtin(conn: asyncpg.Connection, settings: FeedSettings) -> None:
    """Insert the built-in rows; rows an admin has not edited (``managed``) follow the settings."""
    rows = builtin_feeds(settings)
    await conn.execute(
        "INSERT INTO feed_state (name, kind, url, enabled, interval_s, options) "
        "SELECT n, k, u, e, i, o::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::float8[], "
        "$6::text[]) AS x(n, k, u, e, i, o) "
        "ON CONFLICT (name) DO UPDATE SET url = excluded.url, enabled = excluded.enabled, updated_at = now() "
        "WHERE (feed_state.options->>'managed')::bool IS TRUE "
        "AND (feed_state.url, feed_state.enabled) IS DISTINCT FROM (excluded.url, excluded.enabled)",
        [r["name"] for r in rows],
        [r["kind"] for r in rows],
        [r["url"] for r in rows],
        [r["enabled"] for r in rows],
        [r["interval_s"] for r in rows],
        [msgspec.json.encode(r["options"]).decode() for r in rows],
    )


async def list_feeds(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(f"SELECT {FEED_COLS} FROM feed_state ORDER BY name")
    return rows


async def get_feed(conn: asyncpg.Connection, name: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    row: asyncpg.Record | None = await conn.fetchrow(f"SELECT {FEED_COLS} FROM feed_state WHERE name = $1{lock}", name)
    return row


async def insert_feed(conn: asyncpg.Connection, fields: dict[str, Any]) -> asyncpg.Record | None:
    """Insert a feed; None when the name is taken."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "INSERT INTO feed_state (name, kind, url, enabled, interval_s, area, options) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING {FEED_COLS}",
        fields["name"],
        fields["kind"],
        fields["url"],
        fields["enabled"],
        fields["interval_s"],
        fields.get("area"),
        fields.get("options") or {},
    )
    return row


async def update_feed(conn: asyncpg.Connection, name: str, changes: dict[str, Any]) -> asyncpg.Record | None:
    """Apply column changes (``url``, ``enabled``, ``interval_s``, ``area``, ``options``)."""
    keys = [k for k in changes if k in ("url", "enabled", "interval_s", "area", "options")]
    sets = [f"{k} = ${i + 2}" for i, k in enumerate(keys)] + ["updated_at = now()"]
    row: asyncpg.Record | None = await conn.fetchrow(
        f"UPDATE feed_state SET {', '.join(sets)} WHERE name = $1 RETURNING {FEED_COLS}",
        name,
        *[changes[k] for k in keys],
    )
    return row


async def save_state(conn: asyncpg.Connection, name: str, state: dict[str, Any], health: dict[str, Any]) -> None:
    await conn.execute("UPDATE feed_state SET state = $2, health = $3 WHERE name = $1", name, state, health)


async def notify_leader(conn: asyncpg.Connection, action: str, name: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, f"{action}:{name}")


def config_of(row: asyncpg.Record | dict[str, Any]) -> FeedConfig:
    area = row["area"]
    return FeedConfig(
        name=row["name"],
        kind=row["kind"],
        url=row["url"],
        enabled=bool(row["enabled"]) and bool(row["url"]),
        min_interval_s=float(row["interval_s"]),
        area_of_interest=tuple(area) if area else None,
        options={k: v for k, v in (row["options"] or {}).items() if k not in ("builtin", "managed")},
    )


def state_of(row: asyncpg.Record | dict[str, Any]) -> tuple[FeedState, FeedHealth] | None:
    if not row["state"] and not row["health"]:
        return None
    state = msgspec.convert(row["state"] or {}, FeedState, strict=False)
    health = msgspec.convert(row["health"] or {}, FeedHealth, strict=False)
    return state, health
