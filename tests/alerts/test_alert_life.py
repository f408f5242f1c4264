"""The whole life of a public alert against the real server, PostgreSQL, Redis, aiosmtpd and the fake
SMS providers: compose, preview, submit, refused self-approval, approval by another coordinator, send,
receipts, update, cancel to exactly the original recipients; exercise alerts; corrections."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx

from server.outbox.webhook import verify
from tests.alerts.conftest import alert_body, square
from tests.alerts.fakes import FakeSmsProvider, SmtpSink, WebhookReceiver
from tests.alerts.test_cap_out import assert_valid_cap
from tests.conftest import eventually


async def subscribe(client: httpx.AsyncClient, db: asyncpg.Connection, **body: Any) -> dict[str, Any]:
    """Public sign-up, then confirm with the token the confirmation message carries."""
    r = await client.post("/v1/subscribers", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "pending_confirmation"
    token = await db.fetchval(
        "SELECT payload->>'confirm_token' FROM outbox WHERE message_id = $1", f"subscriber-confirm:{out['id']}"
    )
    c = await client.get("/v1/subscribers/confirm", params={"token": token})
    assert c.status_code == 200 and c.json()["status"] == "confirmed", c.text
    return out


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"geometry": {"type": "Point", "coordinates": [lon, lat]}}


async def ledger(db: asyncpg.Connection, alert_id: str) -> set[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT d.recipient, d.channel FROM deliveries d JOIN alerts a ON a.identifier = d.alert_identifier "
        "WHERE a.id = $1",
        __import__("uuid").UUID(alert_id),
    )
    return {(r["recipient"], r["channel"]) for r in rows}


async def test_whole_life_of_an_alert(
    aclient: httpx.AsyncClient,
    coord: dict[str, str],
    fire_coord: dict[str, str],
    db: asyncpg.Connection,
    smtp_sink: SmtpSink,
    sms_primary: FakeSmsProvider,
    hook_receiver: WebhookReceiver,
) -> None:
    lon, lat, half = -91.67, 41.98, 0.02
    a = await subscribe(aclient, db, email="a@example.org", phone="+13195550101", places=[point(lon, lat)])
    b = await subscribe(aclient, db, webhook_url=f"{hook_receiver.url}/hook", places=[point(lon + 0.01, lat)])
    edge_in = await subscribe(aclient, db, email="edge-in@example.org", places=[point(lon + half - 1e-5, lat)])
    near = await subscribe(aclient, db, email="near@example.org", places=[point(lon + half + 0.005, lat)])
    far = await subscribe(aclient, db, email="far@example.org", places=[point(lon + 1.0, lat)])
    pending = await aclient.post("/v1/subscribers", json={"email": "pending@example.org", "places": [point(lon, lat)]})
    assert pending.status_code == 201  # never confirmed: gets nothing

    # Compose and preview.
    r = await aclient.post("/v1/alerts", json=alert_body(square(lon, lat, half)), headers=coord)
    assert r.status_code == 201, r.text
    alert = r.json()
    assert alert["status"] == "draft" and alert["exercise"] is False and alert["msg_type"] == "Alert"
    aid = alert["id"]
    p = (await aclient.get(f"/v1/alerts/{aid}/preview", headers=coord)).json()
    assert p["inside"] == 3 and p["near_edge"] == 1, p
    assert p["inside_by_channel"] == {"email": 2, "sms": 1, "alert_webhook": 1}
    assert p["cap_problems"] == []
    assert_valid_cap(p["cap"].encode())
    assert len(p["messages"]["sms"]["body"]) <= 360 and p["messages"]["email"]["subject"].startswith("ALERT")

    # Edit while draft; submit; the author cannot approve; another coordinator can; send.
    e = await aclient.patch(f"/v1/alerts/{aid}", json={"severity": "Extreme"}, headers=coord)
    assert e.status_code == 200 and e.json()["content"]["severity"] == "Extreme"
    assert (await aclient.post(f"/v1/alerts/{aid}/approve", headers=fire_coord)).status_code == 409  # not submitted
    assert (await aclient.post(f"/v1/alerts/{aid}/submit", headers=coord)).json()["status"] == "submitted"
    assert (await aclient.patch(f"/v1/alerts/{aid}", json={"event": "x"}, headers=coord)).status_code == 409
    own = await aclient.post(f"/v1/alerts/{aid}/approve", headers=coord)
    assert own.status_code == 403 and own.json()["reason"] == "self-approval", own.text
    assert "second person" in own.json()["detail"]
    ok = await aclient.post(f"/v1/alerts/{aid}/approve", headers=fire_coord)
    assert ok.status_code == 200 and ok.json()["alert"]["status"] == "approved"
    sent = await aclient.post(f"/v1/alerts/{aid}/send", headers=fire_coord)
    assert sent.status_code == 200, sent.text
    assert sent.json()["deliveries"] == {"email": 2, "sms": 1, "alert_webhook": 1}
    assert (await aclient.post(f"/v1/alerts/{aid}/send", headers=fire_coord)).status_code == 409  # never twice

    # Receipts: the email arrived with one-click unsubscribe, the SMS at the provider, the webhook signed.
    def alerts_to(address: str) -> list[Any]:
        return [m for m in smtp_sink.to(address) if not m["Subject"].startswith("Confirm")]

    await eventually(lambda: alerts_to("a@example.org") and alerts_to("edge-in@example.org"), 30)
    mail = alerts_to("a@example.org")[0]
    assert mail["Subject"].startswith("ALERT: Flash flood")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/v1/subscribers/unsubscribe?token=" in mail["List-Unsubscribe"]
    assert not alerts_to("near@example.org") and not alerts_to("far@example.org")
    assert not alerts_to("pending@example.org")
    sms = await eventually(lambda: sms_primary.to("+13195550101"), 30)
    assert sms[0]["Body"] == "Flash flood warning: the river is rising fast. Move to higher ground now."
    hooks = await eventually(lambda: [h for h in hook_receiver.received if b"alert.alert" in h[1]], 30)
    headers, body = hooks[0]
    assert verify(b["webhook_secret"], headers, body)
    assert json.loads(body)["data"]["id"] == aid

    async def all_done() -> Any:
        d = (await aclient.get(f"/v1/alerts/{aid}/deliveries", headers=coord)).json()
        return d if d["counts"]["queued"] == 0 and d["counts"]["delivered"] == 1 else None

    report = await eventually(all_done, 30)
    assert report["counts"] == {"queued": 0, "sent": 3, "delivered": 1, "failed": 0}
    assert report["by_channel"]["sms"]["delivered"] == 1 and report["exercise"] is False
    sms_row = next(i for i in report["items"] if i["channel"] == "sms")
    assert sms_row["provider_id"] == sms[0]["sid"] and sms_row["recipient"] == a["id"]

    # The CAP document is public once sent, and valid.
    cap = await aclient.get(f"/v1/alerts/{aid}.cap")
    assert cap.status_code == 200 and cap.headers["content-type"].startswith("application/cap+xml")
    assert_valid_cap(cap.content)

    # Update: a new version referencing the original; someone who joined since gets it too.
    late = await subscribe(aclient, db, email="late@example.org", places=[point(lon - 0.01, lat)])
    u = (await aclient.post(f"/v1/alerts/{aid}/update", headers=coord)).json()
    assert u["msg_type"] == "Update" and u["version"] == 2 and u["thread_id"] == aid
    texts = alert_body(square(lon, lat, half))["texts"]
    texts[0]["headline"] = "Flash flood: water still rising"
    assert (await aclient.patch(f"/v1/alerts/{u['id']}", json={"texts": texts}, headers=coord)).status_code == 200
    await aclient.post(f"/v1/alerts/{u['id']}/submit", headers=coord)
    us = await aclient.post(f"/v1/alerts/{u['id']}/approve", json={"send": True}, headers=fire_coord)
    assert us.status_code == 200, us.text
    upd = us.json()["alert"]
    assert upd["status"] == "sent" and len(upd["references"]) == 1
    assert upd["references"][0].split(",")[1] == alert["identifier"]
    assert (await aclient.get(f"/v1/alerts/{aid}", headers=coord)).json()["status"] == "superseded"
    cap2 = await aclient.get(f"/v1/alerts/{u['id']}.cap")
    assert_valid_cap(cap2.content)
    assert {r[0] for r in await ledger(db, u["id"])} == {a["id"], b["id"], edge_in["id"], late["id"]}

    # A newcomer after the update; then Cancel goes to exactly those who got a live version.
    newcomer = await subscribe(aclient, db, email="newcomer@example.org", places=[point(lon, lat + 0.005)])
    c = (await aclient.post(f"/v1/alerts/{u['id']}/cancel", json={"note": "Water receding."}, headers=coord)).json()
    assert c["msg_type"] == "Cancel" and c["version"] == 3
    await aclient.post(f"/v1/alerts/{c['id']}/submit", headers=coord)
    cs = await aclient.post(f"/v1/alerts/{c['id']}/approve", json={"send": True}, headers=fire_coord)
    assert cs.status_code == 200, cs.text
    assert cs.json()["alert"]["references"][0].split(",")[1] == u["identifier"]
    got_live = await ledger(db, u["id"])
    # Exactly the same people (a channel whose delivery of the update failed for good, such as a
    # webhook that went away, is not retried for the cancel).
    assert {r[0] for r in await ledger(db, c["id"])} == {r[0] for r in got_live}
    assert newcomer["id"] not in {r[0] for r in got_live} and near["id"] not in {r[0] for r in got_live}
    assert far["id"] not in {r[0] for r in got_live}
    assert_valid_cap((await aclient.get(f"/v1/alerts/{c['id']}.cap")).content)
    await eventually(lambda: any("Cancelled" in m["Subject"] for m in smtp_sink.to("late@example.org")), 30)
    assert not alerts_to("newcomer@example.org")

    # A cancelled alert cannot be updated or cancelled again.
    again = await aclient.post(f"/v1/alerts/{u['id']}/update", headers=coord)
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]

    # The Atom index lists every sent version with a link to its CAP.
    atom = await aclient.get("/v1/alerts.atom")
    assert atom.status_code == 200 and atom.headers["content-type"].startswith("application/atom+xml")
    for x in (aid, u["id"], c["id"]):
        assert f"/v1/alerts/{x}.cap".encode() in atom.content

    # One-click unsubscribe (RFC 8058): POST with the token from the email header.
    link = mail["List-Unsubscribe"].strip("<>")
    assert (await aclient.get(link)).status_code == 200  # a page, not an unsubscribe
    assert await db.fetchval("SELECT unsubscribed_at FROM subscribers WHERE id = $1::uuid", a["id"]) is None
    un = await aclient.post(link, content=b"List-Unsubscribe=One-Click")
    assert un.status_code == 200 and un.json()["status"] == "unsubscribed"
    assert await db.fetchval("SELECT unsubscribed_at FROM subscribers WHERE id = $1::uuid", a["id"]) is not None


async def test_exercise_alerts_reach_only_exercise_recipients(
    aclient: httpx.AsyncClient,
    coord: dict[str, str],
    fire_coord: dict[str, str],
    db: asyncpg.Connection,
    smtp_sink: SmtpSink,
    sms_primary: FakeSmsProvider,
) -> None:
    lon, lat = -93.6, 41.6
    real = await subscribe(aclient, db, email="real@example.org", phone="+15155550111", places=[point(lon, lat)])
    drill = await subscribe(
        aclient, db, email="drill@example.org", phone="+15155550112", places=[point(lon, lat)], exercise=True
    )
    r = await aclient.post("/v1/alerts", json=alert_body(square(lon, lat, 0.05), status="Exercise"), headers=coord)
    assert r.status_code == 201 and r.json()["exercise"] is True
    aid = r.json()["id"]
    p = (await aclient.get(f"/v1/alerts/{aid}/preview", headers=coord)).json()
    assert p["exercise"] is True and p["inside"] == 1
    assert p["messages"]["email"]["subject"].startswith("[EXERCISE]")
    assert p["messages"]["sms"]["body"].startswith("[EXERCISE]")
    assert p["messages"]["alert_webhook"]["event"]["data"]["headline"].startswith("[EXERCISE]")
    assert (await aclient.post(f"/v1/alerts/{aid}/submit", headers=coord)).json()["exercise"] is True
    s = await aclient.post(f"/v1/alerts/{aid}/approve", json={"send": True}, headers=fire_coord)
    assert s.status_code == 200 and s.json()["exercise"] is True and s.json()["alert"]["exercise"] is True
    assert s.json()["deliveries"] == {"email": 1, "sms": 1}
    assert {r[0] for r in await ledger(db, aid)} == {drill["id"]}
    mails = await eventually(lambda: [m for m in smtp_sink.to("drill@example.org") if "EXERCISE" in m["Subject"]], 30)
    assert mails[0]["Subject"].startswith("[EXERCISE] ALERT")
    assert mails[0]["X-Sitrep-Exercise"] == "true"
    sms = await eventually(lambda: sms_primary.to("+15155550112"), 30)
    assert sms[0]["Body"].startswith("[EXERCISE] ")
    assert not [m for m in smtp_sink.to("real@example.org") if "ALERT" in m["Subject"]]
    assert not sms_primary.to("+15155550111")
    assert real["id"] not in {r[0] for r in await ledger(db, aid)}
    d = (await aclient.get(f"/v1/alerts/{aid}/deliveries", headers=coord)).json()
    assert d["exercise"] is True
    listing = (await aclient.get("/v1/alerts", headers=coord)).json()
    assert listing["exercise_present"] is True
    assert all(i["exercise"] == (i["cap_status"] != "Actual") for i in listing["items"])
    cap = await aclient.get(f"/v1/alerts/{aid}.cap")
    assert_valid_cap(cap.content)
    assert b"<status>Exercise</status>" in cap.content and cap.headers["x-sitrep-exercise"] == "true"


async def test_correction_reaches_exactly_who_got_the_mistake(
    aclient: httpx.AsyncClient,
    coord: dict[str, str],
    fire_coord: dict[str, str],
    db: asyncpg.Connection,
    smtp_sink: SmtpSink,
) -> None:
    lon, lat = -91.53, 41.66  # Iowa City
    got = await subscribe(aclient, db, email="got@example.org", places=[point(lon, lat)])
    r = await aclient.post("/v1/alerts", json=alert_body(square(lon, lat, 0.02)), headers=coord)
    aid = r.json()["id"]
    await aclient.post(f"/v1/alerts/{aid}/submit", headers=coord)
    assert (await aclient.post(f"/v1/alerts/{aid}/approve", json={"send": True}, headers=fire_coord)).status_code == 200
    joined = await subscribe(aclient, db, email="joined@example.org", places=[point(lon, lat)])
    fix = await aclient.post(f"/v1/alerts/{aid}/correct", json={"note": "Sent in error: no flood."}, headers=coord)
    assert fix.status_code == 200, fix.text
    out = fix.json()
    assert out["alert"]["msg_type"] == "Cancel" and out["alert"]["status"] == "sent"
    assert out["deliveries"] == {"email": 1}
    assert await ledger(db, out["alert"]["id"]) == {(got["id"], "email")}
    assert joined["id"] not in {r[0] for r in await ledger(db, out["alert"]["id"])}
    mails = await eventually(lambda: [m for m in smtp_sink.to("got@example.org") if "Cancelled" in m["Subject"]], 30)
    assert "Sent in error: no flood." in mails[0].get_payload(decode=True).decode()
    assert_valid_cap((await aclient.get(f"/v1/alerts/{out['alert']['id']}.cap")).content)
    # Correcting again: nothing live is left.
    assert (await aclient.post(f"/v1/alerts/{aid}/correct", headers=coord)).status_code == 409
