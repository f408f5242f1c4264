"""The DB-backed NWS zone resolver: zones fetched once (all missing ones at once) and kept in ``boundaries``."""

from __future__ import annotations

from typing import Any

import asyncpg
from shapely.geometry import shape

from feeds.fake import FakeFeedApp
from feeds.http import FeedFetcher, FetchSettings
from server.feeds.zones import DbZoneResolver

CODES = ["XXZ901", "XXZ902", "XXZ903"]


async def test_missing_zones_are_fetched_at_once_stored_and_unioned(
    fake: tuple[FakeFeedApp, str], feeds_env: dict[str, str], fdb: Any
) -> None:
    pool = await asyncpg.create_pool(feeds_env["SITREP_DATABASE_URL"], min_size=1, max_size=2)
    fetcher = FeedFetcher(FetchSettings(user_agent="sitrep-tests (tests@example.org)"))
    try:
        resolver = DbZoneResolver(pool, fetcher, fake[1])
        await resolver.prefetch([*CODES, "IAC113", "019113"])  # counties are never fetched
        stored = await fdb.fetch("SELECT code FROM boundaries WHERE kind = 'zone' AND code = ANY($1::text[])", CODES)
        assert sorted(r["code"] for r in stored) == CODES
        merged, missing = await resolver.area_for(CODES[:2])
        assert merged is not None and missing == () and shape(merged).is_valid
        # another process (no fetcher at all) finds them in the table; the union is the same area
        cold = DbZoneResolver(pool, None, None)
        again, missing = await cold.area_for([CODES[1], CODES[0], "XXZ999"])
        assert again is not None and missing == ("XXZ999",)
        assert shape(again).symmetric_difference(shape(merged)).area < 1e-9
        assert await cold.geometry_for(CODES[2]) is not None and await cold.geometry_for("XXZ998") is None
    finally:
        await fetcher.aclose()
        await pool.close()
