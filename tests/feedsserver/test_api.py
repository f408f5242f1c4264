"""``/v1/feeds``: roles, validation, edits reaching the leader, 429 backoff in health, metrics, stream topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from feeds.fake import FakeFeedApp
from tests.conftest import ServerProcess, bearer, eventually, login
from tests.feedsserver.helpers import create_feed, feed, poll
from tests.stream.helpers import open_viewer

Fake = tuple[FakeFeedApp, str]


async def test_every_role_reads_feeds_only_admins_write(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    _, base = fake
    await create_feed(api, admin, name="roles", kind="gdacs", url=f"{base}/xml/rss.xml", enabled=False)
    for user in ("coord", "viewer", "responder"):
        h = bearer(await login(api, user))
        r = await api.get("/v1/feeds", headers=h)
        assert r.status_code == 200 and "roles" in {f["name"] for f in r.json()["items"]}
        assert (
            await api.post("/v1/feeds", json={"name": "x", "kind": "nws", "url": base}, headers=h)
        ).status_code == 403
        assert (await api.patch("/v1/feeds/roles", json={"enabled": True}, headers=h)).status_code == 403
        assert (await api.post("/v1/feeds/roles/poll", headers=h)).status_code == 403
    assert (await api.get("/v1/feeds")).status_code == 401


async def test_bad_feeds_are_422_with_field_errors_and_nothing_is_written(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any
) -> None:
    _, base = fake
    cases = [
        ({"name": "Bad Name", "kind": "nws", "url": f"{base}/alerts/active"}, "name"),
        ({"name": "k", "kind": "tsunami", "url": f"{base}/x"}, "kind"),
        ({"name": "u", "kind": "usgs", "url": "ftp://example.org/x"}, "url"),
        ({"name": "i", "kind": "nws", "url": f"{base}/alerts/active", "interval_s": 10}, "interval_s"),
        ({"name": "j", "kind": "usgs", "url": f"{base}/x", "interval_s": 59}, "interval_s"),
        ({"name": "a", "kind": "gdacs", "url": f"{base}/x", "area": [10, 50, 0, 40]}, "area"),
        (
            {"name": "o", "kind": "firms", "url": f"{base}/x", "options": {"min_confidence": 400}},
            "options.min_confidence",
        ),
        ({"name": "p", "kind": "firms", "url": f"{base}/x", "options": {"shell": "rm -rf"}}, "options.shell"),
    ]
    for body, field in cases:
        r = await api.post("/v1/feeds", json=body, headers=admin)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in r.json()["errors"]}, (field, r.json())
    r = await api.post("/v1/feeds", json={"name": "z", "kind": "nws", "url": base, "colour": "red"}, headers=admin)
    assert r.status_code == 422
    names = {r["name"] for r in await fdb.fetch("SELECT name FROM feed_state")}
    assert not names & {"k", "u", "i", "j", "a", "o", "p", "z"}
    await create_feed(api, admin, name="dup", kind="gdacs", url=f"{base}/xml/rss.xml", enabled=False)
    r = await api.post("/v1/feeds", json={"name": "dup", "kind": "gdacs", "url": f"{base}/x"}, headers=admin)
    assert r.status_code == 409
    r = await api.patch("/v1/feeds/dup", json={"interval_s": 1}, headers=admin)
    assert r.status_code == 200  # GDACS has no source minimum
    r = await api.patch("/v1/feeds/iowa-nope", json={"enabled": True}, headers=admin)
    assert r.status_code == 404
    assert (await api.post("/v1/feeds/dup/poll", headers=admin)).status_code == 409  # disabled
    audit = await fdb.fetch("SELECT action FROM audit_log WHERE target_type = 'feed' AND target_id = 'dup'")
    assert [a["action"] for a in audit] == ["feed.create", "feed.update"]


async def test_patch_reaches_the_leader_and_area_of_interest_filters(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any
) -> None:
    app, base = fake
    await create_feed(api, admin, name="aoi", kind="usgs", url=f"{base}/samples/none.geojson", interval_s=60)
    f = await poll(api, admin, "aoi")
    assert f["health"]["status"] == "failing" and f["health"]["last_error"] == "HTTP 404"
    app.control({"feed": "usgs", "action": "reset"})
    url = f"{base}/earthquakes/feed/v1.0/summary/all_day.geojson"
    # only the area around the fake city: the antimeridian quake is dropped
    r = await api.patch("/v1/feeds/aoi", json={"url": url, "area": [-93, 41, -90, 43]}, headers=admin)
    assert r.status_code == 200 and r.json()["url"] == url and r.json()["area"] == [-93, 41, -90, 43]

    # A cycle asked for before the edit may still finish on the old URL: wait for the new one.
    async def polled_new_url() -> dict[str, Any] | None:
        f = await poll(api, admin, "aoi")
        return f if f["health"]["status"] == "ok" else None

    f = await eventually(polled_new_url, timeout=30, interval=0.2)
    assert f["health"]["items_last"] == 2, f["health"]
    r = await api.patch("/v1/feeds/aoi", json={"area": None}, headers=admin)
    assert r.json()["area"] is None


async def test_429_backs_off_visibly_and_other_feeds_carry_on(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], feeds_server: ServerProcess
) -> None:
    app, base = fake
    await create_feed(api, admin, name="limited", kind="gdacs", url=f"{base}/xml/rss_24h.xml", interval_s=300)
    await create_feed(api, admin, name="healthy", kind="cap", url=f"{base}/cap/index.atom", interval_s=300)
    await poll(api, admin, "limited")
    app.control({"feed": "gdacs", "mode": "429", "retry_after": 120})
    try:
        f = await poll(api, admin, "limited")
        h = f["health"]
        assert h["status"] == "failing" and h["consecutive_errors"] == 1
        assert h["last_error"] == "HTTP 429 (Retry-After 120 s)"
        assert datetime.fromisoformat(h["next_poll_at"]) >= datetime.now(UTC) + timedelta(seconds=100)
        assert (await poll(api, admin, "healthy"))["health"]["status"] == "ok"
        metrics = (await api.get("/metrics")).text
        assert 'sitrep_feed_up{feed="limited"} 0.0' in metrics
        assert 'sitrep_feed_up{feed="healthy"} 1.0' in metrics
        assert 'sitrep_feed_consecutive_errors{feed="limited"} 1.0' in metrics
    finally:
        app.control({"feed": "gdacs", "mode": "ok"})
    f = await poll(api, admin, "limited")
    assert f["health"]["status"] == "ok" and f["health"]["consecutive_errors"] == 0


async def test_health_is_published_on_the_stream_feeds_topic(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], feeds_server: ServerProcess
) -> None:
    _, base = fake
    await create_feed(api, admin, name="streamed", kind="cap", url=f"{base}/cap/index.atom", interval_s=300)
    viewer = await open_viewer(feeds_server.ws_url, admin["Authorization"].split()[1])
    try:
        snap = await viewer.subscribe(topics=["feeds"])
        assert snap["type"] == "snapshot", snap
        await api.post("/v1/feeds/streamed/poll", headers=admin)
        _, item = await viewer.item("feeds", "streamed", lambda d: d.get("status") == "ok", timeout=15)
        assert item["data"]["name"] == "streamed" and "last_success_at" in item["data"]
    finally:
        await viewer.ws.close()


async def test_stale_feed_shows_stale(api: httpx.AsyncClient, admin: dict[str, str], fdb: Any) -> None:
    old = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    await fdb.execute(
        "INSERT INTO feed_state (name, kind, url, enabled, interval_s, health) VALUES ('old', 'gdacs', "
        "'http://127.0.0.1:9/x', false, 300, jsonb_build_object('status', 'ok', 'last_success_at', $1::text))",
        old,
    )
    assert (await feed(api, admin, "old"))["health"]["status"] == "disabled"
    await fdb.execute("UPDATE feed_state SET enabled = true WHERE name = 'old'")
    await eventually(lambda: True)
    assert (await feed(api, admin, "old"))["health"]["status"] == "stale"
