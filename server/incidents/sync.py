"""``GET /v1/sync?since=``: what changed in the caller's scope since a cursor, for offline phones.

Every change to an incident, its assignments and messages writes an ``incident_events`` row in the
same transaction, so the events are the change log. The cursor is the position ``(txid, id)`` of the
last event handed out, where ``txid`` is the writing transaction's id (``xid8``). Only events of
transactions older than every transaction still running (``pg_snapshot_xmin``) are handed out: a
transaction that commits later always has a larger ``txid``, so nothing can appear behind a cursor
(a plain ``id`` cursor would skip a row whose transaction drew a lower id but committed later).
The answer carries the current state of what changed, not the individual events.

The horizon is cluster-wide: any writing transaction still open (ours or another database's) holds back
events committed after it began. A phone that syncs right after its own change must see it, so the call
first waits (briefly, ``HORIZON_WAIT_S``) until the horizon has passed every event already committed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from ..deps import decode_cursor, encode_cursor
from ..errors import InvalidInput
from . import repository as repo
from .assignments import to_assignment
from .scope import Work, to_incident
from .structs import Message, SyncResult

MAX_EVENTS = 1000
HORIZON_WAIT_S = 2.0
"""How long a sync waits for older open transactions so that events already committed are handed out."""

PENDING_SQL = """
SELECT EXISTS (SELECT 1 FROM incident_events e WHERE e.txid >= pg_snapshot_xmin(pg_current_snapshot()))
"""

PAGE_SQL = """
WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT e.id, e.txid::text AS txid, e.incident_id, e.kind, e.body->>'assignment_id' AS assignment_id, false AS tail
FROM incident_events e JOIN incidents i ON i.id = e.incident_id, h
WHERE (e.txid, e.id) > ($1::text::xid8, $2) AND e.txid < h.xmin AND {scope}
ORDER BY e.txid, e.id LIMIT $3
"""
TAIL_SQL = """
SELECT e.txid::text AS txid, e.id FROM incident_events e
WHERE e.txid < pg_snapshot_xmin(pg_current_snapshot()) AND (e.txid, e.id) > ($1::text::xid8, $2)
ORDER BY e.txid DESC, e.id DESC LIMIT 1
"""


async def changes_since(work: Work, since: str | None, limit: int) -> SyncResult:
    if not 1 <= limit <= MAX_EVENTS:
        raise InvalidInput(f"limit must be 1..{MAX_EVENTS}", errors=[{"field": "limit", "message": f"1..{MAX_EVENTS}"}])
    raw = decode_cursor(since, 2) or ["0", "0"]
    try:
        txid, event_id = str(int(raw[0])), int(raw[1])
    except ValueError as exc:
        raise InvalidInput("invalid cursor", errors=[{"field": "since", "message": "not a cursor"}]) from exc
    deadline = time.monotonic() + HORIZON_WAIT_S
    for _ in range(int(HORIZON_WAIT_S / 0.02)):  # a poll of PostgreSQL's horizon: nothing to await on
        if not await work.conn.fetchval(PENDING_SQL) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    async with work.conn.transaction(isolation="repeatable_read", readonly=True):
        args: list[Any] = [txid, event_id, limit]
        scope = (await work.view()).condition(args)
        rows = await work.conn.fetch(PAGE_SQL.format(scope=scope), *args)
        has_more = len(rows) == limit
        if has_more:
            cursor = (rows[-1]["txid"], rows[-1]["id"])
        else:
            # skip past events outside the scope too, so the next call starts at the horizon
            tail = await work.conn.fetchrow(TAIL_SQL, txid, event_id)
            cursor = (tail["txid"], tail["id"]) if tail else (txid, event_id)
        incident_ids = list(dict.fromkeys(r["incident_id"] for r in rows))
        assignment_ids = list(dict.fromkeys(uuid.UUID(r["assignment_id"]) for r in rows if r["assignment_id"]))
        message_ids = [r["id"] for r in rows if r["kind"] == "message"]
        incidents = [
            to_incident(r)
            for r in await work.conn.fetch(
                f"SELECT {repo.INCIDENT_COLS} FROM incidents i WHERE i.id = ANY($1) ORDER BY i.id", incident_ids
            )
        ]
        assignments = [
            to_assignment(r)
            for r in await work.conn.fetch(
                f"SELECT {repo.ASSIGNMENT_COLS} FROM assignments a WHERE a.id = ANY($1) ORDER BY a.id", assignment_ids
            )
        ]
        messages = [
            Message(**dict(r))
            for r in await work.conn.fetch(
                f"SELECT {repo.MESSAGE_COLS} FROM incident_events e LEFT JOIN users u ON u.id = e.actor_id "
                "WHERE e.id = ANY($1) ORDER BY e.id",
                message_ids,
            )
        ]
    return SyncResult(
        cursor=encode_cursor(*cursor),
        has_more=has_more,
        incidents=incidents,
        assignments=assignments,
        messages=messages,
    )
