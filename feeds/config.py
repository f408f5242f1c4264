"""Feed configuration and persisted per-feed state (the server stores both in PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

FeedKind = Literal["nws", "usgs", "gdacs", "firms", "cap"]
FEED_KINDS: tuple[FeedKind, ...] = ("nws", "usgs", "gdacs", "firms", "cap")

SOURCE_MIN_INTERVAL_S: dict[str, float] = {"nws": 30.0, "usgs": 60.0}
"""Never poll faster than this, whatever a feed's settings say (api.weather.gov ≥ 30 s; USGS
summary feeds are rebuilt about once a minute)."""


class FeedConfig(msgspec.Struct, kw_only=True):
    """One configured feed.

    ``min_interval_s`` is the normal polling interval (raised to the source's minimum and
    stretched when the server's caching headers say the content is fresh for longer).
    ``area_of_interest`` is ``(west, south, east, north)``; items entirely outside it are
    dropped. ``options`` are passed to the parser (e.g. FIRMS ``min_confidence``, USGS
    ``ttl_s``) and to the scheduler (``stale_after_s``, ``follow_limit``, ``accept``).
    """

    name: str
    kind: FeedKind
    url: str
    enabled: bool = True
    min_interval_s: float = 60.0
    area_of_interest: tuple[float, float, float, float] | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class FeedState(msgspec.Struct, kw_only=True):
    """What the poller must remember between polls (the ``feed_state`` table)."""

    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = None
    consecutive_errors: int = 0
    content_hash: str | None = None
    last_status: int | None = None
    last_fetch_at: datetime | None = None
