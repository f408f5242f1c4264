"""Helpers for the stream tests: a WebSocket viewer that collects messages by type."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.positions.helpers import device_headers, fix

__all__ = ["Viewer", "device_headers", "fix", "open_viewer"]


class Viewer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.handles: dict[int, str] = {}
        """Compact handle → responder id, from every meta this connection received (valid for it only)."""

    async def send(self, msg: dict[str, Any] | str) -> None:
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def next(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The first message (already received or arriving) that satisfies ``pred``."""
        for m in self.messages:
            if pred(m):
                self.messages.remove(m)
                return m
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching message within {timeout}s; got {[m.get('type') for m in self.messages]}"
                )
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                continue
            m = json.loads(raw)
            for meta in m.get("meta", ()) if isinstance(m, dict) else ():
                self.handles[meta[5]] = meta[0]
            if pred(m):
                return m
            self.messages.append(m)

    async def of_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self.next(lambda m: m.get("type") == kind, timeout)

    async def item(
        self, topic: str, key: str, pred: Callable[[dict[str, Any]], bool] = lambda d: True, timeout: float = 5.0
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The first delta carrying (topic, key) whose data satisfies ``pred``; returns (frame, item)."""
        found: dict[str, Any] = {}

        def match(m: dict[str, Any]) -> bool:
            if m.get("type") != "delta":
                return False
            for it in m["items"]:
                if it["topic"] == topic and it["key"] == key and pred(it["data"]):
                    found["item"] = it
                    return True
            return False

        frame = await self.next(match, timeout)
        return frame, found["item"]

    async def subscribe(self, **body: Any) -> dict[str, Any]:
        body.setdefault("id", "s1")
        await self.send({"type": "subscribe", **body})
        return await self.next(
            lambda m: m.get("type") in ("snapshot", "resumed", "error") and m.get("id") == body["id"]
        )


async def open_viewer(ws_url: str, token: str, **kw: Any) -> Viewer:
    ws = await connect(f"{ws_url}/v1/stream", additional_headers={"Authorization": f"Bearer {token}"}, **kw)
    return Viewer(ws)
