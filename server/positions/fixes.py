"""A GPS fix as the ingest path carries it, and the checks every fix passes before it is queued.

Pure: no I/O. Each check either returns a :class:`Fix` or raises :class:`Rejected` with a short
machine-readable reason (``invalid_coordinates``, ``future_fix_time`` …) and a human detail.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import h3.api.basic_int as _h3
import msgspec

from geo.h3index import RES_POSITION

_latlng_to_cell = _h3.latlng_to_cell

MAX_BATCH = 1000
"""Most fixes in one `POST /v1/positions` body."""

RANGES: dict[str, tuple[float, float]] = {
    "accuracy_m": (0.0, 100_000.0),
    "speed_mps": (0.0, 350.0),
    "heading_deg": (0.0, 360.0),
    "altitude_m": (-1_000.0, 50_000.0),
    "battery_pct": (0.0, 100.0),
}


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


class Fix(msgspec.Struct, gc=False):
    """One validated fix, ready for the group commit.

    Not tracked by the cyclic garbage collector (``gc=False``: it holds no container that could
    lead back to it): a busy worker holds thousands of fixes while their commit is under way, and
    tracked ones would be traversed again by every collection until they are freed.
    """

    responder_id: uuid.UUID
    fix_time: datetime
    lon: float
    lat: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    battery_pct: float | None = None
    source: str = "api"
    device_id: uuid.UUID | None = None
    client_id: str | None = None
    poor_accuracy: bool = False
    attributes: dict[str, Any] | None = None
    accepted_at: float = 0.0
    """Server time (unix seconds) the fix was accepted; 0: now."""
    h3: int = -1
    """The fix's H3 cell (res 9); -1: computed from lon, lat."""

    def __post_init__(self) -> None:
        if self.h3 < 0:
            self.h3 = _latlng_to_cell(self.lat, self.lon, RES_POSITION)
        if not self.accepted_at:
            self.accepted_at = time.time()

    @property
    def key(self) -> tuple[uuid.UUID, datetime]:
        """Responder + fix time: what makes two fixes the same fix."""
        return (self.responder_id, self.fix_time)


class FixIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    """One item of a `POST /v1/positions` body (and of a WebSocket `fix` message)."""

    fix_time: datetime | float
    """RFC 3339 (UTC when no offset is given) or unix seconds."""
    lon: float
    lat: float
    responder_id: uuid.UUID | None = None
    """Defaults to the calling device's (or responder user's) own responder."""
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    battery_pct: float | None = None
    source: str | None = None
    client_id: str | None = None
    """Idempotency key: a repeat within one batch is acknowledged as a duplicate."""


class Limits:
    """The settings the checks need (kept apart so the checks stay pure and testable)."""

    __slots__ = ("max_future_s", "poor_accuracy_m", "retention_days")

    def __init__(self, max_future_s: float, retention_days: int, poor_accuracy_m: float) -> None:
        self.max_future_s = max_future_s
        self.retention_days = retention_days
        self.poor_accuracy_m = poor_accuracy_m

    def horizon(self, now: datetime) -> datetime:
        """Oldest accepted fix time: the start of the oldest kept daily partition."""
        day = (now - timedelta(days=self.retention_days)).date()
        return datetime(day.year, day.month, day.day, tzinfo=UTC)


def to_utc(value: datetime | float | int) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not math.isfinite(value):
        raise Rejected("invalid_fix_time", "fix_time is not finite")
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Rejected("invalid_fix_time", "fix_time out of range") from exc


def check_number(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value):
        raise Rejected("not_finite", f"{name} is NaN or infinite")
    low, high = RANGES[name]
    if not low <= value <= high:
        raise Rejected("out_of_range", f"{name} must be within {low:g}..{high:g}")
    return float(value)


def check_point(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise Rejected("not_finite", "lon/lat is NaN or infinite")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise Rejected("invalid_coordinates", "lon must be within -180..180 and lat within -90..90")
    if lon == 0.0 and lat == 0.0:
        raise Rejected("null_island", "(0, 0) is not a real fix")


class FixChecker:
    """Validation of fixes received at the same ``now``: :meth:`build` makes a checked :class:`Fix`.

    The time window (future limit, retention horizon) is computed once, and each check is a plain
    comparison; only a value that fails one takes the slow path that names the reason.
    """

    __slots__ = ("accepted_at", "future_limit", "horizon", "limits", "poor_accuracy_m")

    def __init__(self, limits: Limits, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self.limits = limits
        self.future_limit = now + timedelta(seconds=limits.max_future_s)
        self.horizon = limits.horizon(now)
        self.poor_accuracy_m = limits.poor_accuracy_m
        self.accepted_at = time.time()

    def build(
        self,
        responder_id: uuid.UUID,
        fix_time: datetime | float,
        lon: float,
        lat: float,
        accuracy_m: float | None = None,
        speed_mps: float | None = None,
        heading_deg: float | None = None,
        altitude_m: float | None = None,
        battery_pct: float | None = None,
        source: str = "api",
        device_id: uuid.UUID | None = None,
        client_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Fix:
        """Validate one fix; raises :class:`Rejected`."""
        # NaN fails every comparison, so it takes the slow path too (which names it).
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0) or (lon == 0.0 and lat == 0.0):
            check_point(lon, lat)
        if type(fix_time) is datetime and fix_time.tzinfo is UTC:
            when = fix_time
        else:
            when = to_utc(fix_time)
        if when > self.future_limit:
            limits = self.limits
            raise Rejected("future_fix_time", f"fix_time is more than {limits.max_future_s:g} s in the future")
        if when < self.horizon:
            raise Rejected("too_old", f"fix_time is older than the {self.limits.retention_days}-day retention")
        if client_id is not None and len(client_id) > 128:
            raise Rejected("invalid_client_id", "client_id longer than 128 characters")
        if len(source) > 32:
            raise Rejected("invalid_source", "source longer than 32 characters")
        if accuracy_m is not None and not 0.0 <= accuracy_m <= 100_000.0:
            check_number("accuracy_m", accuracy_m)
        if speed_mps is not None and not 0.0 <= speed_mps <= 350.0:
            check_number("speed_mps", speed_mps)
        if heading_deg is not None:
            if heading_deg == 360.0:
                heading_deg = 0.0
            elif not 0.0 <= heading_deg <= 360.0:
                check_number("heading_deg", heading_deg)
        if altitude_m is not None and not -1_000.0 <= altitude_m <= 50_000.0:
            check_number("altitude_m", altitude_m)
        if battery_pct is not None and not 0.0 <= battery_pct <= 100.0:
            check_number("battery_pct", battery_pct)
        return Fix(
            responder_id,
            when,
            float(lon),
            float(lat),
            _float(accuracy_m),
            _float(speed_mps),
            _float(heading_deg),
            _float(altitude_m),
            _float(battery_pct),
            source,
            device_id,
            client_id,
            accuracy_m is not None and accuracy_m > self.poor_accuracy_m,
            attributes,
            self.accepted_at,
            _latlng_to_cell(lat, lon, RES_POSITION),
        )


def _float(value: float | None) -> float | None:
    return value if value is None or type(value) is float else float(value)
