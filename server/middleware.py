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


def front_door(app: ASGIApp, fast_paths: Mapping[tuple[str, str], ASGIApp]) -> ASGIApp:
    """Wrap Litestar's ASGI handler (router + exception layer): a request whose exact (method, path) is in
    ``fast_paths`` skips them and runs through :func:`sitrep_middleware` (request id, auth, rate limit,
    metrics under the route = the path) straight into that pure-ASGI app, which answers every outcome
    itself, errors as problem details. For high-rate endpoints (``/osmand``) whose Litestar route stays
    registered for the schema and for what is not taken here (other methods → 405, a trailing slash,
    an invalid Host header → Litestar's 400)."""
    from litestar._asgi.utils import is_valid_host

    wrapped = {key: sitrep_middleware(handler) for key, handler in fast_paths.items()}

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = wrapped.get((scope["method"], scope["path"]))  # type: ignore[typeddict-item]
            if handler is not None and not scope.get("root_path"):
                host = next((value for name, value in scope["headers"] if name == b"host"), None)
                if host is None or is_valid_host(host):
                    scope["path_template"] = scope["path"]
                    await handler(scope, receive, send)
                    return
        await app(scope, receive, send)

    return front


def sitrep_middleware(app: ASGIApp) -> ASGIApp:
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
        try:
            await app(scope, receive, send_wrapper)
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
