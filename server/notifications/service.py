"""The calling responder's notifications: list (newest first, keyset cursor) and mark read."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from .. import audit
from ..deps import check_limit, decode_time_id_cursor, encode_cursor
from ..errors import NotFound
from ..security import Principal
from . import repository as repo
from .repository import Notification


class NotificationPage(msgspec.Struct, kw_only=True):
    items: list[Notification]
    next_cursor: str | None


async def list_mine(
    pool: asyncpg.Pool, principal: Principal, *, limit: int, cursor: str | None, unread: bool
) -> NotificationPage:
    check_limit(limit, 200)
    after = decode_time_id_cursor(cursor)
    if principal.responder_id is None:
        return NotificationPage(items=[], next_cursor=None)
    async with pool.acquire() as conn:
        rows = await repo.list_for(conn, principal.responder_id, limit=limit + 1, after=after, unread=unread)
    items = [repo.to_notification(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].created_at.isoformat(), items[-1].id) if len(rows) > limit else None
    return NotificationPage(items=items, next_cursor=nxt)


async def mark_read(pool: asyncpg.Pool, principal: Principal, notification_id: uuid.UUID) -> Notification:
    if principal.responder_id is None:
        raise NotFound("no such notification")
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.mark_read(conn, principal.responder_id, notification_id)
        if row is None:
            raise NotFound("no such notification")
        await audit.record(conn, principal, "notification.read", "responder_notification", notification_id, {})
    return repo.to_notification(row)
