"""Small helpers for the feed server tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.conftest import eventually


async def create_feed(api: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("interval_s", 3600)
    r = await api.post("/v1/feeds", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def feed(api: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, Any]:
    r = await api.get(f"/v1/feeds/{name}", headers=admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def poll(api: httpx.AsyncClient, admin: dict[str, str], name: str, timeout: float = 20.0) -> dict[str, Any]:
    """Ask for a poll now and wait until the feed's health shows a poll that started after the request."""
    asked = datetime.now(UTC)
    r = await api.post(f"/v1/feeds/{name}/poll", headers=admin)
    assert r.status_code == 202, r.text

    async def done() -> dict[str, Any] | None:
        f = await feed(api, admin, name)
        h = f["health"]
        stamps = [h.get("last_success_at"), h.get("last_error_at")]
        latest = max((datetime.fromisoformat(s) for s in stamps if s), default=None)
        return f if latest is not None and latest >= asked else None

    result: dict[str, Any] = await eventually(done, timeout=timeout, interval=0.1)
    return result
