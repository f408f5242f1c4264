"""FeedFetcher against the fake feed server over real HTTP on a free port."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from feeds.config import FeedConfig, FeedState
from feeds.fake import FakeFeedApp
from feeds.http import FeedFetcher, FetchSettings, freshness_s, parse_retry_after

UA = "sitrep-test/0.1 (feeds-tests@example.org)"


def _fetcher(**kw: object) -> FeedFetcher:
    settings = FetchSettings(user_agent=UA, timeout_s=2.0, backoff_base_s=10.0, backoff_cap_s=300.0, **kw)  # type: ignore[arg-type]
    return FeedFetcher(settings, rng=random.Random(7))


async def test_nws_sends_identity_accept_and_gets_304_on_if_modified_since(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    feed = FeedConfig(name="nws", kind="nws", url=f"{base}/alerts/active", min_interval_s=10)
    fetcher = _fetcher()
    try:
        first = await fetcher.fetch(feed, FeedState())
        assert first.outcome == "changed" and first.http_status == 200 and first.body
        assert first.state.last_modified and first.state.etag is None  # NWS: no ETag
        sent = app.last_headers["nws"]
        assert sent["user-agent"] == UA and sent["accept"] == "application/geo+json"
        assert "if-modified-since" not in sent
        second = await fetcher.fetch(feed, first.state)
        assert second.outcome == "not_modified" and second.http_status == 304 and second.body is None
        assert app.last_headers["nws"]["if-modified-since"] == first.state.last_modified
        assert second.state.content_hash == first.state.content_hash
        app.control({"feed": "nws", "action": "update"})
        third = await fetcher.fetch(feed, second.state)
        assert third.outcome == "changed" and third.state.last_modified != first.state.last_modified
    finally:
        await fetcher.aclose()


async def test_next_poll_respects_max_age_and_the_nws_30s_floor(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    feed = FeedConfig(name="nws", kind="nws", url=f"{base}/alerts/active", min_interval_s=1)
    fetcher = _fetcher()
    try:
        app.control({"feed": "nws", "max_age": 120})
        before = datetime.now(UTC)
        long = await fetcher.fetch(feed, FeedState())
        assert long.state.next_poll_at is not None
        assert 119 <= (long.state.next_poll_at - before).total_seconds() <= 125
        app.control({"feed": "nws", "max_age": 5})
        short = await fetcher.fetch(feed, FeedState())
        assert short.state.next_poll_at is not None
        assert 29 <= (short.state.next_poll_at - before).total_seconds() <= 35  # never below 30 s for NWS
    finally:
        await fetcher.aclose()


async def test_usgs_etag_gives_304_and_a_60s_floor(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    feed = FeedConfig(
        name="usgs", kind="usgs", url=f"{base}/earthquakes/feed/v1.0/summary/all_hour.geojson", min_interval_s=5
    )
    fetcher = _fetcher()
    try:
        first = await fetcher.fetch(feed, FeedState())
        assert first.state.etag
        second = await fetcher.fetch(feed, first.state)
        assert app.last_headers["usgs"]["if-none-match"] == first.state.etag
        assert second.outcome == "not_modified"
        assert second.state.next_poll_at is not None and second.state.last_fetch_at is not None
        assert (second.state.next_poll_at - second.state.last_fetch_at).total_seconds() >= 60
    finally:
        await fetcher.aclose()


async def test_meteoalarm_style_unchanged_body_is_skipped_by_hash(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    feed = FeedConfig(name="cap", kind="cap", url=f"{base}/cap/index.atom", min_interval_s=45)
    fetcher = _fetcher()
    try:
        first = await fetcher.fetch(feed, FeedState())
        assert first.outcome == "changed" and first.state.etag is None and first.state.last_modified is None
        assert "atom" in app.last_headers["cap"]["accept"]
        second = await fetcher.fetch(feed, first.state)
        assert second.outcome == "unchanged" and second.body is None and second.http_status == 200
        assert second.state.next_poll_at is not None and second.state.last_fetch_at is not None
        assert (second.state.next_poll_at - second.state.last_fetch_at).total_seconds() == pytest.approx(45, abs=1)
        app.control({"feed": "cap", "action": "update"})
        assert (await fetcher.fetch(feed, second.state)).outcome == "changed"
    finally:
        await fetcher.aclose()


async def test_429_backs_off_at_least_retry_after(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    app.control({"feed": "gdacs", "mode": "429", "retry_after": 400})
    feed = FeedConfig(name="gdacs", kind="gdacs", url=f"{base}/xml/rss.xml", min_interval_s=60)
    fetcher = _fetcher()
    try:
        state = FeedState(etag='"keep"')
        result = await fetcher.fetch(feed, state)
        assert result.outcome == "error" and result.http_status == 429 and "Retry-After 400" in (result.error or "")
        assert result.state.consecutive_errors == 1 and result.state.etag == '"keep"'
        assert result.state.next_poll_at is not None and result.state.last_fetch_at is not None
        assert (
            result.state.next_poll_at - result.state.last_fetch_at
        ).total_seconds() >= 299  # capped at backoff_cap_s
    finally:
        await fetcher.aclose()


async def test_500_backoff_grows_with_full_jitter(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    app.control({"feed": "firms", "mode": "500"})
    feed = FeedConfig(name="firms", kind="firms", url=f"{base}/api/area/csv/KEY/VIIRS_SNPP_NRT/world/1")
    fetcher = _fetcher()
    try:
        state = FeedState()
        delays = []
        for n in range(1, 6):
            result = await fetcher.fetch(feed, state)
            assert result.outcome == "error" and result.http_status == 500
            state = result.state
            assert state.consecutive_errors == n
            assert state.next_poll_at is not None and state.last_fetch_at is not None
            delay = (state.next_poll_at - state.last_fetch_at).total_seconds()
            assert 0 <= delay <= 10 * 2 ** (n - 1) + 0.01
            delays.append(delay)
        app.control({"feed": "firms", "mode": "ok"})
        recovered = await fetcher.fetch(feed, state)
        assert recovered.outcome == "changed" and recovered.state.consecutive_errors == 0
    finally:
        await fetcher.aclose()
    # the jitter spreads retries; the ceiling doubles with each consecutive error
    samples = {n: [fetcher.backoff_s(feed, n) for _ in range(400)] for n in (1, 3, 6)}
    assert max(samples[1]) <= 10 and max(samples[3]) <= 40 and max(samples[6]) <= 300
    assert sum(samples[1]) < sum(samples[3]) < sum(samples[6])
    assert len({round(d, 3) for d in samples[3]}) > 100


async def test_timeout_is_an_error_and_the_next_poll_works(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    app.control({"feed": "usgs", "mode": "timeout", "delay_s": 3})
    feed = FeedConfig(name="usgs", kind="usgs", url=f"{base}/earthquakes/feed/v1.0/summary/all_hour.geojson")
    fetcher = FeedFetcher(FetchSettings(user_agent=UA, timeout_s=0.3, connect_timeout_s=0.3), rng=random.Random(1))
    try:
        result = await fetcher.fetch(feed, FeedState())
        assert result.outcome == "error" and (result.error or "").startswith("timeout")
        assert result.state.consecutive_errors == 1
        assert result.state.next_poll_at is not None and result.state.last_fetch_at is not None
        assert (result.state.next_poll_at - result.state.last_fetch_at) >= timedelta(seconds=60)  # USGS floor
        app.control({"feed": "usgs", "mode": "ok"})
        assert (await fetcher.fetch(feed, result.state)).outcome == "changed"
    finally:
        await fetcher.aclose()


async def test_truncated_body_is_an_error_and_keeps_old_validators(fake: tuple[FakeFeedApp, str]) -> None:
    app, base = fake
    feed = FeedConfig(name="nws", kind="nws", url=f"{base}/alerts/active")
    fetcher = _fetcher()
    try:
        good = await fetcher.fetch(feed, FeedState())
        app.control({"feed": "nws", "mode": "truncated", "action": "update"})
        cut = await fetcher.fetch(feed, good.state)
        assert cut.outcome == "error" and "transport error" in (cut.error or "")
        assert cut.state.content_hash == good.state.content_hash and cut.state.last_modified == good.state.last_modified
        app.control({"feed": "nws", "mode": "ok"})
        again = await fetcher.fetch(feed, cut.state)
        assert again.outcome == "changed" and again.state.consecutive_errors == 0
    finally:
        await fetcher.aclose()


def test_cache_header_helpers() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    h = httpx.Headers(
        {"Cache-Control": "public, max-age=98, s-maxage=3600", "Expires": "Thu, 01 Jan 2026 13:00:00 GMT"}
    )
    assert freshness_s(h, now) == 98
    h2 = httpx.Headers({"Expires": "Thu, 01 Jan 2026 12:05:00 GMT", "Date": "Thu, 01 Jan 2026 12:00:00 GMT"})
    assert freshness_s(h2, now) == 300
    assert freshness_s(httpx.Headers({"Expires": "0"}), now) == 0
    assert freshness_s(httpx.Headers({}), now) is None
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("soon", now) is None
