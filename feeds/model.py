"""Plain structs every feed parser returns, and the small helpers they share.

A parser turns one fetched document into a :class:`ParseResult`: the hazards it could read
(:class:`HazardItem`) and one :class:`ItemError` per item it had to skip, with the reason.
Only a document that cannot be read at all raises :class:`FeedFormatError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Severity = Literal["extreme", "severe", "moderate", "minor", "unknown"]
Status = Literal["active", "cancelled", "expired"]

SEVERITIES: tuple[Severity, ...] = ("extreme", "severe", "moderate", "minor", "unknown")


class FeedFormatError(ValueError):
    """The whole document is unreadable (not JSON/XML/CSV, wrong shape, hostile XML)."""


class HazardItem(msgspec.Struct, kw_only=True):
    """One hazard as read from a feed, normalised; coordinates are always ``lon, lat``.

    ``geometry`` is a GeoJSON Polygon/MultiPolygon dict, or ``None`` when the area must be
    resolved later from ``geocodes`` (e.g. NWS ``SAME``/``UGC``; see :func:`feeds.nws.resolve_geometry`).
    ``version`` changes whenever the source republishes the item (an NWS ``sent``, a USGS ``updated``).
    ``references`` lists the external ids this item replaces or cancels.
    """

    source: str
    external_id: str
    version: str
    kind: str
    severity: Severity = "unknown"
    title: str = ""
    description: str = ""
    geometry: dict[str, Any] | None = None
    geocodes: dict[str, list[str]] = msgspec.field(default_factory=dict)
    point: tuple[float, float] | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    status: Status = "active"
    references: list[str] = msgspec.field(default_factory=list)
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
    url: str | None = None


class ItemError(msgspec.Struct):
    """An item that was skipped (or kept only in part) and why."""

    external_id: str | None
    reason: str


class FollowLink(msgspec.Struct):
    """A document an index feed points to (e.g. the full CAP XML behind an Atom entry)."""

    url: str
    external_id: str | None = None
    updated: str | None = None


class ParseResult(msgspec.Struct):
    """What one parse produced. ``follow`` lists linked documents worth fetching (CAP indexes)."""

    items: list[HazardItem] = msgspec.field(default_factory=list)
    errors: list[ItemError] = msgspec.field(default_factory=list)
    follow: list[FollowLink] = msgspec.field(default_factory=list)


def normalize_severity(value: str | None) -> Severity:
    """Map CAP-style severities (any case) to the five normalised values."""
    text = (value or "").strip().lower()
    for sev in SEVERITIES:
        if text == sev:
            return sev
    return "unknown"
