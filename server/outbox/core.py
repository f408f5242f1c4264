"""Outbox primitives: enqueue, the sender registry, the send result and the retry schedule.

Row life cycle (``outbox.status``)::

    pending ──send ok──▶ delivered
       │  ╲─fail─▶ retrying ──(backoff, full jitter)──▶ … ──▶ delivered
       │                └── older than outbox_max_age_s, or a permanent failure ──▶ dead
       └── redeliver (API) puts a delivered/dead row back to pending

A claimed row is leased: its ``next_try_at`` moves ``outbox_lease_s`` ahead while it is being
sent, so a worker that dies mid-send only delays it (the row is sent again: delivery is at least
once; receivers deduplicate on ``message_id``, which is the same on every attempt).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
import msgspec

CHANNELS_KNOWN = ("webhook", "email", "sms", "push")


class SendResult(msgspec.Struct, kw_only=True):
    ok: bool
    retry_after_s: float | None = None
    """The receiver asked to wait this long (e.g. HTTP Retry-After)."""
    provider_id: str | None = None
    error: str | None = None
    permanent: bool = False
    """Retrying cannot help (e.g. HTTP 410 Gone, a malformed address): dead-letter at once."""


class Sender(Protocol):
    async def send(self, row: dict[str, Any]) -> SendResult: ...


SenderFactory = Callable[[Any], Sender]

_senders: dict[str, Sender] = {}
_factories: dict[str, SenderFactory] = {}


def register_sender(channel: str, sender: Sender | SenderFactory) -> None:
    """Register the sender of a channel.

    Pass a ready sender object, or a factory ``factory(runtime) -> sender`` that the dispatcher calls
    when it starts (for senders that need settings or an HTTP client). Registering again replaces.
    """
    if hasattr(sender, "send"):
        _senders[channel] = sender  # type: ignore[assignment]
        _factories.pop(channel, None)
    else:
        _factories[channel] = sender  # type: ignore[assignment]
        _senders.pop(channel, None)


def build_sender(channel: str, runtime: Any) -> Sender:
    """The sender of one registered channel (a factory is called with ``runtime``)."""
    if channel in _senders:
        return _senders[channel]
    return _factories[channel](runtime)


def registered_channels() -> list[str]:
    return sorted({*_senders, *_factories})


async def enqueue(
    conn: asyncpg.Connection,
    *,
    channel: str,
    target: str,
    payload: dict[str, Any],
    message_id: str,
    webhook_id: Any = None,
    alert_id: Any = None,
    subscriber_id: Any = None,
) -> int | None:
    """Add one outbound message; call inside the caller's transaction so it commits with the change.

    ``message_id`` is the idempotency key (unique): enqueueing the same id twice keeps the first row
    and returns ``None``. Returns the outbox row id otherwise.
    """
    row_id: int | None = await conn.fetchval(
        "INSERT INTO outbox (message_id, channel, target, payload, webhook_id, alert_id, subscriber_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message_id) DO NOTHING RETURNING id",
        message_id,
        channel,
        target,
        payload,
        webhook_id,
        alert_id,
        subscriber_id,
    )
    return row_id


async def enqueue_many(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> int:
    """Bulk :func:`enqueue` (one statement, ``unnest`` arrays); returns the number of rows added."""
    if not rows:
        return 0
    enc = msgspec.json.encode
    result: str = await conn.execute(
        "INSERT INTO outbox (message_id, channel, target, payload, webhook_id, alert_id, subscriber_id) "
        "SELECT m, c, t, p::jsonb, w, a, s FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
        "$5::uuid[], $6::uuid[], $7::uuid[]) AS u(m, c, t, p, w, a, s) "
        "ON CONFLICT (message_id) DO NOTHING",
        [r["message_id"] for r in rows],
        [r["channel"] for r in rows],
        [r["target"] for r in rows],
        [enc(r["payload"]).decode() for r in rows],
        [r.get("webhook_id") for r in rows],
        [r.get("alert_id") for r in rows],
        [r.get("subscriber_id") for r in rows],
    )
    return int(result.rsplit(" ", 1)[-1])


def backoff_s(attempts: int, base_s: float, cap_s: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempts-1))]."""
    ceiling = min(cap_s, base_s * (2 ** max(0, min(attempts - 1, 40))))
    return max(0.05, rng() * ceiling)
