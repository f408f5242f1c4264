"""``responder_notifications``: written in the producer's transaction, read by ``/v1/me/notifications``.

Producers: the fence evaluator (:func:`from_hazard_events`, one set-based INSERT ... SELECT over the
fence events it just inserted) and assignment creation (:func:`for_assignment`). Each returns the rows
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
    "WITH e AS MATERIALIZED ("
    " SELECT id, responder_id, detect, fence_id FROM fence_events"
    " WHERE id = ANY($1::bigint[]) AND fence_kind = 'hazard' AND detect IN ('enter', 'exit')) "
    "INSERT INTO responder_notifications (responder_id, kind, title, body, ref_type, ref_id, severity) "
    "SELECT e.responder_id, 'hazard_' || e.detect, "
    " CASE e.detect WHEN 'enter' THEN 'You are inside: ' ELSE 'You have left: ' END"
    " || coalesce(nullif(h.title, ''), h.kind) || ' (' || initcap(h.severity) || ')', "
    " h.description, 'hazard', h.id::text, h.severity "
    "FROM e JOIN hazards h ON h.id = e.fence_id::uuid ORDER BY e.id "
    f"RETURNING {_COLUMNS}"
)


async def from_hazard_events(conn: asyncpg.Connection, event_ids: list[int]) -> list[asyncpg.Record]:
    """One notification per hazard ``enter``/``exit`` among the given (just inserted) fence events."""
    if not event_ids:
        return []
    return await conn.fetch(_HAZARD_SQL, event_ids)


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
