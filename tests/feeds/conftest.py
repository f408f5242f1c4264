from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from feeds.fake import FakeFeedApp, create_fake_feed_app
from tests.feeds.support import SAMPLES, serve_app


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"recorded samples not present at {SAMPLES} (a clone without ../shared)")
    return SAMPLES


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeFeedApp, str]]:
    """The fake feed server on a free port (with sample replay when samples exist)."""
    app = create_fake_feed_app(SAMPLES if SAMPLES.is_dir() else None)
    async with serve_app(app) as base:
        yield app, base
