"""Request and response bodies of ``/v1/feeds``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from feeds.scheduler import FeedHealth

from ..structs import Body


class FeedCreate(Body):
    name: str
    """Lower-case letters, digits, ``-`` and ``_`` (1–63)."""
    kind: str
    """``nws``, ``usgs``, ``gdacs``, ``firms`` or ``cap``."""
    url: str
    enabled: bool = True
    interval_s: float | None = None
    """Polling interval; at least the source's minimum (NWS 30 s, USGS 60 s). Default 300 s."""
    area: list[float] | None = None
    """Area of interest ``[west, south, east, north]``; items entirely outside are dropped."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Parser/scheduler options: ``min_confidence``, ``h3_res``, ``ttl_s``, ``stale_after_s``, ``follow_limit``."""


class FeedUpdate(Body):
    url: str | None = None
    enabled: bool | None = None
    interval_s: float | None = None
    area: list[float] | msgspec.UnsetType | None = msgspec.UNSET
    """``null`` clears the area of interest."""
    options: dict[str, Any] | None = None


class FeedItemError(msgspec.Struct, kw_only=True):
    external_id: str | None
    reason: str


class FeedHealthOut(FeedHealth, kw_only=True):
    """A feed's health in the API: the scheduler's :class:`FeedHealth`, plus the last document's item
    errors, and ``pending`` as the status of a feed not polled yet."""

    status: str = "pending"  # type: ignore[assignment]
    """``ok``, ``failing``, ``stale``, ``disabled`` or ``pending`` (not polled yet)."""
    item_errors: list[FeedItemError] = msgspec.field(default_factory=list)


class Feed(msgspec.Struct, kw_only=True):
    name: str
    kind: str
    url: str
    enabled: bool
    interval_s: float
    area: list[float] | None
    options: dict[str, Any]
    builtin: bool
    health: FeedHealthOut
    updated_at: datetime


class FeedPage(msgspec.Struct, kw_only=True):
    items: list[Feed]
    next_cursor: str | None = None
