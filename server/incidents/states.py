"""The incident and assignment state machines: pure tables, no I/O.

Incidents move forward along ``reported → acknowledged → dispatched → en_route → on_scene →
resolved → closed``. Forward skips are allowed while the incident is open (a unit may be
dispatched before anyone pressed "acknowledge", or detected on scene without an "en route"); the
skipped stages get the same timestamp, so reports never see a later stage without the earlier ones.
``cancelled`` is reachable from every open state; ``resolved`` only leads to ``closed``; ``closed``
and ``cancelled`` are terminal. Nothing moves backwards.

Assignments: ``pending → accepted → en_route → on_scene → released`` plus ``declined`` from
``pending``; ``released`` from every active state; arrival (``on_scene``) may skip ``accepted`` and
``en_route`` (a detected arrival implies them).
"""

from __future__ import annotations

FLOW: tuple[str, ...] = (
    "reported",
    "acknowledged",
    "dispatched",
    "en_route",
    "on_scene",
    "resolved",
    "closed",
)
STATUSES: tuple[str, ...] = (*FLOW, "cancelled")
OPEN: frozenset[str] = frozenset(FLOW[:5])
"""States in which work is still going on (cancellable, assignable)."""
TERMINAL: frozenset[str] = frozenset({"closed", "cancelled"})
STAGE_STAMP: dict[str, str] = {
    "acknowledged": "acknowledged_at",
    "dispatched": "dispatched_at",
    "en_route": "en_route_at",
    "on_scene": "on_scene_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
    "cancelled": "cancelled_at",
}


def _incident_table() -> dict[str, frozenset[str]]:
    table: dict[str, frozenset[str]] = {}
    resolved_at = FLOW.index("resolved")
    for i, state in enumerate(FLOW):
        if state in OPEN:
            table[state] = frozenset({*FLOW[i + 1 : resolved_at + 1], "cancelled"})
        elif state == "resolved":
            table[state] = frozenset({"closed"})
        else:
            table[state] = frozenset()
    table["cancelled"] = frozenset()
    return table


INCIDENT_TRANSITIONS: dict[str, frozenset[str]] = _incident_table()


def can_move(current: str, target: str) -> bool:
    return target in INCIDENT_TRANSITIONS.get(current, frozenset())


def stamps_for(current: str, target: str) -> list[str]:
    """Timestamp columns to set (when still empty) on ``current → target``: the target's and skipped stages'."""
    if not can_move(current, target):
        raise ValueError(f"{current} → {target} is not a legal transition")
    if target == "cancelled":
        return ["cancelled_at"]
    lo, hi = FLOW.index(current), FLOW.index(target)
    return [STAGE_STAMP[s] for s in FLOW[lo + 1 : hi + 1]]


def advance(current: str, floor: str) -> str | None:
    """For automatic moves ("at least ``floor``"): the target when ``current`` is open and earlier, else None."""
    if current not in OPEN or floor not in FLOW:
        return None
    return floor if FLOW.index(current) < FLOW.index(floor) and can_move(current, floor) else None


ASSIGNMENT_ACTIVE: frozenset[str] = frozenset({"pending", "accepted", "en_route", "on_scene"})
ASSIGNMENT_STATUSES: tuple[str, ...] = ("pending", "accepted", "en_route", "on_scene", "declined", "released")
ASSIGNMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"accepted", "declined", "en_route", "on_scene", "released"}),
    "accepted": frozenset({"en_route", "on_scene", "released"}),
    "en_route": frozenset({"on_scene", "released"}),
    "on_scene": frozenset({"released"}),
    "declined": frozenset(),
    "released": frozenset(),
}
ASSIGNMENT_ACTIONS: dict[str, str] = {
    "accept": "accepted",
    "decline": "declined",
    "en-route": "en_route",
    "arrive": "on_scene",
    "release": "released",
}
ASSIGNMENT_STAMP: dict[str, str] = {
    "accepted": "accepted_at",
    "en_route": "en_route_at",
    "on_scene": "arrived_at",
    "declined": "declined_at",
    "released": "released_at",
}
INCIDENT_FLOOR_FOR_ASSIGNMENT: dict[str, str] = {
    "pending": "dispatched",
    "accepted": "en_route",
    "en_route": "en_route",
    "on_scene": "on_scene",
}
"""The least incident status an assignment in this status implies."""


def can_move_assignment(current: str, target: str) -> bool:
    return target in ASSIGNMENT_TRANSITIONS.get(current, frozenset())
