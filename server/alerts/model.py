"""Request/response structs of public alerts and the checks on what a coordinator composes.

The CAP vocabulary (status, urgency, severity, …) is checked here, before anything is stored; the
phone texts are checked at the length the phone will show (with the ``[EXERCISE]`` prefix).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..errors import InvalidInput, field_error
from ..structs import Body

CAP_STATUSES = ("Actual", "Exercise", "Test")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other")  # fmt: skip
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None")  # fmt: skip
SMS_SHORT = 90
SMS_LONG = 360
EXERCISE_PREFIX = "[EXERCISE] "
MAX_TEXT = 8000


def is_exercise(cap_status: str) -> bool:
    return cap_status in ("Exercise", "Test")


class AreaIn(Body, kw_only=True):
    """Exactly one of: a drawn ``geometry`` (GeoJSON), a ``hazard_id``, or ``incident_id`` + ``radius_m``."""

    geometry: dict[str, Any] | None = None
    hazard_id: uuid.UUID | None = None
    incident_id: uuid.UUID | None = None
    radius_m: float | None = None
    description: str = ""


class TextIn(Body, kw_only=True):
    """One language: becomes one CAP ``<info>`` block."""

    language: str = "en-US"
    headline: str
    description: str
    instruction: str = ""
    sms_90: str = ""
    sms_360: str = ""


class AlertCompose(Body, kw_only=True):
    status: str = "Actual"
    event: str
    category: list[str] = msgspec.field(default_factory=lambda: ["Safety"])
    urgency: str
    severity: str
    certainty: str
    response_type: list[str] = msgspec.field(default_factory=list)
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime
    area: AreaIn
    texts: list[TextIn]
    same_event_code: str | None = None
    web: str | None = None
    contact: str | None = None
    note: str | None = None


class AlertPatch(Body, kw_only=True):
    status: str | None = None
    event: str | None = None
    category: list[str] | None = None
    urgency: str | None = None
    severity: str | None = None
    certainty: str | None = None
    response_type: list[str] | None = None
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    area: AreaIn | None = None
    texts: list[TextIn] | None = None
    same_event_code: str | None = None
    web: str | None = None
    contact: str | None = None
    note: str | None = None


class CorrectIn(Body, kw_only=True):
    note: str = "This alert was sent in error. Disregard it."


class Alert(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    identifier: str
    sender: str
    status: str
    cap_status: str
    exercise: bool
    msg_type: str
    version: int
    thread_id: uuid.UUID
    references: list[str]
    supersedes_id: uuid.UUID | None
    content: dict[str, Any]
    area: dict[str, Any] | None
    area_extra_m2: float
    area_simplified: bool
    sent_at: datetime | None
    effective: datetime | None
    expires: datetime | None
    created_by: uuid.UUID | None
    approved_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    cap_url: str


class AlertPage(msgspec.Struct, kw_only=True):
    items: list[Alert]
    next_cursor: str | None
    exercise_present: bool


def _now() -> datetime:
    return datetime.now(UTC)


def check_content(content: dict[str, Any], *, ipaws: bool) -> None:
    """Every rule on an alert's content; raises InvalidInput listing all the problems."""
    errors: list[dict[str, Any]] = []

    def one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            errors.append(field_error(name, f"must be one of {', '.join(allowed)}"))

    one_of("status", content["status"], CAP_STATUSES)
    one_of("urgency", content["urgency"], URGENCIES)
    one_of("severity", content["severity"], SEVERITIES)
    one_of("certainty", content["certainty"], CERTAINTIES)
    if not content["category"]:
        errors.append(field_error("category", "at least one category"))
    for i, c in enumerate(content["category"]):
        one_of(f"category[{i}]", c, CATEGORIES)
    for i, r in enumerate(content["response_type"]):
        one_of(f"response_type[{i}]", r, RESPONSE_TYPES)
    if not content["event"].strip():
        errors.append(field_error("event", "must not be empty"))
    effective = _dt(content.get("effective"))
    onset = _dt(content.get("onset"))
    expires = _dt(content["expires"])
    start = effective or _now()
    if expires <= start:
        errors.append(field_error("expires", "must be after effective (or now)"))
    if onset is not None and onset > expires:
        errors.append(field_error("onset", "must not be after expires"))
    texts = content["texts"]
    if not texts:
        errors.append(field_error("texts", "at least one language"))
    languages = [t["language"] for t in texts]
    if len(set(languages)) != len(languages):
        errors.append(field_error("texts", "each language at most once"))
    prefix = EXERCISE_PREFIX if is_exercise(content["status"]) else ""
    for i, t in enumerate(texts):
        for name in ("headline", "description"):
            if not t[name].strip():
                errors.append(field_error(f"texts[{i}].{name}", "must not be empty"))
        for name in ("headline", "description", "instruction"):
            if len(t[name]) > MAX_TEXT:
                errors.append(field_error(f"texts[{i}].{name}", f"at most {MAX_TEXT} characters"))
        if len(t["headline"]) > 160:
            errors.append(field_error(f"texts[{i}].headline", "at most 160 characters"))
        for name, limit in (("sms_90", SMS_SHORT), ("sms_360", SMS_LONG)):
            shown = len(prefix) + len(t[name]) if t[name] else 0
            if shown > limit:
                errors.append(field_error(f"texts[{i}].{name}", f"{shown} characters as sent (limit {limit})"))
        if not (2 <= len(t["language"]) <= 35):
            errors.append(field_error(f"texts[{i}].language", "an RFC 3066 language tag"))
    code = content.get("same_event_code")
    if code is not None and not (len(code) == 3 and code.isalpha() and code.isupper()):
        errors.append(field_error("same_event_code", "three capital letters (e.g. FFW)"))
    if ipaws and code is None:
        errors.append(field_error("same_event_code", "required in the IPAWS profile"))
    if errors:
        raise InvalidInput("invalid alert", errors=errors)


def _dt(value: Any) -> datetime:
    if value is None:
        return None  # type: ignore[return-value]
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def content_of(data: AlertCompose) -> dict[str, Any]:
    """The JSON-able content stored in ``alerts.content`` (everything but the area)."""
    out = msgspec.to_builtins(data)
    out.pop("area")
    return dict(out)


def sms_text(text: dict[str, Any], cap_status: str, *, long: bool) -> str:
    """The SMS a phone gets: the composed short text, else the headline, cut to the limit."""
    limit = SMS_LONG if long else SMS_SHORT
    prefix = EXERCISE_PREFIX if is_exercise(cap_status) else ""
    body = (text.get("sms_360") if long else "") or text.get("sms_90") or text["headline"]
    out = prefix + body
    return out if len(out) <= limit else out[: limit - 1] + "…"
