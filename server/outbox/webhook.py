"""Webhook delivery following Standard Webhooks (https://www.standardwebhooks.com/).

Headers on every attempt: ``webhook-id`` (the outbox ``message_id``, identical on every retry, so
receivers can deduplicate), ``webhook-timestamp`` (unix seconds of this attempt) and
``webhook-signature`` = ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` where ``key`` is
the base64-decoded part of the ``whsec_…`` secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from .core import SendResult

SECRET_PREFIX = "whsec_"
USER_AGENT = "sitrep-webhooks/0.1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: float = 300.0) -> bool:
    """Receiver side (used by tests and documented for integrators)."""
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, int(ts), body).split(",", 1)[1]
    for part in headers.get("webhook-signature", "").split():
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


def valid_secret(secret: str) -> bool:
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        return 24 <= len(secret_key(secret)) <= 64
    except ValueError:
        return False


def _address_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag, why in (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    ):
        if flag:
            return why
    return None


async def check_url(url: str, *, allow_private: bool, own_hosts: set[str] | None = None) -> str | None:
    """Why ``url`` may not be a webhook target, or ``None`` when it may.

    Only http(s) with a host; unless ``allow_private``, the host must not resolve to a loopback,
    private, link-local, multicast or reserved address, nor name this server.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in {"http", "https"}:
        return "must be an http or https URL"
    host = parts.hostname
    if not host:
        return "must name a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    if allow_private:
        return None
    if own_hosts and host.lower() in own_hosts:
        return "must not point to this server"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except OSError:
        return f"host {host!r} does not resolve"
    for info in infos:
        why = _address_refused(ipaddress.ip_address(info[4][0]))
        if why:
            return f"resolves to a {why} address ({info[4][0]})"
    return None


class WebhookSender:
    """The ``webhook`` channel: POST the payload as JSON with Standard Webhooks headers.

    The row's ``target`` is the URL; the signing secret is looked up from ``webhooks`` by the
    dispatcher and passed in ``row["secret"]``.
    """

    def __init__(self, timeout_s: float, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, row: dict[str, Any]) -> SendResult:
        secret = row.get("secret")
        if not secret:
            return SendResult(ok=False, permanent=True, error="webhook deleted or has no secret")
        if not self.allow_private:
            why = await check_url(row["target"], allow_private=False)
            if why:
                return SendResult(ok=False, permanent=True, error=f"refused target: {why}")
        body = msgspec.json.encode(row["payload"])
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": row["message_id"],
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, row["message_id"], ts, body),
        }
        try:
            resp = await self.client.post(row["target"], content=body, headers=headers)
        except httpx.TimeoutException:
            return SendResult(ok=False, error="timeout")
        except httpx.HTTPError as exc:
            return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= resp.status_code < 300:
            return SendResult(ok=True, provider_id=resp.headers.get("x-request-id"))
        retry_after = _retry_after(resp.headers.get("retry-after"))
        return SendResult(
            ok=False,
            retry_after_s=retry_after,
            error=f"HTTP {resp.status_code}",
            permanent=resp.status_code == 410,
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
