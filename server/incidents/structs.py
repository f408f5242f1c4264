"""Request and response bodies of the incidents area."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from ..structs import Body

INCIDENT_TYPES: tuple[str, ...] = ("fire", "medical", "flood", "rescue", "hazmat", "traffic", "other")
SKILLS_FOR_TYPE: dict[str, tuple[str, ...]] = {
    "fire": ("firefighting",),
    "medical": ("ems-basic",),
    "flood": ("swiftwater",),
    "rescue": ("rope-rescue",),
    "hazmat": ("hazmat",),
    "traffic": ("ems-basic",),
    "other": (),
}
"""Skills an incident of each type needs when it names no ``required_skills`` of its own."""


class IncidentCreate(Body, kw_only=True):
    id: uuid.UUID | None = None
    """Client-generated id (offline creation); a retry with the same id returns the incident."""
    type: str
    priority: int | str
    """1–4 or "P1"–"P4" (1 is the most urgent)."""
    title: str
    location: dict[str, Any]
    """GeoJSON Point, Polygon or MultiPolygon."""
    description: str = ""
    address: str = ""
    reporter: str = ""
    team_id: uuid.UUID | None = None
    required_skills: list[str] | None = None


class IncidentUpdate(Body, kw_only=True):
    status: str | None = None
    type: str | None = None
    priority: int | str | None = None
    title: str | None = None
    location: dict[str, Any] | None = None
    description: str | None = None
    address: str | None = None
    reporter: str | None = None
    team_id: uuid.UUID | None = None
    required_skills: list[str] | None = None
    note: str | None = None
    """Free text kept with the timeline entry of this change."""


class Incident(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    type: str
    priority: int
    status: str
    title: str
    description: str
    address: str
    reporter: str
    location: dict[str, Any]
    lon: float
    lat: float
    h3: str
    team_id: uuid.UUID | None
    required_skills: list[str]
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    dispatched_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    rank: float | None = None


class IncidentPage(msgspec.Struct, kw_only=True):
    items: list[Incident]
    next_cursor: str | None


class TimelineEntry(msgspec.Struct, kw_only=True):
    id: int
    incident_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None
    actor: str | None
    body: dict[str, Any]
    created_at: datetime


class TimelinePage(msgspec.Struct, kw_only=True):
    items: list[TimelineEntry]
    next_cursor: str | None


class MessageCreate(Body, kw_only=True):
    id: uuid.UUID | None = None
    """Client-generated id: a retry with the same id returns the stored message."""
    text: str


class Message(msgspec.Struct, kw_only=True):
    id: int
    client_id: uuid.UUID | None
    incident_id: uuid.UUID
    author_id: uuid.UUID | None
    author: str | None
    text: str
    created_at: datetime


class MessagePage(msgspec.Struct, kw_only=True):
    items: list[Message]
    next_cursor: str | None


class AssignmentCreate(Body, kw_only=True):
    id: uuid.UUID | None = None
    responder_id: uuid.UUID | None = None
    resource_id: uuid.UUID | None = None
    note: str = ""


class AssignmentAction(Body, kw_only=True):
    note: str = ""


class Assignment(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    incident_id: uuid.UUID
    responder_id: uuid.UUID | None
    resource_id: uuid.UUID | None
    status: str
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None
    en_route_at: datetime | None
    arrived_at: datetime | None
    declined_at: datetime | None
    released_at: datetime | None


class RecommendationOut(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    name: str
    score: float
    distance_m: float
    eta_s: float
    skill_match: float
    inside_hazard: str | None
    route_crosses_hazard: bool
    crossed_hazards: list[str]
    team_id: str | None
    lon: float
    lat: float
    reasons: list[str]


class Recommendations(msgspec.Struct, kw_only=True):
    incident_id: uuid.UUID
    required_skills: list[str]
    searched_radius_m: float
    candidates_considered: int
    hazards_considered: int
    items: list[RecommendationOut]
    excluded: dict[str, str]


class SyncResult(msgspec.Struct, kw_only=True):
    cursor: str
    has_more: bool
    incidents: list[Incident]
    assignments: list[Assignment]
    messages: list[Message]
