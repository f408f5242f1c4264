"""Request and response bodies of `/v1/hazards` and `/v1/geofences`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from ..structs import Body


class HazardCreate(Body):
    kind: str
    geometry: dict[str, Any] | None = None
    """GeoJSON Polygon/MultiPolygon (or a Point with ``radius_m``)."""
    point: list[float] | None = None
    """``[lon, lat]`` of a circular hazard (with ``radius_m``)."""
    radius_m: float | None = None
    severity: str = "unknown"
    title: str = ""
    description: str = ""
    source: str = "manual"
    external_id: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    is_public: bool = True


class HazardUpdate(Body):
    kind: str | None = None
    geometry: dict[str, Any] | None = None
    point: list[float] | None = None
    radius_m: float | None = None
    severity: str | None = None
    title: str | None = None
    description: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    is_public: bool | None = None


class Hazard(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    source: str
    external_id: str | None
    version: str
    kind: str
    severity: str
    title: str
    description: str
    geometry: dict[str, Any]
    h3_res: int
    valid_from: datetime | None
    valid_until: datetime | None
    status: str
    ended_at: datetime | None
    is_public: bool
    created_at: datetime
    updated_at: datetime
    bbox: list[float]


class HazardPage(msgspec.Struct, kw_only=True):
    items: list[Hazard]
    next_cursor: str | None


class ResponderInside(msgspec.Struct, kw_only=True):
    responder_id: uuid.UUID
    callsign: str
    team_id: uuid.UUID | None
    since: datetime | None
    group: str | None
    fix_time: datetime | None
    lon: float | None
    lat: float | None


class ResponderHazard(msgspec.Struct, kw_only=True):
    hazard: Hazard
    since: datetime | None


class GeofenceCreate(Body):
    name: str
    geometry: dict[str, Any] | None = None
    point: list[float] | None = None
    radius_m: float | None = None
    detect: list[str] = msgspec.field(default_factory=lambda: ["enter", "exit"])
    dwell_s: float = 0.0
    hysteresis_m: float = 0.0
    applies_to_all: bool | None = None
    """Default: true unless ``team_ids`` or ``responder_ids`` are given."""
    team_ids: list[uuid.UUID] = []
    responder_ids: list[uuid.UUID] = []
    meta: dict[str, Any] = {}
    incident_id: uuid.UUID | None = None
    valid_until: datetime | None = None


class GeofenceUpdate(Body):
    name: str | None = None
    geometry: dict[str, Any] | None = None
    point: list[float] | None = None
    radius_m: float | None = None
    detect: list[str] | None = None
    dwell_s: float | None = None
    hysteresis_m: float | None = None
    applies_to_all: bool | None = None
    team_ids: list[uuid.UUID] | None = None
    responder_ids: list[uuid.UUID] | None = None
    meta: dict[str, Any] | None = None
    valid_until: datetime | None = None


class Geofence(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    geometry: dict[str, Any]
    detect: list[str]
    dwell_s: float
    hysteresis_m: float
    applies_to_all: bool
    team_ids: list[uuid.UUID]
    responder_ids: list[uuid.UUID]
    meta: dict[str, Any]
    incident_id: uuid.UUID | None
    valid_until: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class GeofencePage(msgspec.Struct, kw_only=True):
    items: list[Geofence]
    next_cursor: str | None
