"""Fan-out of one sent alert version: the receipt ledger and the outbox rows, in one transaction.

The ledger (``deliveries``) has one row per (CAP identifier, version, recipient, channel) — a unique
constraint — and every outbox row's ``message_id`` is derived from the same key, so sending the same
version again (a retry of the request, a restart mid-way) adds nothing. Senders (``senders.py``)
move a ledger row from ``queued`` to ``sent``/``failed``; SMS status callbacks move it to
``delivered``/``failed``. A row whose outbox message is dead-lettered reads as ``failed``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..outbox.core import enqueue_many
from ..settings import AlertSettings
from .messages import overrides_quiet_hours, quiet_until, render
from .targeting import Recipient

CHANNELS = ("email", "sms", "alert_webhook", "push")
"""Channels alerts are delivered on (``push``: web push, see ``push.py``)."""
STATUSES = ("queued", "sent", "delivered", "failed")


def message_id(identifier: str, channel: str, recipient: str) -> str:
    return f"alert:{identifier}:{channel}:{recipient}"


def channels_of(r: Recipient) -> list[str]:
    out = []
    if r.email:
        out.append("email")
    if r.phone:
        out.append("sms")
    if r.webhook_url:
        out.append("alert_webhook")
    if r.push:
        out.append("push")
    return out


async def fan_out(
    conn: asyncpg.Connection,
    alert: dict[str, Any],
    recipients: list[Recipient],
    *,
    settings: AlertSettings,
    secret: str,
    now: datetime | None = None,
) -> dict[str, int]:
    """Write ledger + outbox rows for ``alert`` (a dict with id, identifier, version, content, …).

    Must run inside the transaction that marks the alert sent. Returns counts per channel.
    """
    now = now or datetime.now(UTC)
    pairs = [(r, ch) for r in recipients for ch in channels_of(r)]
    if not pairs:
        return {}
    rows = await conn.fetch(
        """INSERT INTO deliveries (alert_identifier, alert_version, recipient, channel)
           SELECT $1, $2, r, c FROM unnest($3::text[], $4::text[]) AS u(r, c)
           ON CONFLICT ON CONSTRAINT deliveries_once DO NOTHING
           RETURNING id, recipient, channel""",
        alert["identifier"],
        alert["version"],
        [r.id for r, _ in pairs],
        [ch for _, ch in pairs],
    )
    alert = {**alert, "delivery_ids": {(row["recipient"], row["channel"]): row["id"] for row in rows}}
    fresh = {(row["recipient"], row["channel"]) for row in rows}
    out_rows = []
    deferred: dict[str, datetime] = {}
    urgent = overrides_quiet_hours(alert["content"])
    for r, ch in pairs:
        if (r.id, ch) not in fresh:
            continue
        payload = render(channel=ch, recipient=r, alert=alert, base_url=settings.alerts_public_url, secret=secret)
        mid = message_id(alert["identifier"], ch, r.id)
        target = {"email": r.email, "sms": r.phone, "alert_webhook": r.webhook_url}.get(ch) or ""
        if ch == "push" and r.push:
            target = r.push["endpoint"]
        out_rows.append(
            {
                "message_id": mid,
                "channel": ch,
                "target": target,
                "payload": payload,
                "alert_id": alert["id"],
                "subscriber_id": r.id,
            }
        )
        if not urgent:
            until = quiet_until(r.quiet_hours, now)
            if until is not None:
                deferred[mid] = until
    await enqueue_many(conn, out_rows)
    await conn.execute(
        """UPDATE deliveries d SET outbox_id = o.id FROM outbox o
           WHERE d.alert_identifier = $1 AND d.alert_version = $2 AND d.outbox_id IS NULL
             AND o.message_id = 'alert:' || d.alert_identifier || ':' || d.channel || ':' || d.recipient""",
        alert["identifier"],
        alert["version"],
    )
    if deferred:
        await conn.execute(
            "UPDATE outbox SET next_try_at = u.t FROM unnest($1::text[], $2::timestamptz[]) AS u(m, t) "
            "WHERE outbox.message_id = u.m",
            list(deferred),
            list(deferred.values()),
        )
    counts: dict[str, int] = {}
    for row in out_rows:
        counts[row["channel"]] = counts.get(row["channel"], 0) + 1
    return counts


async def ledger_recipients(conn: asyncpg.Connection, identifiers: list[str]) -> list[str]:
    """Subscribers who were sent (or are still being sent) any of these versions."""
    rows = await conn.fetch(
        """SELECT DISTINCT d.recipient FROM deliveries d LEFT JOIN outbox o ON o.id = d.outbox_id
           WHERE d.alert_identifier = ANY($1::text[]) AND d.status <> 'failed'
             AND coalesce(o.status, '') <> 'dead'""",
        identifiers,
    )
    return [r["recipient"] for r in rows]


async def delivery_report(conn: asyncpg.Connection, identifier: str, *, limit: int, after: int) -> dict[str, Any]:
    status_sql = "CASE WHEN o.status = 'dead' AND d.status IN ('queued','sent') THEN 'failed' ELSE d.status END"
    counts = await conn.fetch(
        f"""SELECT d.channel, {status_sql} AS status, count(*) AS n
            FROM deliveries d LEFT JOIN outbox o ON o.id = d.outbox_id
            WHERE d.alert_identifier = $1 GROUP BY 1, 2""",
        identifier,
    )
    items = await conn.fetch(
        f"""SELECT d.id, d.alert_identifier, d.alert_version, d.recipient, d.channel, {status_sql} AS status,
                   d.provider_id, coalesce(d.last_error, o.last_error) AS last_error, o.attempts,
                   d.created_at, d.updated_at
            FROM deliveries d LEFT JOIN outbox o ON o.id = d.outbox_id
            WHERE d.alert_identifier = $1 AND d.id > $2 ORDER BY d.id LIMIT $3""",
        identifier,
        after,
        limit,
    )
    by_status = {s: 0 for s in STATUSES}
    by_channel: dict[str, dict[str, int]] = {}
    for c in counts:
        by_status[c["status"]] = by_status.get(c["status"], 0) + c["n"]
        by_channel.setdefault(c["channel"], {s: 0 for s in STATUSES})[c["status"]] = c["n"]
    return {"counts": by_status, "by_channel": by_channel, "items": [dict(i) for i in items]}


async def mark_many(
    conn: asyncpg.Connection | asyncpg.Pool, items: list[tuple[int, str | None, str | None, str | None]]
) -> None:
    """Many ledger updates ``(delivery id, status or None to keep it, provider id, error)`` at once.
    Never moves a row backwards (delivered stays delivered)."""
    await conn.execute(
        """UPDATE deliveries d SET
               status = CASE WHEN d.status = 'delivered' OR u.s IS NULL THEN d.status ELSE u.s END,
               provider_id = coalesce(u.p, d.provider_id), last_error = u.e, updated_at = now()
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(i, s, p, e)
           WHERE d.id = u.i""",
        [i[0] for i in items],
        [i[1] for i in items],
        [i[2] for i in items],
        [i[3] for i in items],
    )
