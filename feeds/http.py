"""Polite HTTP fetching for feeds: identification, conditional GETs, caching, backoff.

:class:`FeedFetcher` wraps one ``httpx.AsyncClient`` and, per request:

* sends ``User-Agent`` with contact details (api.weather.gov refuses requests without one)
  and an explicit ``Accept`` per source (``application/geo+json`` for NWS: without it the CDN
  may serve stale bodies);
* sends ``If-None-Match``/``If-Modified-Since`` from the stored ETag/Last-Modified; a 304 is
  success without a body;
* hashes 200 bodies: a body identical to the last one (MeteoAlarm sends no validators and
  ``max-age=0``) is reported ``unchanged`` so no parsing or writing happens;
* schedules the next poll no earlier than the feed's interval, the source's minimum
  (NWS 30 s, USGS 60 s) and the freshness lifetime the server gave (``Cache-Control:
  max-age`` or ``Expires`` − ``Date``), capped at ``max_interval_s``;
* on errors (timeouts, transport errors, truncated bodies, 429, 5xx, other 4xx) backs off
  exponentially with full jitter — ``uniform(0, min(cap, base · 2^(n−1)))`` for the n-th
  consecutive error — never below the source minimum, and never before a 429/503's
  ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx
import msgspec

from feeds.config import SOURCE_MIN_INTERVAL_S, FeedConfig, FeedState

ACCEPT: dict[str, str] = {
    "nws": "application/geo+json",
    "usgs": "application/geo+json, application/json;q=0.9",
    "gdacs": "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8",
    "firms": "text/csv, text/plain;q=0.9",
    "cap": ("application/atom+xml, application/cap+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.8"),
}

Outcome = Literal["changed", "not_modified", "unchanged", "error"]


class FetchSettings(msgspec.Struct, kw_only=True):
    """HTTP behaviour for all feeds (the server fills it from ``SITREP_FEEDS_*`` settings)."""

    user_agent: str = "sitrep/0.1 (ops@example.org)"
    """Sent on every request; include a contact (URL or e-mail)."""
    timeout_s: float = 20.0
    """Total time for one request (connect, send, read)."""
    connect_timeout_s: float = 5.0
    backoff_base_s: float = 30.0
    """First error waits up to this; doubles with each consecutive error."""
    backoff_cap_s: float = 1800.0
    max_interval_s: float = 3600.0
    """Longest wait between polls, whatever the caching headers say."""
    max_body_bytes: int = 64 * 1024 * 1024
    source_min_interval_s: dict[str, float] = msgspec.field(default_factory=lambda: dict(SOURCE_MIN_INTERVAL_S))


class FetchResult(msgspec.Struct, kw_only=True):
    """One fetch. ``state`` is what to store if the caller accepts the result."""

    outcome: Outcome
    state: FeedState
    body: bytes | None = None
    http_status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0


class FetchError(Exception):
    """A follow-up document (linked CAP, zone shape) could not be fetched."""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def freshness_s(headers: httpx.Headers, now: datetime) -> float | None:
    """Freshness lifetime from ``Cache-Control: max-age`` (preferred) or ``Expires`` − ``Date``."""
    cache_control = headers.get("cache-control", "")
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip().strip('"').isdigit():
            return float(value.strip().strip('"'))
    expires = headers.get("expires")
    if expires:
        try:
            exp = parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return 0.0  # RFC 9111: an invalid Expires means "already expired"
        base = now
        if headers.get("date"):
            try:
                base = parsedate_to_datetime(headers["date"])
            except (TypeError, ValueError, IndexError):
                base = now
        if exp.tzinfo is None:
            exp = exp.replace(tzinfo=UTC)
        if base.tzinfo is None:
            base = base.replace(tzinfo=UTC)
        return max(0.0, (exp - base).total_seconds())
    return None


class FeedFetcher:
    """Fetches feeds politely; owns (or borrows) one ``httpx.AsyncClient``."""

    def __init__(
        self,
        settings: FetchSettings | None = None,
        client: httpx.AsyncClient | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or FetchSettings()
        timeout = httpx.Timeout(self.settings.timeout_s, connect=self.settings.connect_timeout_s)
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=True)
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._clock = clock or (lambda: datetime.now(UTC))

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def source_floor_s(self, feed: FeedConfig) -> float:
        return self.settings.source_min_interval_s.get(feed.kind, 0.0)

    def poll_interval_s(self, feed: FeedConfig) -> float:
        """The normal interval: the feed's, never below the source minimum."""
        return max(feed.min_interval_s, self.source_floor_s(feed))

    def backoff_s(self, feed: FeedConfig, consecutive_errors: int, retry_after_s: float | None = None) -> float:
        """Full-jitter exponential backoff for the n-th consecutive error (n ≥ 1)."""
        n = max(1, consecutive_errors)
        ceiling = min(self.settings.backoff_cap_s, self.settings.backoff_base_s * 2 ** (n - 1))
        delay = self._rng.uniform(0.0, ceiling)
        delay = max(delay, self.source_floor_s(feed))
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.settings.backoff_cap_s))
        return delay

    def failure_state(
        self,
        feed: FeedConfig,
        state: FeedState,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> FeedState:
        """The state after a failed poll: validators kept, error count up, next poll backed off."""
        now = self._clock()
        errors = state.consecutive_errors + 1
        delay = self.backoff_s(feed, errors, retry_after_s)
        return msgspec.structs.replace(
            state,
            consecutive_errors=errors,
            next_poll_at=now + timedelta(seconds=delay),
            last_status=status,
            last_fetch_at=now,
        )

    def _success_delay(self, feed: FeedConfig, headers: httpx.Headers, now: datetime) -> float:
        fresh = freshness_s(headers, now) or 0.0
        return max(self.poll_interval_s(feed), min(fresh, self.settings.max_interval_s))

    def headers_for(self, feed: FeedConfig, state: FeedState) -> dict[str, str]:
        headers = {
            "User-Agent": self.settings.user_agent,
            "Accept": str(feed.options.get("accept") or ACCEPT.get(feed.kind, "*/*")),
        }
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        return headers

    async def fetch(self, feed: FeedConfig, state: FeedState) -> FetchResult:
        """GET the feed once. Never raises for network or HTTP problems (they are outcomes)."""
        started = time.perf_counter()
        try:
            response = await self._client.get(feed.url, headers=self.headers_for(feed, state), timeout=self._timeout)
            body = response.content
        except httpx.TimeoutException as exc:
            return self._error(feed, state, f"timeout: {type(exc).__name__}", started)
        except httpx.HTTPError as exc:
            return self._error(feed, state, f"transport error: {type(exc).__name__}: {exc}", started)
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = self._clock()
        status = response.status_code
        if status == 304:
            new_state = msgspec.structs.replace(
                state,
                consecutive_errors=0,
                last_status=304,
                last_fetch_at=now,
                next_poll_at=now + timedelta(seconds=self._success_delay(feed, response.headers, now)),
            )
            return FetchResult(outcome="not_modified", state=new_state, http_status=304, latency_ms=latency_ms)
        if status >= 400:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now)
            reason = f"HTTP {status}" + (f" (Retry-After {retry_after:.0f} s)" if retry_after is not None else "")
            return FetchResult(
                outcome="error",
                state=self.failure_state(feed, state, status, retry_after if status in (429, 503) else None),
                http_status=status,
                error=reason,
                latency_ms=latency_ms,
            )
        if len(body) > self.settings.max_body_bytes:
            return self._error(feed, state, f"body too large ({len(body)} bytes)", started, status)
        digest = hashlib.sha256(body).hexdigest()
        new_state = msgspec.structs.replace(
            state,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            consecutive_errors=0,
            content_hash=digest,
            last_status=status,
            last_fetch_at=now,
            next_poll_at=now + timedelta(seconds=self._success_delay(feed, response.headers, now)),
        )
        outcome: Outcome = "unchanged" if digest == state.content_hash else "changed"
        return FetchResult(
            outcome=outcome,
            state=new_state,
            body=None if outcome == "unchanged" else body,
            http_status=status,
            latency_ms=latency_ms,
        )

    def _error(
        self, feed: FeedConfig, state: FeedState, reason: str, started: float, status: int | None = None
    ) -> FetchResult:
        return FetchResult(
            outcome="error",
            state=self.failure_state(feed, state, status),
            http_status=status,
            error=reason,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    async def get(self, url: str, accept: str = "*/*") -> bytes:
        """Fetch a linked document (a full CAP alert, a zone shape). Raises :class:`FetchError`."""
        try:
            response = await self._client.get(
                url, headers={"User-Agent": self.settings.user_agent, "Accept": accept}, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise FetchError(f"{url}: HTTP {response.status_code}")
        return response.content
