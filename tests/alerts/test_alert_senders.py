"""The alert channel senders called directly against the local fakes: SMS failover, throttling,
refused numbers, the shared rate limit, SMTP headers, and webhook signatures."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.alerts.messages import quiet_until, webhook_secret
from server.alerts.senders import AlertWebhookSender, EmailSender, RateLimit, SmsSender
from server.outbox.webhook import verify
from server.settings import AlertSettings
from tests.alerts.fakes import FakeSmsProvider, SmtpSink, WebhookReceiver, on_own_loop
from tests.conftest import RedisServer


def sms_row(to: str, body: str = "hello") -> dict[str, Any]:
    return {"message_id": f"alert:x:sms:{to}", "payload": {"to": to, "body": body}}


@pytest.fixture
async def providers() -> Any:
    a, b = FakeSmsProvider(name="p"), FakeSmsProvider(name="q")
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_sms_fails_over_to_the_second_provider(providers: tuple[FakeSmsProvider, FakeSmsProvider]) -> None:
    a, b = providers
    sender = SmsSender(AlertSettings(alerts_sms_urls=(a.url, b.url), alerts_sms_rate_per_s=0))
    try:
        a.mode = "fail"
        r = await sender.send(sms_row("+13195550150"))
        assert r.ok and r.provider_id and r.provider_id.startswith("SMq")
        assert b.to("+13195550150")[0]["Body"] == "hello" and not a.received
        a.mode = "throttle"
        r = await sender.send(sms_row("+13195550151"))
        assert r.ok and b.to("+13195550151")
        b.mode = "throttle"
        r = await sender.send(sms_row("+13195550152"))
        assert not r.ok and not r.permanent and r.retry_after_s == 2.0
        a.mode = b.mode = "fail"
        r = await sender.send(sms_row("+13195550153"))
        assert not r.ok and not r.permanent and "HTTP 500" in (r.error or "")
        a.mode = b.mode = "accept"
        r = await sender.send(sms_row("+15559990000"))  # the provider refuses this number
        assert not r.ok and r.permanent
    finally:
        await sender.aclose()


async def test_sms_rate_is_shared_and_never_exceeded(redis_server: RedisServer) -> None:
    redis = aioredis.from_url(redis_server.url)
    try:
        with on_own_loop(FakeSmsProvider(name="r", rate_per_s=20, burst=3, callback_status="")) as a:
            await redis.delete("sitrep:alerts:rate:sms")
            s = AlertSettings(alerts_sms_urls=(a.url,), alerts_sms_rate_per_s=20)
            # Two senders (as if on two workers) share the limit through Redis.
            senders = [SmsSender(s, None, redis), SmsSender(s, None, redis)]
            started = time.monotonic()
            results = await asyncio.gather(*(senders[i % 2].send(sms_row(f"+1319555{i:04d}")) for i in range(30)))
            elapsed = time.monotonic() - started
            for sender in senders:
                await sender.aclose()
            assert a.over_rate == 0, [r.error for r in results if not r.ok]
            assert all(r.ok for r in results)
            assert elapsed >= 1.3  # 30 messages at 20/s take ~1.45 s
    finally:
        await redis.aclose()


async def test_rate_limit_asks_to_retry_when_the_wait_is_too_long(redis_server: RedisServer) -> None:
    redis = aioredis.from_url(redis_server.url)
    try:
        await redis.delete("sitrep:alerts:rate:slow")
        limit = RateLimit(redis, "slow", rate_per_s=2, max_wait_s=0.3)
        assert await limit.acquire() is None
        retry = await limit.acquire()  # the next slot is 0.5 s away: longer than we may wait
        assert retry is not None and 0.3 < retry <= 0.5
        await asyncio.sleep(retry)
        assert await limit.acquire() is None
    finally:
        await redis.aclose()


async def test_email_carries_one_click_unsubscribe_and_exercise_marker(smtp_sink: SmtpSink) -> None:
    sender = EmailSender(AlertSettings(alerts_smtp_port=smtp_sink.port))
    unsub = "<http://127.0.0.1:1/v1/subscribers/unsubscribe?token=" + "t" * 80 + ">"
    row = {
        "message_id": "alert:x:email:s1",
        "payload": {
            "to": "direct@example.org",
            "subject": "[EXERCISE] ALERT: test",
            "text": "body",
            "exercise": True,
            "headers": {"List-Unsubscribe": unsub, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        },
    }
    try:
        results = await asyncio.gather(*(sender.send(row) for _ in range(5)))
        assert all(r.ok for r in results)
    finally:
        await sender.aclose()
    msgs = smtp_sink.to("direct@example.org")
    assert len(msgs) == 5
    m = msgs[0]
    assert m["List-Unsubscribe"] == unsub and m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert m["X-Sitrep-Exercise"] == "true" and m["X-Sitrep-Message-Id"] == "alert:x:email:s1"


async def test_email_to_a_dead_relay_is_retried_not_lost() -> None:
    from tests.conftest import free_port

    sender = EmailSender(AlertSettings(alerts_smtp_port=free_port(), alerts_send_timeout_s=1))
    r = await sender.send({"message_id": "m", "payload": {"to": "x@example.org", "subject": "s", "text": "t"}})
    assert not r.ok and not r.permanent and "smtp" in (r.error or "")


async def test_webhook_is_signed_per_subscriber_and_private_targets_refused() -> None:
    rec = WebhookReceiver()
    await rec.start()
    s = AlertSettings(alerts_allow_private_webhooks=True)
    sender = AlertWebhookSender(s, "server-secret-0123456789")
    row = {
        "message_id": "alert:x:alert_webhook:sub1",
        "payload": {"url": f"{rec.url}/h", "subscriber_id": "sub1", "event": {"type": "alert.alert", "data": {}}},
    }
    try:
        assert (await sender.send(row)).ok
        headers, body = rec.received[0]
        assert headers["webhook-id"] == row["message_id"]
        assert verify(webhook_secret("server-secret-0123456789", "sub1"), headers, body)
        assert not verify(webhook_secret("server-secret-0123456789", "sub2"), headers, body)
        rec.status = 410
        gone = await sender.send(row)
        assert not gone.ok and gone.permanent
        strict = AlertWebhookSender(replace(s, alerts_allow_private_webhooks=False), "server-secret-0123456789")
        refused = await strict.send(row)
        assert not refused.ok and refused.permanent and "loopback" in (refused.error or "")
        await strict.aclose()
    finally:
        await sender.aclose()
        await rec.stop()


def test_quiet_hours_defer_until_their_end() -> None:
    quiet = {"start": "22:00", "end": "07:00", "tz": "America/Chicago"}
    night = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)  # 00:00 in Chicago (CDT)
    until = quiet_until(quiet, night)
    assert until is not None and until.astimezone(UTC) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert quiet_until(quiet, datetime(2026, 7, 1, 18, 0, tzinfo=UTC)) is None  # 13:00 local
    late = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)  # 23:00 local: ends tomorrow 07:00
    assert quiet_until(quiet, late).astimezone(UTC) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # type: ignore[union-attr]
