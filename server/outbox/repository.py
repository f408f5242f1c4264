"""SQL for webhooks and their deliveries (outbox rows with a ``webhook_id``)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

FENCE_CHANNEL = "sitrep_fences"
"""NOTIFY channel the fence evaluator listens on; ``webhooks`` tells it to reload webhook filters."""

_COLS = "id, url, filter, active, exercise, created_at"


async def create_webhook(
    conn: asyncpg.Connection, *, url: str, secret: str, filter_: dict[str, Any], active: bool, exercise: bool,
    created_by: uuid.UUID | None,
) -> asyncpg.Record:  # fmt: skip
    row: asyncpg.Record = await conn.fetchrow(
        f"INSERT INTO webhooks (url, secret, filter, active, exercise, created_by) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLS}",
        url,
        secret,
        filter_,
        active,
        exercise,
        created_by,
    )
    await notify_webhooks_changed(conn)
    return row


async def get_webhook(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(f"SELECT {_COLS} FROM webhooks WHERE id = $1", webhook_id)
    return row


async def list_webhooks(conn: asyncpg.Connection, *, limit: int, after: str | None) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_COLS} FROM webhooks WHERE ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $1",
        limit,
        uuid.UUID(after) if after else None,
    )
    return rows


async def update_webhook(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    allowed = {"url", "secret", "filter", "active", "exercise"}
    keys = [k for k in changes if k in allowed]
    if not keys:
        return await get_webhook(conn, webhook_id)
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(keys))
    row: asyncpg.Record | None = await conn.fetchrow(
        f"UPDATE webhooks SET {sets} WHERE id = $1 RETURNING {_COLS}", webhook_id, *[changes[k] for k in keys]
    )
    if row is not None:
        await notify_webhooks_changed(conn)
    return row


async def delete_webhook(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> bool:
    result: str = await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)
    await notify_webhooks_changed(conn)
    return result.endswith(" 1")


async def active_webhooks(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch("SELECT id, url, filter FROM webhooks WHERE active")
    return rows


async def notify_webhooks_changed(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_notify($1, 'webhooks')", FENCE_CHANNEL)


_DELIVERY_COLS = (
    "id, message_id, channel, target, status, attempts, next_try_at, last_error, provider_id, "
    "created_at, delivered_at, payload"
)


async def list_deliveries(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, *, status: str | None, limit: int, before: int | None
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_DELIVERY_COLS} FROM outbox WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2) "
        "AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $3",
        webhook_id,
        status,
        limit,
        before,
    )
    return rows


async def redeliver(conn: asyncpg.Connection, webhook_id: uuid.UUID, delivery_id: int) -> asyncpg.Record | None:
    """Send a delivery again with the same ``message_id`` (so the same ``webhook-id``); the retry
    window restarts from now."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_try_at = now(), created_at = now(), "
        f"last_error = NULL WHERE id = $1 AND webhook_id = $2 RETURNING {_DELIVERY_COLS}",
        delivery_id,
        webhook_id,
    )
    return row
