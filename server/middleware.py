"""The ASGI middleware every request passes: request id, authentication, per-address rate limit,
metrics. Kept as one pure-ASGI layer because each layer costs on every request."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
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

    wrapped = {key: sitrep_middleware(handler, observe=_observe_folded) for key, handler in fast_paths.items()}

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


def sitrep_middleware(app: ASGIApp, observe: Callable[[Scope, int, float], None] | None = None) -> ASGIApp:
    """``observe``: how the request is counted (default: straight into the Prometheus metrics)."""
    _observe = observe or _observe_now

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


def _children(method: str, route: str, status: int) -> tuple[Any, Any]:
    children = _CHILDREN.get((method, route, status))
    if children is None:
        children = _CHILDREN[(method, route, status)] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(method, route),
        )
    return children


def _observe_now(scope: Scope, status: int, started: float) -> None:
    children = _children(scope.get("method", "WS"), scope.get("path_template") or "unmatched", status)  # type: ignore[arg-type]
    children[0].inc()
    children[1].observe(time.perf_counter() - started)


# The fast paths (thousands of requests a second) count in this process and add their counts to the
# Prometheus metrics at most FOLD_S later, in one pass: in multiprocess mode every `inc`/`observe`
# writes an mmap'ed file (a counter + a histogram cost ~6-10 us a request, a quarter of the fast
# path's own Python). /metrics is at most FOLD_S behind for these routes.
FOLD_S = 0.5
_BOUNDS: list[float] = list(LATENCY._upper_bounds)  # includes +Inf
# (method, route, status) -> [requests, one count per latency bucket ..., latency sum]
_FOLDED: dict[tuple[str, str, int], list[float]] = {}
_fold_timer: asyncio.TimerHandle | None = None


def _observe_folded(scope: Scope, status: int, started: float) -> None:
    global _fold_timer
    elapsed = time.perf_counter() - started
    key = (scope["method"], scope["path_template"], status)  # type: ignore[typeddict-item]
    counts = _FOLDED.get(key)
    if counts is None:
        counts = _FOLDED[key] = [0.0] * (len(_BOUNDS) + 2)
    counts[0] += 1
    counts[1 + bisect_left(_BOUNDS, elapsed)] += 1  # the first bucket whose bound is >= elapsed
    counts[-1] += elapsed
    if _fold_timer is None:
        _fold_timer = asyncio.get_running_loop().call_later(FOLD_S, fold_metrics)


def fold_metrics() -> None:
    """Add the fast paths' local counts to the Prometheus metrics (what ``Histogram.observe`` does, n at a time)."""
    global _fold_timer
    _fold_timer = None
    folded = list(_FOLDED.items())
    _FOLDED.clear()
    for (method, route, status), counts in folded:
        requests, latency = _children(method, route, status)
        requests.inc(counts[0])
        for bucket, n in zip(latency._buckets, counts[1:-1], strict=True):
            if n:
                bucket.inc(n)
        latency._sum.inc(counts[-1])


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
