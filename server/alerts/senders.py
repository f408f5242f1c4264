"""Outbox senders of the alert channels: ``email`` (SMTP), ``sms`` (Twilio-style HTTP providers with
failover), ``alert_webhook`` (Standard Webhooks) and ``push`` (web push, in ``push.py``). Each returns
an outbox ``SendResult`` and moves the alert's receipt-ledger row (``deliveries``) along.

Per-channel rate limits are shared by every worker through Redis (:class:`RateLimit`: a GCRA "next
free slot" kept in one key), so a provider never sees more than its configured rate.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
import uuid
from email.header import Header
from email.utils import formatdate
from typing import Any

import aiosmtplib
import httpx
import msgspec
from redis.exceptions import RedisError

from ..outbox.core import SendResult
from ..outbox.webhook import check_url, sign
from ..settings import AlertSettings
from . import delivery
from .messages import webhook_secret

_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local start = math.max(now, tat)
local wait = start - now
if wait > max_wait then return tostring(-wait) end
redis.call('SET', KEYS[1], tostring(start + interval), 'PX', math.ceil((wait + interval) * 1000) + 1000)
return tostring(wait)
"""


log = logging.getLogger("sitrep.alerts")


class RateLimit:
    """At most ``rate_per_s`` acquisitions per second across all workers (Redis GCRA)."""

    def __init__(self, redis: Any, key: str, rate_per_s: float, max_wait_s: float = 5.0) -> None:
        self.redis, self.key = redis, f"sitrep:alerts:rate:{key}"
        self.interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self.max_wait_s = max_wait_s
        self._script = redis.register_script(_GCRA) if redis is not None and self.interval else None

    async def acquire(self) -> float | None:
        """Wait for a slot; returns None when acquired, or the seconds to retry after."""
        if self._script is None:
            return None
        try:
            wait = float(await self._script(keys=[self.key], args=[self.interval, self.max_wait_s]))
        except RedisError:
            return None  # Redis only holds what can be rebuilt: fail open
        if wait < 0:
            return -wait
        if wait > 0:
            await asyncio.sleep(wait)
        return None


