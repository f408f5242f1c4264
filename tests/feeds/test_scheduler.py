"""FeedScheduler end to end: fake feed server (real HTTP) → parsers → an in-memory FeedSink double."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from feeds.config import FeedConfig, FeedState
from feeds.fake import FakeFeedApp
from feeds.fake_payloads import Scenario
from feeds.http import FeedFetcher, FetchSettings
from feeds.scheduler import FeedHealth, FeedScheduler
from tests.feeds.support import InMemorySink

Fake = tuple[FakeFeedApp, str]


def _fetcher() -> FeedFetcher:
    # tests poll faster than the real services allow: the source floors are a setting
    settings = FetchSettings(user_agent="sitrep-test (t@example.org)", timeout_s=2, backoff_base_s=0.05,
                             backoff_cap_s=0.2, source_min_interval_s={})  # fmt: skip
    return FeedFetcher(settings, rng=random.Random(5))


def _feeds(base: str) -> dict[str, FeedConfig]:
    return {
        "nws": FeedConfig(name="nws", kind="nws", url=f"{base}/alerts/active", min_interval_s=0.1),
        "usgs": FeedConfig(name="usgs", kind="usgs", url=f"{base}/earthquakes/feed/v1.0/summary/all_hour.geojson",
                           min_interval_s=0.1),
        "gdacs": FeedConfig(name="gdacs", kind="gdacs", url=f"{base}/xml/rss.xml", min_interval_s=0.1),
        "firms": FeedConfig(name="firms", kind="firms", url=f"{base}/api/area/csv/KEY/VIIRS_SNPP_NRT/world/1",
                            min_interval_s=0.1),
        "cap": FeedConfig(name="cap", kind="cap", url=f"{base}/cap/index.atom", min_interval_s=0.1),
    }  # fmt: skip


async def test_nws_alerts_are_created_updated_and_cancelled(fake: Fake) -> None:
    app, base = fake
    sink = InMemorySink()
    sched = FeedScheduler([_feeds(base)["nws"]], sink, _fetcher())
    health = await sched.poll_feed("nws")
    assert health.status == "ok" and health.items_last == 3 and sink.applied[-1][1].created == 3
    first_tor = Scenario.nws_id(0)
    assert first_tor in sink.active("nws")
    # a repeat is a 304: nothing is applied
    applied = len(sink.applied)
    health = await sched.poll_feed("nws")
    assert health.last_outcome == "not_modified" and len(sink.applied) == applied
    # an update (new identifier, references the old one) replaces the polygon
    app.control({"feed": "nws", "action": "update"})
    await sched.poll_feed("nws")
    summary = sink.applied[-1][1]
    assert summary.created == 1 and summary.ended == 1 and summary.unchanged == 2
    active = sink.active("nws")
    assert first_tor not in active and Scenario.nws_id(1) in active
    assert active[Scenario.nws_id(1)].references == [first_tor]
    # a cancel ends it
    app.control({"feed": "nws", "action": "cancel"})
    await sched.poll_feed("nws")
    assert Scenario.nws_id(1) not in sink.active("nws")
    assert not any("tor" in k for k in sink.active("nws"))
    assert sched.health()["nws"].items_total == 9


async def test_health_goes_failing_then_recovers_and_reports_disabled_and_stale(fake: Fake) -> None:
    app, base = fake
    now = [datetime.now(UTC)]
    sink = InMemorySink()
    feeds = _feeds(base)
    sched = FeedScheduler([feeds["gdacs"]], sink, _fetcher(), clock=lambda: now[0], stale_after_s=600)
    assert (await sched.poll_feed("gdacs")).status == "ok"
    app.control({"feed": "gdacs", "mode": "500"})
    failing = await sched.poll_feed("gdacs")
    assert failing.status == "failing" and failing.last_error == "HTTP 500" and failing.consecutive_errors == 1
    assert failing.last_error_at == now[0] and failing.last_success_at is not None
    assert sink.states["gdacs"][1].status == "failing"  # persisted through the sink
    app.control({"feed": "gdacs", "mode": "ok"})
    recovered = await sched.poll_feed("gdacs")
    assert recovered.status == "ok" and recovered.consecutive_errors == 0
    now[0] += timedelta(seconds=601)
    assert sched.health()["gdacs"].status == "stale"
    sched.upsert_feed(FeedConfig(name="gdacs", kind="gdacs", url=feeds["gdacs"].url, enabled=False))
    assert sched.health()["gdacs"].status == "disabled"


async def test_a_failing_feed_never_stops_the_others(fake: Fake) -> None:
    app, base = fake
    app.control({"feed": "nws", "mode": "500"})
    app.control({"feed": "usgs", "mode": "timeout", "delay_s": 5})
    sink = InMemorySink()
    sink.fail_apply_for.add("firms")
    feeds = _feeds(base)
    fetcher = FeedFetcher(
        FetchSettings(timeout_s=0.3, backoff_base_s=0.05, backoff_cap_s=0.2, source_min_interval_s={})
    )
    sched = FeedScheduler(list(feeds.values()), sink, fetcher)
    task = asyncio.create_task(sched.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            health = sched.health()
            if (
                {n for n, _ in sink.applied} >= {"gdacs", "cap"}
                and app.hits["nws"] >= 3
                and health["usgs"].status == health["firms"].status == "failing"
            ):
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await fetcher.aclose()
    health = sched.health()
    assert health["nws"].status == "failing" and app.hits["nws"] >= 3  # kept retrying with backoff
    assert health["usgs"].status == "failing" and (health["usgs"].last_error or "").startswith("timeout")
    assert health["firms"].status == "failing" and "database unavailable" in (health["firms"].last_error or "")
    assert health["gdacs"].status == "ok" and health["cap"].status == "ok"
    assert len(sink.active("gdacs")) == 3
    assert task.cancelled()


async def test_unreadable_document_is_recorded_and_reapplied_once_fixed(fake: Fake, samples: Any) -> None:
    app, base = fake
    app.control({"feed": "nws", "replay": "gdacs/gdacs_rss_2019-12-30.xml"})  # XML where JSON is expected
    sink = InMemorySink()
    sched = FeedScheduler([_feeds(base)["nws"]], sink, _fetcher())
    bad = await sched.poll_feed("nws")
    assert bad.status == "failing" and "unreadable document" in (bad.last_error or "")
    assert sched.state("nws").content_hash is None and sink.applied == []
    app.control(
        {"feed": "nws", "replay": "nws/weathergov_templated_alerts_active_area_IA_cedar_rapids_tornado_flood.json"}
    )
    sched.poll_now("nws")
    good = await sched.poll_feed("nws")
    assert good.status == "ok" and good.items_last == 48 and good.errors_last == 0
    assert len(sink.active("nws")) == 48


async def test_cap_index_links_are_followed_and_replace_provisional_items(fake: Fake) -> None:
    app, base = fake
    sink = InMemorySink()
    sched = FeedScheduler([_feeds(base)["cap"]], sink, _fetcher())
    health = await sched.poll_feed("cap")
    assert health.status == "ok" and health.errors_last == 0
    active = sink.active("cap")
    assert set(active) == {"sitrep-fake-0-r0", "sitrep-fake-1-r0"}
    assert all(i.geometry is not None and "provisional" not in i.raw for i in active.values())
    again = await sched.poll_feed("cap")
    assert again.last_outcome == "unchanged"  # MeteoAlarm-style: same body, no validators
    app.control({"feed": "cap", "action": "update"})
    await sched.poll_feed("cap")
    active = sink.active("cap")
    assert "sitrep-fake-0-r1" in active and "sitrep-fake-0-r0" not in active


class _HttpZones:
    """A zone resolver the way the server would build one: fetch /zones/forecast/<id> once, cache it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cache: dict[str, dict[str, Any] | None] = {}

    async def geometry_for(self, ugc_or_same: str) -> dict[str, Any] | None:
        if ugc_or_same[2:3] != "Z":
            return None
        if ugc_or_same not in self.cache:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"{self.base}/zones/forecast/{ugc_or_same}")
            self.cache[ugc_or_same] = r.json()["geometry"] if r.status_code == 200 else None
        return self.cache[ugc_or_same]


