"""Fresh responders for tests that move someone: the demo fleet stays where seed-demo put it
(other areas' tests rely on the demo positions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.positions.helpers import new_device


@pytest.fixture
async def fresh(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> Callable[[], Awaitable[dict[str, str]]]:
    async def make() -> dict[str, str]:
        return await new_device(client, admin_headers)

    return make
