"""The ASGI middleware every request passes: request id, authentication, per-address rate limit,
metrics. Kept as one pure-ASGI layer because each layer costs on every request."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from .errors import SitrepError, TooManyRequests, Unauthorized
from .observability import LATENCY, RATE_LIMITED, REQUESTS, request_id_var
from .problems import problem_asgi_response
from .security import decode_access_token

if TYPE_CHECKING:
    from .runtime import Runtime

# Request ids: a random per-process prefix and a counter (unique without a syscall per request).
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)

# Paths that never count against the per-address limit (probes and scraping).
_UNLIMITED = ("/health", "/ready", "/metrics")


def sitrep_middleware(app: ASGIApp, fast_paths: Mapping[tuple[str, str], ASGIApp] | None = None) -> ASGIApp:
    """``fast_paths``: (method, route) -> a pure-ASGI app answering instead of the Litestar handler, after
    routing and everything here (high-rate endpoints such as ``/osmand``; the route stays registered)."""
    fast = dict(fast_paths or {})

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        request_id = headers.get("x-request-id") or f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        request_id_var.set(request_id)
        scope["request_id"] = request_id  # type: ignore[typeddict-unknown-key]
        runtime: Runtime = scope["app"].state.runtime
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            scope["user"] = _authenticate(scope, headers, runtime)
            if scope["type"] == "http" and not scope["path"].startswith(_UNLIMITED):
                await runtime.rate_limiter.check_request(_client_address(scope, runtime))
        except SitrepError as exc:
            if scope["type"] == "websocket":
                # Let the handler accept and close with a reason; it re-raises from scope.
                scope["auth_error"] = exc  # type: ignore[typeddict-unknown-key]
                scope["user"] = None
            else:
                if isinstance(exc, TooManyRequests):
                    RATE_LIMITED.labels("address").inc()
                await problem_asgi_response(exc, scope, send_wrapper)
                _observe(scope, status_holder[0], started)
                return
        handler = fast.get((scope.get("method"), scope.get("path_template"))) if fast else None
        try:
            await (handler or app)(scope, receive, send_wrapper)
        finally:
            if scope["type"] == "http":
                _observe(scope, status_holder[0], started)

    return middleware


# (method, route, status) -> the labelled counter and histogram: `.labels()` costs more than the
# increment itself. Bounded: routes are templates and methods are the routed ones.
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _observe(scope: Scope, status: int, started: float) -> None:
    route = scope.get("path_template") or "unmatched"
    method = scope.get("method", "WS")
    children = _CHILDREN.get((method, route, status))
    if children is None:
        children = _CHILDREN[(method, route, status)] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(method, route),
        )
    children[0].inc()
    children[1].observe(time.perf_counter() - started)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _client_address(scope: Scope, runtime: Runtime) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _authenticate(scope: Scope, headers: dict[str, str], runtime: Runtime) -> Any:
    token = None
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
    elif scope["type"] == "websocket":
        # Browsers cannot set headers on a WebSocket: accept ?access_token= there only.
        from urllib.parse import parse_qs

        qs = parse_qs(scope.get("query_string", b"").decode())
        token = (qs.get("access_token") or [None])[0]
    if not token:
        return None
    if not token.startswith("eyJ"):
        # An opaque device token: resolved by the ingest endpoints that accept devices.
        scope["device_token"] = token  # type: ignore[typeddict-unknown-key]
        return None
    try:
        return decode_access_token(runtime.settings.auth.jwt_secret, token)
    except Unauthorized:
        raise