async def test_null_geometries_are_resolved_from_zones_and_area_of_interest_filters(fake: Fake) -> None:
    app, base = fake
    sink = InMemorySink()
    resolver = _HttpZones(base)
    lon, lat = app.scenario.city
    usgs = FeedConfig(name="usgs", kind="usgs", url=f"{base}/earthquakes/feed/v1.0/summary/all_hour.geojson",
                      area_of_interest=(lon - 2, lat - 2, lon + 2, lat + 2))  # fmt: skip
    sched = FeedScheduler([_feeds(base)["nws"], usgs], sink, _fetcher(), resolver=resolver)
    await sched.poll_feed("nws")
    flood = next(i for i in sink.active("nws").values() if i.kind == "Flood Watch")
    assert flood.geometry is not None and set(resolver.cache) == {"IAZ052", "IAZ053"}
    await sched.poll_feed("usgs")
    assert set(sink.active("usgs")) == {"fk00000001", "fk00000002"}  # the antimeridian quake is outside


async def test_persisted_state_is_loaded_and_used_for_conditional_requests(fake: Fake) -> None:
    app, base = fake
    sink = InMemorySink()
    feeds = _feeds(base)
    sched = FeedScheduler([feeds["nws"]], sink, _fetcher())
    await sched.poll_feed("nws")
    saved_state, _ = sink.states["nws"]
    assert saved_state.last_modified
    fresh = FeedScheduler([feeds["nws"]], sink, _fetcher())
    await fresh.load()
    assert fresh.state("nws") == saved_state
    health = await fresh.poll_feed("nws")
    assert health.last_outcome == "not_modified"
    assert app.last_headers["nws"]["if-modified-since"] == saved_state.last_modified


def test_structs_have_safe_defaults() -> None:
    assert FeedState().consecutive_errors == 0 and FeedHealth().status == "ok"
