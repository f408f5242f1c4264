"""One feed leader among several servers; SIGKILL of the leader hands the ingesters to another within seconds."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from feeds.fake import FakeFeedApp
from tests.conftest import ServerProcess, bearer, eventually, login, start_server
from tests.feedsserver.helpers import create_feed, poll

Fake = tuple[FakeFeedApp, str]


async def _is_leader(srv: ServerProcess) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            text = (await c.get(f"{srv.url}/metrics")).text
    except httpx.HTTPError:
        return False
    m = re.search(r"^sitrep_feed_leader(?:\{[^}]*\})? ([0-9.]+)$", text, re.M)
    return bool(m and float(m.group(1)) >= 1)


@pytest.fixture(scope="module")
def two_servers(feeds_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    logs = tmp_path_factory.mktemp("failover-logs")
    servers = [start_server(feeds_env, logs, timeout=120), start_server(feeds_env, logs, timeout=120)]
    yield servers
    for srv in servers:
        srv.stop()


async def test_sigkill_of_the_leader_hands_feeds_to_the_other_server(
    fake: Fake, two_servers: list[ServerProcess]
) -> None:
    app, base = fake

    async def one_leader() -> list[ServerProcess]:
        return [s for s in two_servers if await _is_leader(s)]

    leaders = await eventually(one_leader, timeout=20, interval=0.2)
    assert len(leaders) == 1, "exactly one feed leader"
    leader = leaders[0]
    other = next(s for s in two_servers if s is not leader)
    async with httpx.AsyncClient(base_url=other.url, timeout=30) as api:
        admin = bearer(await login(api, "admin"))
        await create_feed(api, admin, name="failover", kind="cap", url=f"{base}/cap/index.atom", interval_s=300)
        # a poll asked through the follower is run by the leader (NOTIFY)
        assert (await poll(api, admin, "failover"))["health"]["status"] == "ok"
        hits = app.hits["cap"]
        leader.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        await eventually(lambda: _is_leader(other), timeout=15, interval=0.2)
        took_over_s = time.monotonic() - killed_at
        asked = datetime.now(UTC)
        f = await poll(api, admin, "failover")
        assert datetime.fromisoformat(f["health"]["last_success_at"]) >= asked
        assert app.hits["cap"] > hits
    assert took_over_s < 10