class _Ledger:
    """Ledger updates of a sender, written in groups: every send that finishes while a write is in
    flight joins the next one (one ``unnest`` UPDATE instead of one round trip per message)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._pending: list[tuple[int, str | None, str | None, str | None, asyncio.Future[None]]] = []
        self._lock = asyncio.Lock()

    async def record(self, row: dict[str, Any], result: SendResult) -> SendResult:
        did = row["payload"].get("delivery_id")
        if did is None or self.pool is None:
            return result
        status = "sent" if result.ok else "failed" if result.permanent else None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((did, status, result.provider_id, result.error, fut))
        if not self._lock.locked():
            async with self._lock:
                while self._pending:
                    batch, self._pending = self._pending, []
                    try:
                        await delivery.mark_many(self.pool, [b[:4] for b in batch])
                    except Exception as exc:  # the outbox row is already settled; the ledger lags
                        for b in batch:
                            if not b[4].done():
                                b[4].set_exception(exc)
                    for b in batch:
                        if not b[4].done():
                            b[4].set_result(None)
        try:
            await fut
        except Exception:
            log.warning("ledger update failed", exc_info=True)
        return result


class EmailSender(_Ledger):
    """SMTP through a few reused connections (a new TCP+SMTP handshake per email caps the rate)."""

    def __init__(self, settings: AlertSettings, pool: Any = None, redis: Any = None, connections: int = 16) -> None:
        super().__init__(pool)
        self.s = settings
        self.limit = RateLimit(redis, "email", settings.alerts_email_rate_per_s)
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(connections)

    def message(self, payload: dict[str, Any], message_id: str) -> tuple[bytes, str]:
        """The RFC 5322 bytes of one alert email and its Message-ID.

        Written directly rather than through ``email.message.EmailMessage``: that API's header
        registry and folding cost more CPU than the SMTP exchange, and would fold the long
        ``List-Unsubscribe`` URL into RFC 2047 words. Header values are single lines (CR/LF removed);
        a non-ASCII subject is RFC 2047-encoded; the body is UTF-8 in base64.
        """
        domain = self.s.alerts_smtp_from.split("@")[-1]
        msgid = f"<{uuid.uuid4().hex}@{domain}>"
        subject = _one_line(payload["subject"])
        if not subject.isascii():
            subject = Header(subject, "utf-8").encode(linesep="\r\n")  # folded, CRLF + space
        headers = [
            ("From", self.s.alerts_smtp_from),
            ("To", _one_line(payload["to"])),
            ("Subject", subject),
            ("Date", formatdate(usegmt=True)),
            ("Message-ID", msgid),
            ("X-Sitrep-Message-Id", _one_line(message_id)),
        ]
        if payload.get("exercise"):
            headers.append(("X-Sitrep-Exercise", "true"))
        headers.extend((name, _one_line(value)) for name, value in payload.get("headers", {}).items())
        headers += [
            ("MIME-Version", "1.0"),
            ("Content-Type", 'text/plain; charset="utf-8"'),
            ("Content-Transfer-Encoding", "base64"),
        ]
        head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode("ascii", "replace")
        body = base64.encodebytes(payload["text"].encode()).replace(b"\n", b"\r\n")
        return head + b"\r\n" + body, msgid

    async def _client(self) -> aiosmtplib.SMTP:
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            client = aiosmtplib.SMTP(
                hostname=self.s.alerts_smtp_host, port=self.s.alerts_smtp_port, timeout=self.s.alerts_send_timeout_s
            )
            await client.connect()
            return client

    async def send(self, row: dict[str, Any]) -> SendResult:
        wait = await self.limit.acquire()
        if wait is not None:
            return SendResult(ok=False, retry_after_s=wait, error="email rate limit")
        payload = row["payload"]
        raw, msgid = self.message(payload, row["message_id"])
        async with self._slots:
            client = None
            try:
                client = await self._client()
                rcpt = [payload["to"]]
                try:
                    await client.sendmail(self.s.alerts_smtp_from, rcpt, raw)
                except aiosmtplib.SMTPServerDisconnected:
                    client.close()  # an idle connection the relay closed: one fresh try
                    client = await self._client()
                    await client.sendmail(self.s.alerts_smtp_from, rcpt, raw)
                self._idle.put_nowait(client)
                result = SendResult(ok=True, provider_id=msgid)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                if client is not None:
                    self._idle.put_nowait(client)
                result = SendResult(ok=False, permanent=True, error=f"recipient refused: {exc}"[:300])
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                if client is not None:
                    client.close()
                result = SendResult(ok=False, error=f"smtp: {type(exc).__name__}: {exc}"[:300])
        return await self.record(row, result)

    async def aclose(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


class SmsProvider:
    """One Twilio-style provider: ``POST {base}/2010-04-01/Accounts/{sid}/Messages.json``."""

    def __init__(self, base_url: str, account: str, token: str, client: httpx.AsyncClient) -> None:
        self.base_url, self.account, self.token, self.client = base_url.rstrip("/"), account, token, client

    async def send(self, to: str, sender: str, body: str, status_callback: str) -> httpx.Response:
        return await self.client.post(
            f"{self.base_url}/2010-04-01/Accounts/{self.account}/Messages.json",
            data={"To": to, "From": sender, "Body": body, "StatusCallback": status_callback},
            auth=(self.account, self.token),
        )


class SmsSender(_Ledger):
    """Try each provider in order: a 5xx, a throttle or a timeout moves on to the next; a 4xx about
    the message itself (bad number) is permanent; when all fail the outbox retries later."""

    def __init__(self, settings: AlertSettings, pool: Any = None, redis: Any = None) -> None:
        super().__init__(pool)
        self.s = settings
        self.client = httpx.AsyncClient(timeout=settings.alerts_send_timeout_s, follow_redirects=False)
        self.providers = [
            SmsProvider(u, settings.alerts_sms_account, settings.alerts_sms_token, self.client)
            for u in settings.alerts_sms_urls
        ]
        self.limit = RateLimit(redis, "sms", settings.alerts_sms_rate_per_s)

    async def send(self, row: dict[str, Any]) -> SendResult:
        if not self.providers:
            return await self.record(row, SendResult(ok=False, error="no SMS provider configured"))
        wait = await self.limit.acquire()
        if wait is not None:
            return SendResult(ok=False, retry_after_s=wait, error="sms rate limit")
        p = row["payload"]
        callback = f"{self.s.alerts_public_url}/v1/alerts/sms-status"
        errors: list[str] = []
        retry_after: float | None = None
        for i, provider in enumerate(self.providers):
            try:
                resp = await provider.send(p["to"], self.s.alerts_sms_from, p["body"], callback)
            except httpx.HTTPError as exc:
                errors.append(f"provider {i}: {type(exc).__name__}")
                continue
            if resp.status_code in (200, 201):
                sid = str(resp.json().get("sid", ""))
                return await self.record(row, SendResult(ok=True, provider_id=sid))
            if resp.status_code == 429:
                ra = _float(resp.headers.get("retry-after"))
                retry_after = ra if retry_after is None or (ra is not None and ra < retry_after) else retry_after
                errors.append(f"provider {i}: throttled")
                continue
            if 400 <= resp.status_code < 500 and resp.status_code not in (401, 403, 408):
                return await self.record(
                    row,
                    SendResult(
                        ok=False, permanent=True, error=f"provider {i}: HTTP {resp.status_code} {resp.text[:120]}"
                    ),
                )
            errors.append(f"provider {i}: HTTP {resp.status_code}")
        return await self.record(row, SendResult(ok=False, retry_after_s=retry_after, error="; ".join(errors)[:300]))

    async def aclose(self) -> None:
        await self.client.aclose()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by the sorted params."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


class AlertWebhookSender(_Ledger):
    """``alert_webhook``: the event as JSON, signed with the subscriber's derived ``whsec_`` secret."""

    def __init__(self, settings: AlertSettings, secret: str, pool: Any = None, redis: Any = None) -> None:
        super().__init__(pool)
        self.s, self.secret = settings, secret
        self.client = httpx.AsyncClient(timeout=settings.alerts_send_timeout_s, follow_redirects=False)
        self.limit = RateLimit(redis, "alert_webhook", settings.alerts_webhook_rate_per_s)

    async def send(self, row: dict[str, Any]) -> SendResult:
        p = row["payload"]
        why = await check_url(p["url"], allow_private=self.s.alerts_allow_private_webhooks)
        if why:
            return await self.record(row, SendResult(ok=False, permanent=True, error=f"refused target: {why}"))
        wait = await self.limit.acquire()
        if wait is not None:
            return SendResult(ok=False, retry_after_s=wait, error="webhook rate limit")
        body = msgspec.json.encode(p["event"])
        ts = int(time.time())
        secret = webhook_secret(self.secret, p["subscriber_id"])
        headers = {
            "content-type": "application/json",
            "webhook-id": row["message_id"],
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, row["message_id"], ts, body),
        }
        try:
            resp = await self.client.post(p["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return await self.record(row, SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:300]))
        if 200 <= resp.status_code < 300:
            return await self.record(row, SendResult(ok=True, provider_id=row["message_id"]))
        return await self.record(
            row,
            SendResult(
                ok=False,
                retry_after_s=_float(resp.headers.get("retry-after")),
                error=f"HTTP {resp.status_code}",
                permanent=resp.status_code == 410,
            ),
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class AlertChannels:
    """Component: registers the alert channels' senders with the outbox (sent by its dispatcher) and
    holds the web push VAPID keys (``vapid``: None when web push is off)."""

    name = "alert-channels"

    def __init__(self) -> None:
        self.vapid: Any = None

    async def start(self, runtime: Any) -> None:
        from ..outbox.core import register_sender
        from .push import PushSender, load_keys

        s = runtime.settings.alerts
        secret = runtime.settings.auth.jwt_secret
        async with runtime.pool.acquire() as conn:
            self.vapid = await load_keys(conn, runtime.settings)
        keys = self.vapid
        register_sender("email", lambda rt: EmailSender(s, rt.pool, rt.redis))
        register_sender("sms", lambda rt: SmsSender(s, rt.pool, rt.redis))
        register_sender("alert_webhook", lambda rt: AlertWebhookSender(s, secret, rt.pool, rt.redis))
        register_sender("push", lambda rt: PushSender(s, keys, rt.pool, rt.redis))

    async def stop(self) -> None:
        return None
