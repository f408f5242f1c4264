"""Incident search: a search filters the newest-first list; ``sort=relevance`` ranks the most recent
matches; cursors walk every match exactly once in both orders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from server.deps import encode_cursor
from server.incidents.scope import Work
from server.incidents.search import IncidentQuery, build_sql, fetch, list_incidents
from server.incidents.search_stats import Estimator, Hint
from server.security import Principal
from tests.incidents.helpers import CITY, create_incident


def _tag(prefix: str) -> str:
    return prefix + "".join(chr(97 + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


async def _insert(db: Any, tag: str, n: int, *, at: datetime, step_s: float, repeat: int = 0) -> list[uuid.UUID]:
    """``n`` incidents mentioning ``tag`` (1 to 3 times, so ranks differ and tie), ``step_s`` apart
    (0: all at the same instant, so only the id orders them)."""
    rows = await db.fetch(
        "INSERT INTO incidents (type, priority, title, description, geom, h3, created_at) "
        "SELECT 'fire', 2, 'Search ' || $1, repeat($1 || ' ', 1 + (k + $5::int) % 3), "
        "ST_SetSRID(ST_MakePoint($2, $3), 4326), 0, $4::timestamptz - make_interval(secs => k * $6::float8) "
        "FROM generate_series(0, $7 - 1) AS k RETURNING id",
        tag,
        CITY[0],
        CITY[1],
        at,
        repeat,
        step_s,
        n,
    )
    return [r["id"] for r in rows]


async def _walk(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        r = await client.get(
            "/v1/incidents", params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= params["limit"]
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor never ended")


async def test_cursor_walks_every_match_once_in_both_orders(
    client: httpx.AsyncClient, coord_headers: dict[str, str], db: Any
) -> None:
    tag = _tag("osprey")
    now = datetime.now(UTC)
    spaced = await _insert(db, tag, 14, at=now - timedelta(hours=1), step_s=60)
    same_instant = await _insert(db, tag, 7, at=now - timedelta(hours=3), step_s=0, repeat=1)
    await _insert(db, _tag("heron"), 5, at=now, step_s=1)  # newer, not matching
    expected = {str(i) for i in spaced + same_instant}

    recent = await _walk(client, coord_headers, q=tag, limit=4)
    ids = [i["id"] for i in recent]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    want = await db.fetch(
        "SELECT id FROM incidents WHERE search @@ websearch_to_tsquery('english', $1) "
        "ORDER BY created_at DESC, id DESC",
        tag,
    )
    assert ids == [str(r["id"]) for r in want]
    assert all(i["rank"] > 0 for i in recent)

    ranked = await _walk(client, coord_headers, q=tag, limit=4, sort="relevance")
    ids = [i["id"] for i in ranked]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    want = await db.fetch(
        "SELECT id FROM incidents WHERE search @@ websearch_to_tsquery('english', $1) "
        "ORDER BY ts_rank(search, websearch_to_tsquery('english', $1)) DESC, created_at DESC, id DESC",
        tag,
    )
    assert ids == [str(r["id"]) for r in want]
    ranks = [i["rank"] for i in ranked]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == 3  # three levels, ties within each

    # a list without q walks the same way (newest first, by the same cursor)
    plain = await _walk(client, coord_headers, limit=7, **{"from": (now - timedelta(hours=4)).isoformat()})
    plain_ids = [i["id"] for i in plain]
    assert len(plain_ids) == len(set(plain_ids)) and expected <= set(plain_ids)
    stamps = [i["created_at"] for i in plain]
    assert stamps == sorted(stamps, reverse=True)


async def test_sort_is_validated_and_cursors_belong_to_their_order(
    client: httpx.AsyncClient, coord_headers: dict[str, str]
) -> None:
    tag = _tag("plover")
    for title in ("one", "two", "three"):
        await create_incident(client, coord_headers, title=f"{title} {tag}")

    async def get(**params: Any) -> httpx.Response:
        return await client.get("/v1/incidents", params=params, headers=coord_headers)

    bad = await get(sort="newest")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "sort"
    bad = await get(sort="relevance")
    assert bad.status_code == 422 and "needs q" in bad.json()["errors"][0]["message"]
    recent = (await get(q=tag, limit=1)).json()
    ranked = (await get(q=tag, limit=1, sort="relevance")).json()
    assert recent["items"][0]["title"] == f"three {tag}"  # newest first
    assert (await get(q=tag, limit=1, sort="relevance", cursor=recent["next_cursor"])).status_code == 422
    assert (await get(q=tag, limit=1, cursor=ranked["next_cursor"])).status_code == 422
    assert (await get(q=tag, sort="relevance", cursor="bm90IGEgY3Vyc29y")).status_code == 422
    # the exports take the same parameter
    csv_text = (
        await client.get("/v1/incidents.csv", params={"q": tag, "sort": "relevance"}, headers=coord_headers)
    ).text
    assert csv_text.count(tag) == 3


async def test_relevance_ranks_the_most_recent_window_and_keeps_it_across_pages(db: Any) -> None:
    tag = _tag("avocet")
    now = datetime.now(UTC)
    ids = await _insert(db, tag, 9, at=now - timedelta(minutes=30), step_s=60)  # ids[0] newest
    work = Work(db, Principal("user", uuid.uuid4(), "admin", "admin"), None)  # type: ignore[arg-type]

    async def page(cursor: str | None) -> Any:
        query = IncidentQuery(q=tag, limit=2, cursor=cursor, sort="relevance")
        return await list_incidents(work, query, window=5)

    first = await page(None)
    seen = [i.id for i in first.items]
    # a new, highly relevant match arrives mid-walk: newer than the window's floor, so it may join later
    # pages, but nothing is repeated and the window's older edge does not move
    await _insert(db, f"{tag} {tag} {tag}", 1, at=now, step_s=0)
    cursor = first.next_cursor
    while cursor:
        nxt = await page(cursor)
        seen += [i.id for i in nxt.items]
        cursor = nxt.next_cursor
    assert len(seen) == len(set(seen))
    assert set(ids[:5]) <= set(seen) and not set(ids[5:]) & set(seen)
    full = await list_incidents(work, IncidentQuery(q=tag, limit=100, sort="relevance"), window=5)
    assert len(full.items) == 5 and full.next_cursor is None


async def test_every_plan_lists_the_same_matches_newest_first(db: Any) -> None:
    """Walk, GIN + sort, and GIN windows split at various times (the statistics' choices) give the same pages."""
    tag = _tag("curlew")
    now = datetime.now(UTC)
    await _insert(db, tag, 23, at=now - timedelta(hours=2), step_s=90)
    await _insert(db, tag, 4, at=now - timedelta(hours=5), step_s=0)  # same instant: only the id orders them
    await _insert(db, _tag("dunlin"), 6, at=now, step_s=5)  # newer, not matching
    want = [
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM incidents WHERE search @@ websearch_to_tsquery('english', $1) "
            "ORDER BY created_at DESC, id DESC",
            tag,
        )
    ]
    assert len(want) == 27

    class Splitting(Estimator):
        """Puts the window's start wherever the test says."""

        def __init__(self, offset: timedelta | None) -> None:
            super().__init__()
            self.offset = offset

        def newest_since(self, rows: float, before: datetime | None) -> datetime | None:
            return None if self.offset is None else (before or now) - self.offset

    hints: list[Hint | None] = [None, Hint(1.0, Estimator()), Hint(0.0, Estimator())]
    hints += [Hint(1e-6, Splitting(o)) for o in (None, timedelta(0), timedelta(minutes=10), timedelta(hours=3))]
    for hint in hints:
        for limit in (4, 50):
            got: list[uuid.UUID] = []
            cursor = None
            for _ in range(20):
                args: list[Any] = []
                sql = build_sql(IncidentQuery(q=tag, limit=limit, cursor=cursor), "TRUE", args, hint=hint)
                rows = await fetch(db, sql, args)
                got += [r["id"] for r in rows[:limit]]
                if len(rows) <= limit:
                    break
                cursor = encode_cursor(rows[limit - 1]["created_at"].isoformat(), rows[limit - 1]["id"])
            assert got == want, (hint, limit)
