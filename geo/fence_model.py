"""Value types of the fence engine: ``Fence``, ``Fix``, ``FenceEvent`` and the Tile38-shaped view.

Re-exported by :mod:`geo.fences`; import them from there.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import msgspec

from geo.antimeridian import polygonal_parts

DETECTS: frozenset[str] = frozenset({"enter", "exit", "inside", "outside", "dwell"})
FenceKind = Literal["geofence", "hazard"]
TILE38_KEY = "responders"


class Fence(msgspec.Struct, kw_only=True):
    """A geofence or hazard area. ``geometry`` is a shapely Polygon/MultiPolygon (never serialised:
    encode a copy with ``geometry=None`` and ship the GeoJSON separately).

    ``applies_to``: ``None`` means everyone; otherwise responder ids and/or team ids.
    """

    id: str
    kind: FenceKind = "geofence"
    name: str = ""
    geometry: Any = None
    detect: frozenset[str] = frozenset({"enter", "exit"})
    dwell_s: float = 0.0
    hysteresis_m: float = 0.0
    applies_to: frozenset[str] | None = None
    meta: dict[str, Any] = {}
    valid_until: datetime | None = None
    version: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.detect) - DETECTS
        if unknown:
            raise ValueError(f"unknown detect names: {sorted(unknown)} (allowed: {sorted(DETECTS)})")
        if not self.detect:
            raise ValueError("detect must name at least one of " + ", ".join(sorted(DETECTS)))
        if self.dwell_s < 0 or self.hysteresis_m < 0:
            raise ValueError("dwell_s and hysteresis_m must be >= 0")
        if self.geometry is None or not polygonal_parts(self.geometry):
            raise ValueError("fence geometry must be a non-empty Polygon or MultiPolygon")
        if self.valid_until is not None and self.valid_until.tzinfo is None:
            raise ValueError("valid_until must be timezone-aware (UTC)")
        if self.applies_to is not None and not isinstance(self.applies_to, frozenset):
            self.applies_to = frozenset(self.applies_to)

    def applies(self, responder_id: str, team_id: str | None) -> bool:
        if self.applies_to is None:
            return True
        return responder_id in self.applies_to or (team_id is not None and team_id in self.applies_to)


class Fix(msgspec.Struct, kw_only=True, frozen=True):
    """One GPS fix as the evaluator sees it; ``seq`` is the ingest sequence (commit order)."""

    responder_id: str
    team_id: str | None = None
    fix_time: datetime
    lon: float
    lat: float
    accuracy_m: float | None = None
    seq: int = 0
    received_at: datetime | None = None


Reason = Literal["fix", "fence_created", "fence_moved", "fence_deleted", "fence_expired"]


class FenceEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A fence/hazard event. ``time`` is the processing time passed in, ``fix_time`` the fix's own time.

    ``group`` identifies one visit (new on enter, reused by inside/dwell/exit) and is derived from
    the fence, the responder and the visit start, so replaying the same fixes gives the same groups.
    """

    detect: str
    fence_id: str
    fence_kind: FenceKind
    responder_id: str
    fix_time: datetime
    time: datetime
    lon: float
    lat: float
    group: str
    late: bool = False
    uncertain: bool = False
    reason: Reason = "fix"
    meta: dict[str, Any] = {}
    fence_name: str = ""
    fence_version: int = 0
    seq: int | None = None
    since: datetime | None = None


def visit_group(fence_id: str, responder_id: str, since: datetime) -> str:
    """Deterministic visit id (24 hex chars)."""
    raw = f"{fence_id}\x1f{responder_id}\x1f{since.isoformat()}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


_ZERO = timedelta(0)


_encode_json = msgspec.json.Encoder().encode


def rfc3339(t: datetime) -> str:
    """UTC RFC 3339 with ``Z`` and microseconds when present (msgspec writes a UTC datetime exactly
    so, ~15x faster than ``isoformat``; events carry two of these each)."""
    if t.tzinfo is not None and (t.tzinfo is UTC or t.utcoffset() == _ZERO):
        return _encode_json(t)[1:-1].decode()
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class VisitState(NamedTuple):
    """A read-only copy of one open (responder, fence) visit, for persisting engine state."""

    state: str
    since: datetime
    group: str
    last_fix_time: datetime
    fence_version: int


_COMMANDS: dict[str, str] = {
    "fix": "set",
    "fence_created": "sethook",
    "fence_moved": "sethook",
    "fence_deleted": "delhook",
    "fence_expired": "expire",
}


def to_tile38(event: FenceEvent, hook: str | None = None) -> dict[str, Any]:
    """Shape an event like a Tile38 hook message, plus ``fix_time``, ``fence``, ``hazard`` and ``late``.

    ``command`` is ``set`` for events caused by a fix, ``sethook``/``delhook``/``expire`` for events
    caused by a fence being created or moved / deleted / expiring.
    """
    msg: dict[str, Any] = {
        "command": _COMMANDS.get(event.reason, "set"),
        "group": event.group,
        "detect": event.detect,
        "hook": hook if hook is not None else event.fence_id,
        "key": TILE38_KEY,
        "time": rfc3339(event.time),
        "id": event.responder_id,
        "object": {"type": "Point", "coordinates": [event.lon, event.lat]},
        "meta": dict(event.meta),
        "fix_time": rfc3339(event.fix_time),
        "fence": {"id": event.fence_id, "kind": event.fence_kind, "name": event.fence_name},
        "late": event.late,
        "uncertain": event.uncertain,
        "reason": event.reason,
    }
    if event.fence_kind == "hazard":
        msg["hazard"] = event.fence_id
    return msg
