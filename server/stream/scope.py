"""Who sees what on the stream.

- admins and coordinators: every topic, every object;
- responders: positions of their team (and their own), incidents of their team or assigned to
  them, fence events of their team or about them, hazards, alerts (personal notifications: only
  their own) and feed status;
- viewers: public hazards and public alerts only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..security import Principal
from .protocol import StreamError

ROLE_TOPICS: dict[str, frozenset[str]] = {
    "admin": frozenset({"positions", "incidents", "hazards", "fence_events", "alerts", "feeds"}),
    "coordinator": frozenset({"positions", "incidents", "hazards", "fence_events", "alerts", "feeds"}),
    "responder": frozenset({"positions", "incidents", "hazards", "fence_events", "alerts", "feeds"}),
    "viewer": frozenset({"hazards", "alerts"}),
}
# Topics where a responder only sees what concerns their team or themselves.
TEAM_TOPICS = frozenset({"positions", "incidents", "fence_events"})


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str
    """"all" | "team" | "public"."""
    team_id: str | None = None
    responder_id: str | None = None

    def key(self) -> tuple[str, str | None, str | None]:
        return (self.kind, self.team_id, self.responder_id)

    def allows(self, topic: str, key: str, team_id: str | None, responder_ids: tuple[str, ...], public: bool) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "public":
            return public
        if topic == "alerts" and responder_ids:
            # a personal notification (hazard entered, new assignment): only its responder
            return self.responder_id is not None and self.responder_id in responder_ids
        if topic not in TEAM_TOPICS:
            return True
        if self.team_id is not None and team_id == self.team_id:
            return True
        rid = self.responder_id
        return rid is not None and (key == rid or rid in responder_ids)


def scope_for(principal: Principal) -> Scope:
    if principal.role in ("admin", "coordinator"):
        return Scope("all")
    if principal.role == "responder":
        return Scope(
            "team",
            str(principal.team_id) if principal.team_id else None,
            str(principal.responder_id) if principal.responder_id else None,
        )
    return Scope("public")


def check_topics(principal: Principal, topics: frozenset[str], sub_id: str | None) -> None:
    allowed = ROLE_TOPICS.get(principal.role, frozenset())
    forbidden = sorted(topics - allowed)
    if forbidden:
        raise StreamError(
            "forbidden_topic",
            f"role {principal.role!r} may not subscribe to {', '.join(forbidden)}",
            id=sub_id,
        )
