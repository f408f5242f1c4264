"""Test doubles and helpers for the feed tests.

:class:`InMemorySink` is a test double of the :class:`feeds.scheduler.FeedSink` *interface*
(the real sink is the server's PostgreSQL repository). It applies the same rules the server
must: source + external id + version identify a hazard version; a newer version updates;
``references`` end what they replace; cancelled/expired items end their hazard.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn

from feeds.config import FeedConfig, FeedState
from feeds.model import HazardItem, ParseResult
from feeds.scheduler import ApplySummary, FeedHealth

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"


def sample_bytes(rel: str) -> bytes:
    """A recorded sample's bytes, or skip the test (with the reason) when samples are absent."""
    import pytest

    path = SAMPLES / rel
    if not path.is_file():
        pytest.skip(f"sample {rel} not present under {SAMPLES} (a clone without ../shared)")
    return path.read_bytes()


class InMemorySink:
    def __init__(self) -> None:
        self.hazards: dict[tuple[str, str], HazardItem] = {}
        self.ended: set[tuple[str, str]] = set()
        self.states: dict[str, tuple[FeedState, FeedHealth]] = {}
        self.applied: list[tuple[str, ApplySummary]] = []
        self.fail_apply_for: set[str] = set()

    async def apply(self, feed: FeedConfig, result: ParseResult) -> ApplySummary:
        if feed.name in self.fail_apply_for:
            raise RuntimeError("database unavailable")
        summary = ApplySummary()
        for item in result.items:
            key = (item.source, item.external_id)
            for ref in item.references:
                ref_key = (item.source, ref)
                if ref_key in self.hazards and ref_key not in self.ended:
                    self.ended.add(ref_key)
                    summary.ended += 1
            old = self.hazards.get(key)
            self.hazards[key] = item
            if item.status != "active":
                if key not in self.ended:
                    self.ended.add(key)
                    summary.ended += 1
                continue
            if old is None:
                summary.created += 1
            elif old.version != item.version or old.geometry != item.geometry:
                summary.updated += 1
            else:
                summary.unchanged += 1
        self.applied.append((feed.name, summary))
        return summary

    async def save_state(self, feed_name: str, state: FeedState, health: FeedHealth) -> None:
        self.states[feed_name] = (state, health)

    async def load_state(self, feed_name: str) -> tuple[FeedState, FeedHealth] | None:
        return self.states.get(feed_name)

    def active(self, source: str) -> dict[str, HazardItem]:
        return {k[1]: v for k, v in self.hazards.items() if k[0] == source and k not in self.ended}


@asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
