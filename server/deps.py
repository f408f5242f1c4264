"""Helpers handlers use to reach the runtime and the caller."""

from __future__ import annotations

import base64
import math
import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection

from .errors import InvalidInput, Unauthorized
from .runtime import Runtime
from .security import Principal


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    return connection.app.state.runtime  # type: ignore[no-any-return]


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthorized("authentication required")
    return principal


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([str(v) for v in values])).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int) -> list[str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw, type=list[str])
    except (ValueError, msgspec.DecodeError) as exc:
        raise InvalidInput("invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}]) from exc
    if len(values) != n:
        raise InvalidInput("invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}])
    return values


def decode_time_id_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The ``(created_at, id)`` keyset cursor of the lists ordered by creation time, newest first."""
    raw = decode_cursor(cursor, 2)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw[0]), uuid.UUID(raw[1])
    except ValueError as exc:
        raise InvalidInput("invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}]) from exc


def check_limit(limit: int, maximum: int = 1000) -> int:
    if limit < 1 or limit > maximum:
        raise InvalidInput(
            f"limit must be 1..{maximum}", errors=[{"field": "limit", "message": f"must be 1..{maximum}"}]
        )
    return limit


def parse_bbox(raw: str | None, field: str = "bbox") -> tuple[float, float, float, float] | None:
    """``min_lon,min_lat,max_lon,max_lat`` (WGS84 degrees) from a query parameter; None when absent.

    The one bbox parser of the HTTP API. A box crossing the antimeridian is refused rather than
    read as the whole world minus the box: ask for the two halves.
    """
    if raw is None or raw == "":
        return None
    try:
        parts = tuple(float(p) for p in raw.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not all(math.isfinite(p) for p in parts):
        raise InvalidInput(f"invalid {field}", errors=[{"field": field, "message": "min_lon,min_lat,max_lon,max_lat"}])
    min_lon, min_lat, max_lon, max_lat = parts
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise InvalidInput(
            f"invalid {field}",
            errors=[
                {"field": field, "message": "coordinates out of range, or min above max (antimeridian: two boxes)"}
            ],
        )
    return (min_lon, min_lat, max_lon, max_lat)
