"""Web push (RFC 8030 delivery, RFC 8291 message encryption, RFC 8292 VAPID) for public alerts.

* Keys: the VAPID private key comes from ``SITREP_ALERTS_VAPID_PRIVATE_KEY``; in development, when it is
  empty, a key pair is generated once and stored in ``server_keys`` (the first worker to start inserts
  it, every worker then reads the same row). Elsewhere, without a key, web push is off. Browsers get the
  public key (``applicationServerKey``) from ``GET /v1/push/vapid-public-key``.
* Subscriptions: one per subscriber in ``push_subscriptions`` (endpoint + ``p256dh`` + ``auth``), given
  at sign-up as the browser's ``PushSubscription.toJSON()``.
* Sending (:class:`PushSender`, outbox channel ``push``): the payload is encrypted with pywebpush
  (``aes128gcm``) and POSTed with a VAPID ``Authorization`` header; ``TTL`` is the time left until the
  alert's CAP ``expires`` (a message that expired while queued is not sent) and ``Urgency`` comes from
  the CAP urgency (``messages.urgency_of``: an Extreme alert is always ``high``); ``Topic`` is the alert's thread, so an Update
  or Cancel replaces a version the push service still holds. A 404/410 from the push service removes
  the subscription and the receipt says so; 429/5xx and network errors retry through the outbox.

Run ``python -m server.alerts.push`` to print a new key pair for production settings.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from pywebpush import WebPusher

from .. import audit
from ..errors import field_error
from ..outbox.core import SendResult
from ..outbox.webhook import check_url
from ..settings import AlertSettings, Settings
from .senders import RateLimit, _Ledger

log = logging.getLogger("sitrep.alerts.push")

KEY_NAME = "vapid"
MAX_TTL_S = 28 * 24 * 3600
"""Push services keep a message at most four weeks."""
CONFIRM_TTL_S = 24 * 3600
JWT_LIFETIME_S = 12 * 3600
JWT_REFRESH_S = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_private_key() -> str:
    """A new VAPID private key as base64url of its raw 32 bytes (the form the setting takes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def _vapid_from(text: str) -> Vapid:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return Vapid.from_pem(text.encode())
    return Vapid.from_string(text)


@dataclass
class VapidKeys:
    vapid: Vapid
    subject: str
    public_key: str
    """base64url of the uncompressed P-256 point: the browser's ``applicationServerKey``."""

    @classmethod
    def from_private(cls, text: str, subject: str) -> VapidKeys:
        vapid = _vapid_from(text)
        raw = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return cls(vapid=vapid, subject=subject, public_key=b64url(raw))


async def load_keys(conn: asyncpg.Connection, settings: Settings) -> VapidKeys | None:
    """The deployment's VAPID keys (see module doc), or None when web push is off."""
    s = settings.alerts
    if s.alerts_vapid_private_key:
        return VapidKeys.from_private(s.alerts_vapid_private_key, s.alerts_vapid_subject)
    if not settings.is_development:
        return None
    await conn.execute(
        "INSERT INTO server_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        KEY_NAME,
        new_private_key(),
    )
    value = await conn.fetchval("SELECT value FROM server_keys WHERE name = $1", KEY_NAME)
    return VapidKeys.from_private(str(value), s.alerts_vapid_subject)


# --- subscriptions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PushSubscription:
    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, Any]:
        """The ``subscription_info`` shape pywebpush (and the outbox payload) use."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


async def parse_subscription(
    raw: Any, settings: AlertSettings, *, enabled: bool
) -> tuple[PushSubscription | None, list[dict[str, str]]]:
    """Check a browser's ``PushSubscription.toJSON()``; returns it or per-field errors."""
    if not enabled:
        return None, [field_error("push", "web push is not configured on this server")]
    if not isinstance(raw, dict):
        return None, [field_error("push", "a PushSubscription object {endpoint, keys: {p256dh, auth}}")]
    errors: list[dict[str, str]] = []
    unknown = sorted(set(raw) - {"endpoint", "keys", "expirationTime"})
    if unknown:
        errors.append(field_error("push", f"unknown fields {unknown}"))
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        errors.append(field_error("push.endpoint", "required: the push service URL"))
    else:
        why = await _endpoint_refused(endpoint, settings)
        if why:
            errors.append(field_error("push.endpoint", why))
    keys = raw.get("keys")
    if not isinstance(keys, dict):
        errors.append(field_error("push.keys", "required: {p256dh, auth}"))
        return None, errors
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        point = b64url_decode(p256dh) if isinstance(p256dh, str) else b""
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError
    except (ValueError, binascii.Error):
        errors.append(field_error("push.keys.p256dh", "base64url of an uncompressed P-256 public key (65 bytes)"))
    try:
        if not isinstance(auth, str) or len(b64url_decode(auth)) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        errors.append(field_error("push.keys.auth", "base64url of a 16-byte authentication secret"))
    if errors:
        return None, errors
    return PushSubscription(endpoint=str(endpoint), p256dh=str(p256dh), auth=str(auth)), []


async def _endpoint_refused(endpoint: str, settings: AlertSettings) -> str | None:
    if len(endpoint) > 2000:
        return "at most 2000 characters"
    allow = settings.alerts_push_allow_private
    if not allow and urlsplit(endpoint).scheme != "https":
        return "must be an https URL"
    return await check_url(endpoint, allow_private=allow)


async def store_subscription(conn: asyncpg.Connection, subscriber_id: Any, sub: PushSubscription) -> bool:
    """Attach ``sub`` to a subscriber; False when that endpoint already belongs to someone."""
    added = await conn.fetchval(
        """INSERT INTO push_subscriptions (subscriber_id, endpoint, p256dh, auth) VALUES ($1, $2, $3, $4)
           ON CONFLICT (endpoint) DO NOTHING RETURNING id""",
        subscriber_id,
        sub.endpoint,
        sub.p256dh,
        sub.auth,
    )
    return added is not None


