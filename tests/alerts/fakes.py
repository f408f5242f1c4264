"""Local stand-ins for the outside world of alerts, each a real server on a free port:

* :class:`SmtpSink` — an aiosmtpd SMTP server that keeps every message it receives;
* :class:`FakeSmsProvider` — a Twilio-style HTTP API (``/2010-04-01/Accounts/{sid}/Messages.json``)
  that accepts, fails (500), throttles (429 + Retry-After) or refuses a number (400), enforces a
  configured rate, and posts signed status callbacks like Twilio does;
* :class:`WebhookReceiver` — records every POST with its headers;
* :class:`FakePushService` — a web push service that checks VAPID and decrypts for its browsers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

import http_ece
import httpx
import jwt
import uvicorn
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.alerts.senders import twilio_signature
from tests.conftest import free_port


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sink.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[tuple[list[str], Message]] = []
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]


async def _read_body(receive: Any) -> bytes:
    body, more = b"", True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    return body


async def _respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _AsgiServer:
    port: int
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    async def app(self, scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)


@dataclass
class FakeSmsProvider(_AsgiServer):
    """``mode``: accept | fail | throttle. Numbers starting ``+1555999`` are refused (400)."""

    mode: str = "accept"
    rate_per_s: float = 0.0
    burst: float = 0.0
    """Token-bucket depth (0: a tenth of a second's worth, at least 2)."""
    token: str = "sms-token"
    callback_status: str = "delivered"
    received: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    over_rate: int = 0
    name: str = "sms"
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _tokens: float = 2.0
    _last: float = field(default_factory=time.monotonic)
    _callbacks: set[asyncio.Task[None]] = field(default_factory=set)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        form = dict(parse_qsl(body.decode()))
        if self.mode == "fail":
            await _respond(send, 500, b'{"message":"internal"}')
            return
        if self.mode == "throttle":
            await _respond(send, 429, b'{"code":20429}', [(b"retry-after", b"2")])
            return
        if form.get("To", "").startswith("+1555999"):
            await _respond(send, 400, b'{"code":21211,"message":"invalid To number"}')
            return
        now = time.monotonic()
        if self.rate_per_s:
            # A token bucket like a real provider's: rate_per_s, bursts of a tenth of a second.
            burst = self.burst or max(2.0, self.rate_per_s / 10)
            self._tokens = min(burst, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            if self._tokens < 1:
                self.over_rate += 1
                await _respond(send, 429, b'{"code":20429}', [(b"retry-after", b"1")])
                return
            self._tokens -= 1
        self.times.append(now)
        sid = f"SM{self.name}{next(self._ids):06d}"
        self.received.append({**form, "sid": sid})
        if form.get("StatusCallback") and self.callback_status:
            task = asyncio.create_task(self._callback(form["StatusCallback"], sid))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)
        await _respond(send, 201, json.dumps({"sid": sid, "status": "queued"}).encode())

    async def _callback(self, url: str, sid: str) -> None:
        await asyncio.sleep(0.05)
        params = {"MessageSid": sid, "MessageStatus": self.callback_status}
        headers = {"X-Twilio-Signature": twilio_signature(self.token, url, params)}
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient() as c:
                await c.post(url, data=params, headers=headers)

    def to(self, number: str) -> list[dict[str, str]]:
        return [m for m in self.received if m.get("To") == number]


@contextlib.contextmanager
def on_own_loop(server: _AsgiServer) -> Iterator[_AsgiServer]:
    """Run a fake on its own event loop in a thread, as a remote service would be (timing-sensitive
    checks then measure arrivals, not the test loop's scheduling)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(20)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@dataclass
class WebhookReceiver(_AsgiServer):
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, body))
        await _respond(send, self.status, b"{}")


@dataclass
class PushBrowser:
    """One browser's push subscription: its own P-256 key pair and auth secret (RFC 8291)."""

    path: str
    endpoint: str
    private_key: Any
    auth_secret: bytes
    status: list[int] = field(default_factory=list)
    """Statuses to answer with, in order (then 201)."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Decrypted messages with the request headers that carried them."""

    def subscription(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives in a browser."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": _b64(raw), "auth": _b64(self.auth_secret)},
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakePushService(_AsgiServer):
    """An RFC 8030 push service that is also the browser behind each subscription: it checks the VAPID
    ``Authorization`` (an ES256 JWT for this origin, signed by the key in ``k=``), decrypts the
    ``aes128gcm`` body with the subscription's private key and auth secret, and keeps the message.
    Requests that fail a check are answered 400/401 and listed in ``rejected``."""

    browsers: dict[str, PushBrowser] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    vapid_keys: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def browser(self) -> PushBrowser:
        path = f"/wpush/v2/{uuid.uuid4().hex}"
        b = PushBrowser(
            path=path,
            endpoint=self.url + path,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth_secret=os.urandom(16),
        )
        self.browsers[path] = b
        return b

    def _check_vapid(self, authorization: str) -> str | None:
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return f"authorization scheme {scheme!r}"
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(fields["k"]))
            claims = jwt.decode(
                fields["t"],
                key=key,
                algorithms=["ES256"],
                audience=self.url,
                options={"require": ["exp", "aud", "sub"]},
            )
        except Exception as exc:
            return f"VAPID JWT: {type(exc).__name__}: {exc}"
        if claims["exp"] > time.time() + 24 * 3600:
            return "VAPID exp more than 24 h ahead"
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return "VAPID sub is not a contact URI"
        self.vapid_keys.append(fields["k"])
        return None

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        b = self.browsers.get(scope["path"])
        if b is None:
            await _respond(send, 404, b"{}")
            return
        problem = self._check_vapid(headers.get("authorization", ""))
        if problem:
            self.rejected.append(problem)
            await _respond(send, 401, b"{}")
            return
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            self.rejected.append(f"headers {headers}")
            await _respond(send, 400, b"{}")
            return
        if b.status:
            status = b.status.pop(0)
            if status >= 300:
                await _respond(send, status, b"{}", [(b"retry-after", b"0")] if status in (429, 503) else None)
                return
        try:
            plain = http_ece.decrypt(body, private_key=b.private_key, auth_secret=b.auth_secret, version="aes128gcm")
        except Exception as exc:
            self.rejected.append(f"decrypt: {type(exc).__name__}: {exc}")
            await _respond(send, 400, b"{}")
            return
        b.messages.append({"headers": headers, "message": json.loads(plain)})
        location = f"{self.url}/m/{next(self._ids)}".encode()
        await _respond(send, 201, b"", [(b"location", location)])
