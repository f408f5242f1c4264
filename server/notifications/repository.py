"""``responder_notifications``: written in the producer's transaction, read by ``/v1/me/notifications``.

Producers: the fence evaluator (:func:`from_hazard_events`, one set-based INSERT ... SELECT over
arrays of the hazard enters/exits it is committing) and assignment creation (:func:`for_assignment`). Each returns the rows
it wrote; the producer publishes :func:`change` for each on the bus *after* its commit, on topic
``alerts`` with ``responder_ids`` set, so the stream delivers it to that responder and to staff only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from ..bus import Change

KINDS = ("hazard_enter", "hazard_exit", "assignment")
_COLUMNS = "id, responder_id, kind, title, body, ref_type, ref_id, severity, created_at, read_at"


class Notification(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    responder_id: uuid.UUID
    kind: str
    title: str
    body: str
    ref_type: str | None
    ref_id: str | None
    severity: str | None
    created_at: datetime
    read_at: datetime | None


def to_notification(row: asyncpg.Record) -> Notification:
    return Notification(**dict(row))


def change(row: asyncpg.Record) -> Change:
    """The bus change announcing one committed notification (scoped to its responder)."""
    n = to_notification(row)
    data: dict[str, Any] = {"type": "notification", **msgspec.to_builtins(n)}
    return Change(
        topic="alerts",
        key=f"notification:{n.id}",
        data=data,
        responder_ids=(str(n.responder_id),),
        public=False,
    )


_HAZARD_SQL = (
    "INSERT INTO responder_notifications (responder_id, kind, title, body, ref_type, ref_id, severity) "
    "SELECT e.r::uuid, 'hazard_' || e.d, "
    " CASE e.d WHEN 'enter' THEN 'You are inside: ' ELSE 'You have left: ' END"
    " || coalesce(nullif(h.title, ''), h.kind) || ' (' || initcap(h.severity) || ')', "
    " h.description, 'hazard', e.f, h.severity "
    "FROM unnest($1::text[], $2::text[], $3::text[]) AS e(r, d, f) JOIN hazards h ON h.id = e.f::uuid "
    f"RETURNING {_COLUMNS}"
)
"""No ``ORDER BY``: notifications of one commit share ``created_at`` and are listed by (created_at, id);
a sort of a first-fix burst (tens of thousands of rows) spilled to disk."""


async def from_hazard_events(
    conn: asyncpg.Connection, responder_ids: list[str], detects: list[str], hazard_ids: list[str]
) -> list[asyncpg.Record]:
    """One notification per hazard ``enter``/``exit`` given as parallel arrays (responder id,
    ``"enter"``/``"exit"``, hazard id, as text), written in the caller's transaction; hazards that
    no longer exist are skipped. The arrays come from the evaluator's events themselves, so the
    fence events just written are not read back."""
    if not responder_ids:
        return []
    return await conn.fetch(_HAZARD_SQL, responder_ids, detects, hazard_ids)


async def for_assignment(
    conn: asyncpg.Connection, responder_id: uuid.UUID, assignment_id: uuid.UUID, incident: asyncpg.Record
) -> asyncpg.Record:
    return await conn.fetchrow(  # type: ignore[no-any-return]
        "INSERT INTO responder_notifications (responder_id, kind, title, body, ref_type, ref_id, severity) "
        "VALUES ($1, 'assignment', $2, $3, 'assignment', $4, $5) "
        f"RETURNING {_COLUMNS}",
        responder_id,
        f"New assignment: {incident['title']}",
        f"Priority {incident['priority']} {incident['type']} — {incident['address'] or 'see map'}",
        str(assignment_id),
        f"p{incident['priority']}",
    )


async def list_for(
    conn: asyncpg.Connection,
    responder_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    unread: bool,
) -> list[asyncpg.Record]:
    """Newest first; ``after`` is the (created_at, id) of the last row of the previous page."""
    args: list[Any] = [responder_id, limit]
    where = "responder_id = $1"
    if unread:
        where += " AND read_at IS NULL"
    if after is not None:
        args += list(after)
        where += " AND (created_at, id) < ($3, $4)"
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM responder_notifications WHERE {where} ORDER BY created_at DESC, id DESC LIMIT $2",
        *args,
    )


async def mark_read(
    conn: asyncpg.Connection, responder_id: uuid.UUID, notification_id: uuid.UUID
) -> asyncpg.Record | None:
    """Set ``read_at`` (kept if already read); None when the notification is not this responder's."""
    return await conn.fetchrow(
        "UPDATE responder_notifications SET read_at = coalesce(read_at, now()) "
        f"WHERE id = $1 AND responder_id = $2 RETURNING {_COLUMNS}",
        notification_id,
        responder_id,
    )
