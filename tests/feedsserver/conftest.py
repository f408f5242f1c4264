"""Fixtures for the feed server tests: their own database and Redis (feeds write hazards around
Cedar Rapids, where the demo responders are, so they must not disturb other areas' tests), the
fake feed server (recorded samples via ``samples_dir()``) on a free port in this process, and a
real ``sitrep serve`` with feeds enabled, per module.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from feeds.fake import FakeFeedApp, create_fake_feed_app
from tests.conftest import (
    ServerProcess,
    _admin_psql,
    bearer,
    create_database,
    drop_database,
    login,
    run_cli,
    samples_dir,
    sitrep_env,
    start_redis,
    start_server,
)
from tests.feeds.support import serve_app

BUILTINS = ("nws", "usgs", "gdacs", "firms", "cap")


@pytest.fixture(scope="session")
async def fake() -> AsyncIterator[tuple[FakeFeedApp, str]]:
    app = create_fake_feed_app(samples_dir())
    async with serve_app(app) as base:
        yield app, base


@pytest.fixture(scope="session")
def feeds_env(fake: tuple[FakeFeedApp, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A migrated, demo-seeded database and a private Redis for the feed servers."""
    name = f"sitrep_feeds_test_{os.getpid()}"
    url = create_database(name)
    redis = start_redis(tmp_path_factory.mktemp("feeds-redis"))
    state = tmp_path_factory.mktemp("feeds-state")
    env = sitrep_env(url, redis.url, state)
    run_cli(env, "migrate")
    run_cli(env, "seed-demo")
    # the built-in feeds stay off (as if an admin had disabled them): each test adds its own feeds
    _admin_psql(
        "INSERT INTO feed_state (name, kind, url, enabled, options) SELECT k, k, '', false, "
        """'{"builtin": true, "managed": false}'::jsonb FROM unnest(ARRAY['nws','usgs','gdacs','firms','cap']) k""",
        db=name,
    )
    env.update(
        SITREP_FEEDS_ENABLED="true",
        SITREP_FEED_BASE_URL=fake[1],
        SITREP_FEED_BOUNDARIES_DIR=str(state),
        SITREP_FEED_LEADER_RETRY_S="0.5",
        SITREP_FEED_CONTACT="sitrep-tests (tests@example.org)",
        SITREP_LOG_LEVEL="INFO",
        SITREP_DB_POOL_MIN="1",
        SITREP_DB_POOL_MAX="4",
    )
    yield env
    redis.stop()
    drop_database(name)


@pytest.fixture(scope="module")
def feeds_server(feeds_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(feeds_env, tmp_path_factory.mktemp("feeds-logs"), timeout=120)
    yield srv
    srv.stop()


@pytest.fixture
async def api(feeds_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=feeds_server.url, timeout=30) as c:
        yield c


@pytest.fixture
async def admin(api: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(api, "admin"))


@pytest.fixture
async def fdb(feeds_env: dict[str, str]) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(feeds_env["SITREP_DATABASE_URL"])
    try:
        yield conn
    finally:
        await conn.close()


def sample(rel: str) -> Path:
    return samples_dir() / rel