async def remove_subscription(conn: asyncpg.Connection, endpoint: str, why: str) -> bool:
    async with conn.transaction():
        sid = await conn.fetchval(
            "DELETE FROM push_subscriptions WHERE endpoint = $1 RETURNING subscriber_id", endpoint
        )
        if sid is not None:
            await audit.record(conn, None, "push_subscription.remove", "subscriber", sid, {"reason": why})
    return sid is not None


# --- headers -----------------------------------------------------------------------------------


def ttl_s(expires: str | datetime | None, now: datetime | None = None) -> int:
    """Seconds the push service should keep the message: until ``expires`` (at most four weeks)."""
    if expires is None:
        return CONFIRM_TTL_S
    when = expires if isinstance(expires, datetime) else datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    left = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0, min(MAX_TTL_S, int(left)))


class VapidSigner:
    """VAPID ``Authorization`` headers, one JWT per push-service origin, reused until near expiry."""

    def __init__(self, keys: VapidKeys) -> None:
        self.keys = keys
        self._cache: dict[str, tuple[float, str]] = {}

    def header(self, endpoint: str, now: float | None = None) -> str:
        parts = urlsplit(endpoint)
        aud = f"{parts.scheme}://{parts.netloc}"
        now = time.time() if now is None else now
        hit = self._cache.get(aud)
        if hit is not None and hit[0] - now > JWT_REFRESH_S:
            return hit[1]
        exp = int(now) + JWT_LIFETIME_S
        value = str(self.keys.vapid.sign({"aud": aud, "exp": exp, "sub": self.keys.subject})["Authorization"])
        self._cache[aud] = (exp, value)
        return value


def encrypt(subscription: dict[str, Any], message: dict[str, Any]) -> bytes:
    """The RFC 8291 ``aes128gcm`` body of ``message`` (JSON) for one subscription."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    body: bytes = WebPusher(subscription).encode(data, "aes128gcm")["body"]
    return body


class PushSender(_Ledger):
    """The outbox ``push`` channel (see module doc). ``row["payload"]`` carries ``subscription``,
    ``notification``, ``urgency``, ``expires`` (None: a confirmation) and ``topic``."""

    def __init__(self, settings: AlertSettings, keys: VapidKeys | None, pool: Any = None, redis: Any = None) -> None:
        super().__init__(pool)
        self.s = settings
        self.limit = RateLimit(redis, "push", settings.alerts_push_rate_per_s)
        self.signer = VapidSigner(keys) if keys is not None else None
        self.client = httpx.AsyncClient(
            timeout=settings.alerts_send_timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def send(self, row: dict[str, Any]) -> SendResult:
        return await self.record(row, await self._send(row))

    async def _send(self, row: dict[str, Any]) -> SendResult:
        if self.signer is None:
            return SendResult(ok=False, error="web push is not configured (no VAPID key)")
        p = row["payload"]
        sub = p["subscription"]
        endpoint = sub["endpoint"]
        why = await _endpoint_refused(endpoint, self.s)
        if why:
            return SendResult(ok=False, permanent=True, error=f"refused push endpoint: {why}")
        ttl = ttl_s(p.get("expires"))
        if ttl <= 0:
            return SendResult(ok=False, permanent=True, error="alert expired before it could be pushed")
        wait = await self.limit.acquire()
        if wait is not None:
            return SendResult(ok=False, retry_after_s=wait, error="push rate limit")
        try:
            body = encrypt(sub, p["notification"])
        except Exception as exc:  # keys that passed sign-up checks but do not work
            return SendResult(ok=False, permanent=True, error=f"cannot encrypt for this subscription: {exc}"[:300])
        headers = {
            "content-type": "application/octet-stream",
            "content-encoding": "aes128gcm",
            "ttl": str(ttl),
            "urgency": p.get("urgency") or "normal",
            "authorization": self.signer.header(endpoint),
        }
        if p.get("topic"):
            headers["topic"] = p["topic"]
        try:
            resp = await self.client.post(endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return SendResult(ok=False, error=f"push: {type(exc).__name__}: {exc}"[:300])
        if resp.status_code in (200, 201, 202):
            return SendResult(ok=True, provider_id=resp.headers.get("location") or row["message_id"])
        if resp.status_code in (404, 410):
            removed = False
            if self.pool is not None:
                async with self.pool.acquire() as conn:
                    removed = await remove_subscription(conn, endpoint, f"HTTP {resp.status_code} from push service")
            note = "subscription removed" if removed else "subscription already removed"
            return SendResult(
                ok=False, permanent=True, error=f"push subscription gone (HTTP {resp.status_code}); {note}"
            )
        retry_after = _seconds(resp.headers.get("retry-after"))
        if resp.status_code == 429 or resp.status_code >= 500:
            return SendResult(ok=False, retry_after_s=retry_after, error=f"push service HTTP {resp.status_code}")
        # 400 (malformed), 401/403 (VAPID refused), 413 (too large): the same request cannot succeed
        return SendResult(
            ok=False, permanent=True, error=f"push service HTTP {resp.status_code}: {resp.text[:160]}".strip()
        )

    async def aclose(self) -> None:
        await self.client.aclose()


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


if __name__ == "__main__":  # pragma: no cover - a small operator tool
    key = new_private_key()
    print(f"SITREP_ALERTS_VAPID_PRIVATE_KEY={key}")
    print(f"# public key (applicationServerKey): {VapidKeys.from_private(key, '').public_key}")
