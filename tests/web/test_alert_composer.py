"""The public alert composer in Debian's Chromium against the real server: a coordinator draws the area,
writes the texts (live character counts), previews (recipients inside and near the edge, the CAP XML) and
submits; they cannot approve it themselves; a second coordinator approves and sends it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from shapely.geometry import Point

from server.alerts.targeting import place_cells
from tests.conftest import ServerProcess, bearer, login
from tests.web.conftest import new_page, ui_login, wait_map
from tests.web.test_command_center import serious_violations, shot

CENTRE = (-92.34, 42.49)  # Waterloo, IA: no other test puts subscribers here
CORNERS = [(-0.01, -0.008), (0.01, -0.008), (0.01, 0.008), (-0.01, 0.008)]


async def add_subscriber(db: Any, lon: float, lat: float) -> None:
    """A confirmed email subscriber (written directly: the UI under test is the composer, not sign-up)."""
    sid = await db.fetchval(
        "INSERT INTO subscribers (email, language, confirmed_at) VALUES ($1, 'en-US', now()) RETURNING id",
        f"web-{uuid.uuid4().hex[:8]}@example.org",
    )
    await db.execute(
        "INSERT INTO subscriber_places (subscriber_id, geom, cells) VALUES ($1, ST_SetSRID(ST_GeomFromWKB($2), 4326), $3)",
        sid,
        shapely.to_wkb(Point(lon, lat)),
        place_cells(Point(lon, lat)),
    )


async def alerts_pane(browser: Any, web_server: ServerProcess, username: str) -> tuple[Any, Any]:
    page = await new_page(browser, web_server)
    await ui_login(page, username)
    await wait_map(page)
    await page.wait_for_function("() => window.sitrep.initialLoadedAt")
    await page.get_by_role("tab", name="Alerts").click()
    pane = page.locator("#pane-alerts")
    await pane.get_by_role("heading", name="Compose public alert").wait_for()
    return page, pane


@pytest.mark.timeout(600)  # two logged-in map pages in software rendering on a shared 2-core machine
async def test_coordinator_composes_previews_and_submits_and_a_second_coordinator_approves(
    browser: Any, web_server: ServerProcess, api: httpx.AsyncClient, db: Any, artifacts: Path
) -> None:
    await add_subscriber(db, *CENTRE)  # inside
    await add_subscriber(db, CENTRE[0] + 0.0105, CENTRE[1])  # ~40 m outside the east edge
    headline = f"Flash flood: leave low ground now ({uuid.uuid4().hex[:6]})"
    started = time.monotonic()

    def mark(what: str) -> None:  # where the time went, printed if the test fails
        print(f"{time.monotonic() - started:6.1f}s {what}")

    coord = bearer(await login(api, "coord"))

    page, pane = await alerts_pane(browser, web_server, "coord")
    mark("alerts tab open")
    # The area: "Start drawing area" from the keyboard, then a click on the map at each corner.
    await page.evaluate(f"() => window.sitrep.map.map.jumpTo({{center: [{CENTRE[0]}, {CENTRE[1]}], zoom: 13}})")
    await page.wait_for_function("() => window.sitrep.map.loaded === true", timeout=60000)
    await pane.get_by_label("Area from").select_option("polygon")
    await pane.get_by_role("button", name="Start drawing area").focus()
    await page.keyboard.press("Enter")
    mark("drawing started")
    canvas = page.locator("#map canvas.maplibregl-canvas")
    status = pane.locator("#alert-draw-status")
    for i, (dx, dy) in enumerate(CORNERS, start=1):
        xy = await page.evaluate(f"() => window.sitrep.map.map.project([{CENTRE[0] + dx}, {CENTRE[1] + dy}])")
        for _attempt in range(3):  # a click that lands while the map is still settling is tried again
            await canvas.click(position={"x": xy["x"], "y": xy["y"]})
            try:
                await status.filter(has_text=f"{i} corner").wait_for(timeout=5000)
                break
            except Exception:
                mark(f"corner {i} click missed")
                continue
    await status.filter(has_text="4 corners.").wait_for()

    mark("area drawn")
    await pane.get_by_label("Area description").fill("Low ground along the Cedar River in Waterloo")
    await pane.get_by_label("Event", exact=True).fill("Flash Flood Warning")
    await pane.get_by_label("Urgency").select_option("Immediate")
    await pane.get_by_label("Severity").select_option("Severe")
    await pane.get_by_label("Certainty").select_option("Observed")
    await pane.get_by_label("Response").select_option("Evacuate")
    await pane.get_by_label("Headline").fill(headline)
    await pane.get_by_label("Description", exact=True).fill("The Cedar River is rising fast and will flood low ground.")
    await pane.get_by_label("Instruction").fill("Move to higher ground now.")

    # Live character counts: too long is flagged and blocks saving; the exercise prefix counts.
    short = pane.get_by_label("Phone text (90 characters)")
    await short.fill("x" * 95)
    await pane.locator("#alert-sms-90-count").filter(has_text="95 / 90 characters — 5 too many").wait_for()
    assert await short.get_attribute("aria-invalid") == "true"
    assert await pane.get_by_role("button", name="Save draft and preview").is_disabled()
    await short.fill("Flash flood: move to higher ground now.")
    await pane.locator("#alert-sms-90-count").filter(has_text="39 / 90 characters").wait_for()
    await pane.get_by_label("Mode").select_option("Exercise")
    await (
        pane.locator("#alert-sms-90-count")
        .filter(has_text="50 / 90 characters (with the [EXERCISE] prefix)")
        .wait_for()
    )
    assert await pane.locator("#alert-form .alert-exercise-banner").is_visible()
    await pane.get_by_label("Mode").select_option("Actual")
    assert not await pane.locator("#alert-form .alert-exercise-banner").is_visible()
    await pane.get_by_label("Phone text (360 characters)").fill(
        "Flash flood warning: the Cedar River is rising fast. Move to higher ground now."
    )
    await pane.locator("#alert-sms-360-count").filter(has_text="79 / 360 characters").wait_for()
    assert await serious_violations(page) == []
    # The page itself never scrolls (the panel does): nothing positioned outside it.
    sizes = await page.evaluate("() => [document.documentElement.scrollHeight, window.innerHeight]")
    assert sizes[0] <= sizes[1], sizes
    await shot(page, artifacts, "alert-compose")

    mark("texts written")
    # Save and preview: the counts match the API's preview of the same draft, and the CAP XML is shown.
    await pane.get_by_role("button", name="Save draft and preview").click()
    await pane.locator("#alert-inside").wait_for()
    drafts = (await api.get("/v1/alerts", params={"status": "draft", "limit": 50}, headers=coord)).json()["items"]
    draft = next(a for a in drafts if a["content"]["texts"][0]["headline"] == headline)
    expected = (await api.get(f"/v1/alerts/{draft['id']}/preview", headers=coord)).json()
    assert expected["inside"] >= 1 and expected["near_edge"] >= 1, expected
    assert (await pane.locator("#alert-inside").inner_text()) == str(expected["inside"])
    assert (await pane.locator("#alert-near-edge").inner_text()) == str(expected["near_edge"])
    assert draft["area"]["type"] == "Polygon" and draft["content"]["area_desc"].startswith("Low ground")
    summary = pane.get_by_text("CAP document (XML)")
    await summary.focus()
    await page.keyboard.press("Enter")  # <details> opens from the keyboard
    cap = pane.locator("#alert-cap")
    await cap.wait_for()
    assert "urn:oasis:names:tc:emergency:cap:1.2" in await cap.inner_text()
    assert "<polygon>" in await cap.inner_text()
    await shot(page, artifacts, "alert-preview")

    mark("previewed")
    # Submit; the author's own approval is refused with the reason shown.
    await pane.get_by_role("button", name="Submit for approval").click()
    item = pane.locator(f'#alert-queue li[data-alert="{draft["id"]}"]')
    await item.wait_for()
    await item.get_by_role("button", name="Approve and send").click()
    refused = item.get_by_role("alert").filter(has_text="second person")
    await refused.wait_for()
    # The submission's own stream delta refreshes the queue ~0.3 s later: the reason stays shown.
    await page.wait_for_timeout(1000)
    assert await refused.is_visible()
    assert (await api.get(f"/v1/alerts/{draft['id']}", headers=coord)).json()["status"] == "submitted"
    await shot(page, artifacts, "alert-queue")
    await page.context.close()  # one map at a time: the machine is shared

    mark("submitted")
    # A second coordinator approves and sends it, from the keyboard.
    page2, pane2 = await alerts_pane(browser, web_server, "fire-coord")
    item2 = pane2.locator(f'#alert-queue li[data-alert="{draft["id"]}"]')
    await item2.wait_for()
    await item2.get_by_role("button", name="Preview").click()
    await pane2.locator("#alert-inside").filter(has_text=str(expected["inside"])).wait_for()
    await item2.get_by_role("button", name="Approve and send").focus()
    await page2.keyboard.press("Enter")
    await pane2.get_by_text(f'Approved and sent "{headline}"').wait_for()
    mark("approved")
    sent = (await api.get(f"/v1/alerts/{draft['id']}", headers=coord)).json()
    assert sent["status"] == "sent" and sent["approved_by"] != sent["created_by"]
    recent = pane2.locator(f'#alert-recent li[data-alert="{draft["id"]}"]')
    await recent.wait_for()
    await recent.get_by_role("button", name="Delivery status").click()
    await recent.get_by_text("queued").wait_for()
    await shot(page2, artifacts, "alert-approved")
    await page2.context.close()
