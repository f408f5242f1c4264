"""Who sees and changes which incidents, and the unit of work every mutation runs in.

* admins, and coordinators without a team: everything;
* coordinators with a team: incidents of their team subtree, plus untriaged incidents (no team yet,
  so that a new call is never invisible to the people who must pick it up);
* responders (users linked to a responder, and devices): incidents they are or were assigned to;
  they may change only the status of those, and post messages;
* viewers hold no incident permission at all (403 from the guard).

An incident outside the caller's view is reported as 404, never 403, so ids do not leak.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from ..bus import Change
from ..errors import Forbidden, NotFound
from ..positions.live import live_changes
from ..security import Principal
from ..settings import Settings
from ..users.scope import managed_teams
from . import repository as repo
from .structs import Incident

STAFF = frozenset({"admin", "coordinator"})


@dataclass(frozen=True)
class View:
    principal: Principal
    teams: list[uuid.UUID] | None
    """None: unrestricted (for staff)."""

    @property
    def is_staff(self) -> bool:
        return self.principal.role in STAFF

    @property
    def unrestricted(self) -> bool:
        return self.is_staff and self.teams is None

    def condition(self, args: list[Any], alias: str = "i") -> str:
        """A SQL condition on incidents ``alias`` (parameters appended to ``args``)."""
        if self.unrestricted:
            return "TRUE"
        if self.is_staff:
            args.append(self.teams)
            return f"({alias}.team_id IS NULL OR {alias}.team_id = ANY(${len(args)}::uuid[]))"
        if self.principal.responder_id is None:
            return "FALSE"
        args.append(self.principal.responder_id)
        return (
            f"EXISTS (SELECT 1 FROM assignments va WHERE va.incident_id = {alias}.id "
            f"AND va.responder_id = ${len(args)})"
        )

    async def sees(self, conn: asyncpg.Connection, row: asyncpg.Record) -> bool:
        if self.unrestricted:
            return True
        if self.is_staff:
            return row["team_id"] is None or row["team_id"] in (self.teams or [])
        return await repo.is_assigned(conn, row["id"], self.principal.responder_id)


async def view_of(conn: asyncpg.Connection, principal: Principal) -> View:
    if principal.role in STAFF:
        return View(principal, await managed_teams(conn, principal))
    return View(principal, [])


def to_incident(row: asyncpg.Record, rank: float | None = None) -> Incident:
    values = dict(row)
    values["h3"] = format(values["h3"], "x")
    values.setdefault("rank", rank)
    values["required_skills"] = list(values["required_skills"] or [])
    return Incident(**values)


@dataclass
class Work:
    """One mutation: its connection (inside a transaction), caller, settings, and the changes it made.

    Changes are published by the caller after the commit (``changes`` keeps the latest per key).
    """

    conn: asyncpg.Connection
    principal: Principal
    settings: Settings
    _view: View | None = None
    changes: dict[tuple[str, str], Change] = field(default_factory=dict)

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.principal.id if self.principal.kind == "user" else None

    async def view(self) -> View:
        if self._view is None:
            self._view = await view_of(self.conn, self.principal)
        return self._view

    async def visible_incident(self, incident_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record:
        row = await repo.get_incident(self.conn, incident_id, lock=lock)
        if row is None or not await (await self.view()).sees(self.conn, row):
            raise NotFound("no such incident")
        return row

    async def changeable_incident(self, incident_id: uuid.UUID, *, lock: bool = True) -> asyncpg.Record:
        row = await self.visible_incident(incident_id, lock=lock)
        if not (await self.view()).is_staff:
            raise Forbidden("only coordinators may change this incident")
        return row

    async def incident_changed(self, row: asyncpg.Record) -> Incident:
        incident = to_incident(row)
        responders = await repo.assigned_responder_ids(self.conn, row["id"])
        self.changes[("incidents", str(row["id"]))] = Change(
            topic="incidents",
            key=str(row["id"]),
            data=msgspec.to_builtins(incident),
            lon=float(row["lon"]),
            lat=float(row["lat"]),
            team_id=str(row["team_id"]) if row["team_id"] else None,
            responder_ids=tuple(responders),
        )
        return incident

    async def responders_changed(self, responder_ids: Iterable[uuid.UUID | None]) -> None:
        """Queue these responders' map entries (status, team) for publication after commit."""
        for change in await live_changes(self.conn, responder_ids):
            self.changes[(change.topic, change.key)] = change

    def event_body(self, **body: Any) -> dict[str, Any]:
        return {"actor": self.principal.actor, **{k: v for k, v in body.items() if v is not None}}
