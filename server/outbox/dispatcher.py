"""The outbox dispatcher: a Component on every worker that sends due outbox rows.

Each poll claims a small batch of due rows with ``FOR UPDATE SKIP LOCKED`` (so two workers never
send the same row at once) and leases them (``next_try_at`` moves ``outbox_lease_s`` ahead). Rows
are sent concurrently (``outbox_concurrency`` per worker) with at most ``outbox_per_target`` in
flight per target, and targets at their limit are left out of the next claims: a receiver that
hangs or answers slowly only ever occupies its own slots. Failures retry with exponential backoff
and full jitter until ``outbox_max_age_s`` after enqueueing (one last try at that deadline), then
the row is ``dead``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter, Gauge

from .core import SendResult, backoff_s, build_sender, register_sender, registered_channels
from .webhook import WebhookSender

log = logging.getLogger("sitrep.outbox")

DELIVERIES = Counter("sitrep_outbox_deliveries_total", "Outbox send attempts by outcome", ["channel", "result"])
PENDING = Gauge("sitrep_outbox_pending", "Outbox rows waiting to be sent", ["channel"], multiprocess_mode="max")

CLAIM_SQL = """
WITH due AS (
    SELECT id FROM outbox
    WHERE status IN ('pending', 'retrying') AND next_try_at <= now()
      AND channel = ANY($2::text[]) AND NOT (target = ANY($3::text[]))
    ORDER BY next_try_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET attempts = o.attempts + 1, next_try_at = now() + make_interval(secs => $4)
FROM due WHERE o.id = due.id
RETURNING o.id, o.message_id, o.channel, o.target, o.payload, o.attempts, o.created_at,
          o.webhook_id, o.alert_id, o.subscriber_id,
          (SELECT w.secret FROM webhooks w WHERE w.id = o.webhook_id AND w.active) AS secret
"""

RELEASE_SQL = (
    "UPDATE outbox SET attempts = attempts - 1, next_try_at = now() WHERE id = ANY($1::bigint[]) "
    "AND status IN ('pending', 'retrying')"
)

DELIVERED_SQL = (
    "UPDATE outbox SET status = 'delivered', delivered_at = now(), last_error = NULL, provider_id = $2 WHERE id = $1"
)

# $2 delay (s); dead when permanent ($4) or the deadline (created_at + $3 s) has passed;
# a retry that would land after the deadline is moved to the deadline (one last try).
FAILED_SQL = """
UPDATE outbox SET
    last_error = $5,
    status = CASE WHEN $4 OR now() >= created_at + make_interval(secs => $3) THEN 'dead' ELSE 'retrying' END,
    next_try_at = LEAST(now() + make_interval(secs => $2), created_at + make_interval(secs => $3))
WHERE id = $1
RETURNING status
"""


class OutboxDispatcher:
    name = "outbox"

    def __init__(self) -> None:
        self.runtime: Any = None
        self._task: asyncio.Task[None] | None = None
        self._gauge_task: asyncio.Task[None] | None = None
        self._senders: dict[str, Any] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._per_target: Tally[str] = Tally()
        self._wake = asyncio.Event()

    async def start(self, runtime: Any) -> None:
        self.runtime = runtime
        s = runtime.settings.fences
        if "webhook" not in registered_channels():
            register_sender("webhook", lambda rt: WebhookSender(s.outbox_timeout_s, s.webhook_allow_private))
        if not s.outbox_enabled:
            return
        self._task = asyncio.create_task(self._run(), name="outbox-dispatcher")
        self._gauge_task = asyncio.create_task(self._gauges(), name="outbox-gauges")

    def wake(self) -> None:
        """Look for due rows now (e.g. right after a local enqueue)."""
        self._wake.set()

    async def stop(self) -> None:
        for task in (self._task, self._gauge_task):
            if task:
                task.cancel()
        await asyncio.gather(*(t for t in (self._task, self._gauge_task) if t), return_exceptions=True)
        if self._inflight:
            # give in-flight sends a moment to finish; unfinished ones are leased and retried later
            await asyncio.wait(self._inflight, timeout=2)
            for t in self._inflight:
                t.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for sender in self._senders.values():
            close = getattr(sender, "aclose", None)
            if close:
                with contextlib.suppress(Exception):
                    await close()
        self._senders.clear()

    def _sync_senders(self) -> None:
        for channel in registered_channels():
            if channel not in self._senders:
                self._senders[channel] = build_sender(channel, self.runtime)

    async def _run(self) -> None:
        s = self.runtime.settings.fences
        while True:
            try:
                claimed = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox poll failed")
                claimed = 0
            if claimed == 0 or len(self._inflight) >= s.outbox_concurrency:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), s.outbox_poll_ms / 1000)

    async def poll_once(self) -> int:
        """Claim and start sending one batch; returns how many rows were claimed."""
        s = self.runtime.settings.fences
        self._sync_senders()
        room = s.outbox_concurrency - len(self._inflight)
        if room <= 0 or not self._senders:
            return 0
        busy = [t for t, n in self._per_target.items() if n >= s.outbox_per_target]
        async with self.runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                CLAIM_SQL, min(room, s.outbox_batch), list(self._senders), busy, float(s.outbox_lease_s)
            )
            extra: list[int] = []
            start: list[dict[str, Any]] = []
            planned: Tally[str] = Tally()
            for r in rows:
                row = dict(r)
                if self._per_target[row["target"]] + planned[row["target"]] >= s.outbox_per_target:
                    extra.append(row["id"])
                    continue
                planned[row["target"]] += 1
                start.append(row)
            if extra:
                await conn.execute(RELEASE_SQL, extra)
        for row in start:
            self._per_target[row["target"]] += 1
            task = asyncio.create_task(self._deliver(row), name=f"outbox-send-{row['id']}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(start)

    async def _deliver(self, row: dict[str, Any]) -> None:
        s = self.runtime.settings.fences
        channel = row["channel"]
        try:
            try:
                result = await asyncio.wait_for(self._senders[channel].send(row), s.outbox_timeout_s + 1)
            except TimeoutError:
                result = SendResult(ok=False, error="timeout")
            except Exception as exc:  # a sender bug must not kill the dispatcher
                log.exception("sender failed", extra={"channel": channel, "outbox_id": row["id"]})
                result = SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
            await self._record(row, result)
        finally:
            self._per_target[row["target"]] -= 1
            if self._per_target[row["target"]] <= 0:
                del self._per_target[row["target"]]
            self._wake.set()

    async def _record(self, row: dict[str, Any], result: SendResult) -> None:
        s = self.runtime.settings.fences
        channel = row["channel"]
        async with self.runtime.pool.acquire() as conn:
            if result.ok:
                await conn.execute(DELIVERED_SQL, row["id"], result.provider_id)
                DELIVERIES.labels(channel, "delivered").inc()
                return
            delay = backoff_s(row["attempts"], s.outbox_backoff_base_s, s.outbox_backoff_cap_s)
            if result.retry_after_s is not None:
                delay = max(delay, min(result.retry_after_s, s.outbox_backoff_cap_s))
            status = await conn.fetchval(
                FAILED_SQL, row["id"], float(delay), float(s.outbox_max_age_s), result.permanent, result.error
            )
        DELIVERIES.labels(channel, "dead" if status == "dead" else "retry").inc()
        if status == "dead":
            log.warning(
                "outbox row dead-lettered",
                extra={"outbox_id": row["id"], "channel": channel, "error": result.error},
            )

    async def _gauges(self) -> None:
        while True:
            try:
                async with self.runtime.pool.acquire() as conn:
                    rows = await conn.fetch(
                        "SELECT channel, count(*) AS n FROM outbox WHERE status IN ('pending', 'retrying') "
                        "GROUP BY channel"
                    )
                seen = {r["channel"]: r["n"] for r in rows}
                for channel in {*registered_channels(), *seen}:
                    PENDING.labels(channel).set(seen.get(channel, 0))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox gauge query failed", exc_info=True)
            await asyncio.sleep(5)
