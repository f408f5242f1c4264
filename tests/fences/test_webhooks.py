"""Webhook delivery from the outbox against a real local receiver that fails on purpose."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from server.outbox.core import backoff_s
from server.outbox.webhook import sign, verify
from tests.conftest import eventually

from .conftest import events_of, move, square
from .receiver import Receiver


async def _setup(
    fc: httpx.AsyncClient, admin: dict[str, str], url: str, lon: float, lat: float, **flt: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    hz = (await fc.post("/v1/hazards", json={"kind": "fire", "geometry": square(lon, lat)}, headers=admin)).json()
    r = await fc.post("/v1/webhooks", json={"url": url, "filter": {"fences": [hz["id"]], **flt}}, headers=admin)
    assert r.status_code == 201, r.text
    return hz, r.json()


async def _deliveries(
    fc: httpx.AsyncClient, admin: dict[str, str], hook_id: str, **params: Any
) -> list[dict[str, Any]]:
    r = await fc.get(f"/v1/webhooks/{hook_id}/deliveries", params=params, headers=admin)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_standard_webhooks_signature_round_trip() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="  # the Standard Webhooks reference vector
    assert backoff_s(30, 1.0, 3600.0, rng=lambda: 1.0) == 3600.0
    assert backoff_s(1, 1.0, 3600.0, rng=lambda: 0.5) == 0.5


async def test_receiver_down_then_up_gets_everything_with_the_same_id(
    fc: httpx.AsyncClient, admin: dict[str, str], device: dict[str, str]
) -> None:
    receiver = Receiver(mode="fail", fail_times=3)
    await receiver.start()
    try:
        lon, lat = -96.0, 36.0
        hz, hook = await _setup(fc, admin, receiver.url, lon, lat)
        await move(fc, device, lon, lat)
        await move(fc, device, lon + 0.05, lat)
        await eventually(lambda: len(receiver.requests) >= 3, timeout=15)
        await receiver.stop()  # now down: connection refused
        await asyncio.sleep(1.0)
        receiver.mode = "ok"
        await receiver.start()
        got = await eventually(
            lambda: len({r.headers["webhook-id"] for r in receiver.ok()}) == 2 and receiver.ok(), timeout=20
        )
        ids = {r.headers["webhook-id"] for r in got}
        detects = sorted(r.json["detect"] for r in got)
        assert detects == ["enter", "exit"]
        for r in receiver.requests:
            assert r.headers["webhook-id"] in ids  # every retry carried one of the two ids
            assert verify(hook["secret"], r.headers, r.body)
        rows = await _deliveries(fc, admin, hook["id"])
        assert sorted(d["status"] for d in rows) == ["delivered", "delivered"]
        assert max(d["attempts"] for d in rows) >= 2
        stored = await events_of(fc, admin, fence=hz["id"])
        assert len(stored) == 2
    finally:
        await receiver.stop()


async def test_dead_letter_after_max_age_and_redeliver(
    fc: httpx.AsyncClient, admin: dict[str, str], device: dict[str, str], fdb: Any
) -> None:
    receiver = Receiver(mode="error")
    await receiver.start()
    try:
        lon, lat = -96.2, 36.2
        _, hook = await _setup(fc, admin, receiver.url, lon, lat)
        await move(fc, device, lon, lat)
        await eventually(lambda: len(receiver.requests) >= 2, timeout=15)
        # the row has been failing "for a day": the next failure dead-letters it
        await fdb.execute(
            "UPDATE outbox SET created_at = now() - interval '25 hours' WHERE webhook_id = $1", hook["id"]
        )
        await eventually(lambda: _deliveries(fc, admin, hook["id"], status="dead"), timeout=10)
        dead = (await _deliveries(fc, admin, hook["id"]))[0]
        assert dead["last_error"] == "HTTP 500"
        n = len(receiver.requests)
        await asyncio.sleep(1.0)
        assert len(receiver.requests) == n  # dead rows are not retried
        metrics = (await fc.get("/metrics")).text
        assert 'sitrep_outbox_deliveries_total{channel="webhook",result="dead"}' in metrics

        receiver.mode = "ok"
        r = await fc.post(f"/v1/webhooks/{hook['id']}/deliveries/{dead['id']}/redeliver", headers=admin)
        assert r.status_code == 202, r.text
        await eventually(lambda: receiver.ok(), timeout=10)
        assert receiver.ok()[0].headers["webhook-id"] == dead["message_id"]
        await eventually(lambda: _deliveries(fc, admin, hook["id"], status="delivered"), timeout=10)
    finally:
        await receiver.stop()


async def test_a_hanging_receiver_holds_back_nothing_else(
    fc: httpx.AsyncClient, admin: dict[str, str], fence_db: Any
) -> None:
    slow, fast = Receiver(mode="hang"), Receiver()
    await slow.start()
    await fast.start()
    try:
        lon, lat = -96.4, 36.4
        hz = (await fc.post("/v1/hazards", json={"kind": "fire", "geometry": square(lon, lat)}, headers=admin)).json()
        for url in (slow.url, fast.url):
            r = await fc.post("/v1/webhooks", json={"url": url, "filter": {"fences": [hz["id"]]}}, headers=admin)
            assert r.status_code == 201
        devices = fence_db.devices[150:160]
        for d in devices:
            await move(fc, d, lon, lat)
        await eventually(lambda: len(fast.ok()) >= len(devices), timeout=10)
        assert len(slow.requests) >= 1 and not slow.ok()
    finally:
        await slow.stop()
        await fast.stop()


async def test_webhook_urls_are_checked(fc: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for url in ("ftp://example.org/x", "http://", "not a url"):
        r = await fc.post("/v1/webhooks", json={"url": url}, headers=admin)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url", url
    r = await fc.post("/v1/webhooks", json={"url": "https://example.org/h", "secret": "nope"}, headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "secret"
    r = await fc.post(
        "/v1/webhooks", json={"url": "https://example.org/h", "filter": {"detects": ["boom"]}}, headers=admin
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "filter.detects"


async def test_private_urls_are_refused_without_the_setting() -> None:
    from server.outbox.webhook import check_url

    assert "loopback" in (await check_url("http://127.0.0.1:9/x", allow_private=False) or "")
    assert "link-local" in (await check_url("http://169.254.169.254/latest", allow_private=False) or "")
    assert "private" in (await check_url("http://10.1.2.3/", allow_private=False) or "")
    assert await check_url("http://[::1]/", allow_private=False)
    assert await check_url("http://127.0.0.1:9/x", allow_private=True) is None
