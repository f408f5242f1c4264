"""Web push for public alerts against a real local push service that checks the VAPID JWT and decrypts
each message with the subscription's own private key: sign-up with a browser subscription, the
confirmation by push, the alert through the outbox (TTL, Urgency, Topic), receipts, retries, and a
410 that removes the subscription."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from server.alerts.messages import urgency_of
from server.alerts.push import MAX_TTL_S, PushSender, VapidKeys, VapidSigner, new_private_key, parse_subscription, ttl_s
from server.settings import AlertSettings
from tests.alerts.conftest import alert_body, square
from tests.alerts.fakes import FakePushService, PushBrowser
from tests.conftest import eventually

LON, LAT, HALF = -96.40, 42.50, 0.02


def place(lon: float, lat: float) -> list[dict[str, Any]]:
    return [{"geometry": {"type": "Point", "coordinates": [lon, lat]}}]


async def subscribe_browser(aclient: httpx.AsyncClient, browser: PushBrowser, lon: float, lat: float) -> str:
    """Sign up with only a push subscription; confirm with the link the confirmation push carries."""
    r = await aclient.post("/v1/subscribers", json={"push": browser.subscription(), "places": place(lon, lat)})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["channels"] == ["push"] and out["confirmation_sent_via"] == "push"
    msgs = await eventually(lambda: browser.messages, 30)
    confirm = msgs[0]["message"]
    assert confirm["title"] == "Confirm your alert subscription"
    token = parse_qs(urlsplit(confirm["url"]).query)["token"][0]
    c = await aclient.get("/v1/subscribers/confirm", params={"token": token})
    assert c.status_code == 200 and c.json()["status"] == "confirmed", c.text
    return str(out["id"])


async def test_vapid_public_key_is_served_and_the_same_on_every_call(
    aclient: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a = await aclient.get("/v1/push/vapid-public-key")
    b = await aclient.get("/v1/push/vapid-public-key")
    assert a.status_code == 200 and a.json() == b.json()
    stored = await db.fetchval("SELECT value FROM server_keys WHERE name = 'vapid'")
    assert VapidKeys.from_private(stored, "mailto:x@example.org").public_key == a.json()["public_key"]


async def test_push_alert_is_encrypted_signed_retried_and_a_gone_subscription_is_removed(
    aclient: httpx.AsyncClient,
    coord: dict[str, str],
    fire_coord: dict[str, str],
    db: asyncpg.Connection,
    push_service: FakePushService,
) -> None:
    public_key = (await aclient.get("/v1/push/vapid-public-key")).json()["public_key"]
    ok, flaky, gone = push_service.browser(), push_service.browser(), push_service.browser()
    ok_id = await subscribe_browser(aclient, ok, LON, LAT)
    flaky_id = await subscribe_browser(aclient, flaky, LON + 0.005, LAT)
    gone_id = await subscribe_browser(aclient, gone, LON - 0.005, LAT)
    flaky.status = [503]  # the push service fails once, then accepts
    gone.status = [410]  # the browser unsubscribed

    expires = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    body = alert_body(square(LON, LAT, HALF), expires=expires.isoformat())
    r = await aclient.post("/v1/alerts", json=body, headers=coord)
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    p = (await aclient.get(f"/v1/alerts/{aid}/preview", headers=coord)).json()
    assert p["inside_by_channel"].get("push") == 3, p
    assert p["messages"]["push"]["urgency"] == "high" and "subscription" not in p["messages"]["push"]
    assert (await aclient.post(f"/v1/alerts/{aid}/submit", headers=coord)).status_code == 200
    sent = await aclient.post(f"/v1/alerts/{aid}/approve", json={"send": True}, headers=fire_coord)
    assert sent.status_code == 200, sent.text
    assert sent.json()["deliveries"]["push"] == 3

    # The browser decrypts the alert; the request carried TTL, Urgency, Topic and a valid VAPID JWT.
    got = await eventually(lambda: ok.messages[1:], 30)
    message, headers = got[0]["message"], got[0]["headers"]
    assert message["title"] == "Flash flood: leave low ground now"
    assert message["body"] == "Flash flood: move to higher ground now."
    assert message["url"].endswith(f"/v1/alerts/{aid}.cap") and message["msg_type"] == "Alert"
    assert headers["urgency"] == "high" and headers["content-encoding"] == "aes128gcm"
    assert 7000 <= int(headers["ttl"]) <= 7200
    assert headers["topic"] == uuid.UUID(aid).hex
    assert push_service.vapid_keys and set(push_service.vapid_keys) == {public_key}
    assert push_service.rejected == []
    try:
        await eventually(lambda: flaky.messages[1:], 30)  # delivered on the retry
    except AssertionError:
        rows = await db.fetch(
            "SELECT status, attempts, next_try_at, now() AS now, last_error FROM outbox WHERE target = $1",
            flaky.endpoint,
        )
        raise AssertionError(f"no retry: {[dict(r) for r in rows]} rejected={push_service.rejected}") from None

    # Receipts: two sent (with the push service's message URL), one failed because the subscription is gone.
    async def settled() -> Any:
        d = (await aclient.get(f"/v1/alerts/{aid}/deliveries", headers=coord)).json()
        return d if d["by_channel"].get("push", {}).get("queued", 1) == 0 else None

    report = await eventually(settled, 30)
    assert report["by_channel"]["push"] == {"queued": 0, "sent": 2, "delivered": 0, "failed": 1}
    items = {i["recipient"]: i for i in report["items"] if i["channel"] == "push"}
    assert items[ok_id]["provider_id"].startswith(f"{push_service.url}/m/")
    assert items[flaky_id]["status"] == "sent" and items[flaky_id]["attempts"] == 2
    assert items[gone_id]["status"] == "failed"
    assert "HTTP 410" in items[gone_id]["last_error"] and "subscription removed" in items[gone_id]["last_error"]
    assert (
        await db.fetchval("SELECT count(*) FROM push_subscriptions WHERE subscriber_id = $1", uuid.UUID(gone_id)) == 0
    )
    assert await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'push_subscription.remove' AND target_id = $1", gone_id
    )

    # A Cancel goes to the same push subscriptions still there (not to the removed one), same Topic.
    c = await aclient.post(f"/v1/alerts/{aid}/correct", json={"note": "Sent in error."}, headers=fire_coord)
    assert c.status_code == 200, c.text
    assert c.json()["deliveries"] == {"push": 2}
    cancel = await eventually(lambda: ok.messages[2:], 30)
    assert cancel[0]["message"]["msg_type"] == "Cancel" and cancel[0]["headers"]["topic"] == uuid.UUID(aid).hex
    assert len(gone.messages) == 1  # only its confirmation


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s.pop("keys"), "push.keys"),
        (lambda s: s["keys"].update(p256dh="AAAA"), "push.keys.p256dh"),
        (lambda s: s["keys"].update(p256dh="B" * 87), "push.keys.p256dh"),  # 65 bytes but not on the curve
        (lambda s: s["keys"].update(auth="c2hvcnQ"), "push.keys.auth"),
        (lambda s: s.update(endpoint="ftp://push.example/x"), "push.endpoint"),
        (lambda s: s.update(extra=1), "push"),
    ],
)
async def test_bad_push_subscriptions_are_422_and_store_nothing(
    aclient: httpx.AsyncClient, db: asyncpg.Connection, push_service: FakePushService, change: Any, field: str
) -> None:
    sub = push_service.browser().subscription()
    change(sub)
    before = await db.fetchval("SELECT count(*) FROM subscribers")
    r = await aclient.post("/v1/subscribers", json={"push": sub, "places": place(LON, LAT)})
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()
    assert await db.fetchval("SELECT count(*) FROM subscribers") == before


async def test_one_push_subscription_belongs_to_one_subscriber_until_unsubscribed(
    aclient: httpx.AsyncClient, db: asyncpg.Connection, push_service: FakePushService
) -> None:
    b = push_service.browser()
    first = await aclient.post("/v1/subscribers", json={"push": b.subscription(), "places": place(LON, LAT)})
    assert first.status_code == 201, first.text
    again = await aclient.post("/v1/subscribers", json={"push": b.subscription(), "places": place(LON, LAT)})
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "push.endpoint"
    token = first.json()["unsubscribe_token"]
    assert (await aclient.post("/v1/subscribers/unsubscribe", params={"token": token})).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM push_subscriptions WHERE endpoint = $1", b.endpoint) == 0
    assert (
        await aclient.post("/v1/subscribers", json={"push": b.subscription(), "places": place(LON, LAT)})
    ).status_code == 201


async def test_push_endpoints_must_be_public_https_unless_allowed() -> None:
    strict = AlertSettings()
    sub = {"endpoint": "http://127.0.0.1:9/x", "keys": {"p256dh": "x", "auth": "y"}}
    _, errors = await parse_subscription(sub, strict, enabled=True)
    assert {"field": "push.endpoint", "message": "must be an https URL"} in errors
    sub["endpoint"] = "https://127.0.0.1:9/x"
    _, errors = await parse_subscription(sub, strict, enabled=True)
    assert any(e["field"] == "push.endpoint" and "loopback" in e["message"] for e in errors)
    _, errors = await parse_subscription(sub, strict, enabled=False)
    assert errors == [{"field": "push", "message": "web push is not configured on this server"}]


def test_urgency_follows_cap_urgency_and_extreme_is_always_high() -> None:
    assert urgency_of({"urgency": "Immediate", "severity": "Minor"}) == "high"
    assert urgency_of({"urgency": "Expected", "severity": "Severe"}) == "normal"
    assert urgency_of({"urgency": "Future", "severity": "Moderate"}) == "low"
    assert urgency_of({"urgency": "Past", "severity": "Minor"}) == "very-low"
    assert urgency_of({"urgency": "Future", "severity": "Extreme"}) == "high"


def test_ttl_is_the_time_left_until_expiry_capped_at_four_weeks() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert ttl_s("2026-01-01T01:00:00+00:00", now) == 3600
    assert ttl_s("2025-12-31T23:00:00Z", now) == 0
    assert ttl_s("2099-01-01T00:00:00Z", now) == MAX_TTL_S


def test_vapid_jwt_is_reused_per_push_service_until_near_expiry() -> None:
    signer = VapidSigner(VapidKeys.from_private(new_private_key(), "mailto:ops@example.org"))
    a = signer.header("https://push.example/a", now=1000.0)
    assert signer.header("https://push.example/b", now=2000.0) == a  # same origin
    assert signer.header("https://other.example/a", now=2000.0) != a
    assert signer.header("https://push.example/a", now=1000.0 + 12 * 3600 - 60) != a  # refreshed


async def test_an_alert_that_expired_while_queued_is_not_pushed(push_service: FakePushService) -> None:
    b = push_service.browser()
    keys = VapidKeys.from_private(new_private_key(), "mailto:ops@example.org")
    sender = PushSender(AlertSettings(alerts_push_allow_private=True, alerts_push_rate_per_s=0), keys)
    row = {
        "message_id": "alert:x:push:1",
        "payload": {
            "subscription": b.subscription(),
            "notification": {"title": "t"},
            "urgency": "high",
            "expires": "2020-01-01T00:00:00Z",
        },
    }
    try:
        r = await sender.send(row)
        assert not r.ok and r.permanent and "expired" in (r.error or "")
        assert b.messages == []
        row["payload"]["expires"] = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        r = await sender.send(row)
        assert r.ok, r.error
        assert b.messages[0]["message"] == {"title": "t"} and 290 <= int(b.messages[0]["headers"]["ttl"]) <= 300
    finally:
        await sender.aclose()
