"""`/osmand` is answered by a pure-ASGI fast path (server/positions/osmand_http.serve_osmand) behind the
usual middleware: what the Litestar route did must still hold (request ids, metrics under the route,
413/503/429/405, problem details, the schema)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Database, ServerProcess, eventually, start_redis, start_server
from tests.positions.helpers import unique_time


def _params(device: dict[str, str], when: datetime | None = None, **extra: str) -> dict[str, str]:
    when = when or unique_time(20)
    return {
        "id": device["unique_id"],
        "token": device["token"],
        "timestamp": f"{when.timestamp():.6f}",
        "lat": "41.97",
        "lon": "-91.66",
        **extra,
    }


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_request_id_is_echoed_or_generated_and_in_problem_bodies(
    client: httpx.AsyncClient, database: Database, fresh: Any
) -> None:
    device = await fresh()
    ok = await client.get("/osmand", params=_params(device), headers={"x-request-id": "osm-fast-1"})
    assert ok.status_code == 200 and ok.content == b""
    assert ok.headers["x-request-id"] == "osm-fast-1"
    assert ok.headers["content-type"] == "text/plain; charset=utf-8"
    bad = await client.get("/osmand", params=_params(device, lat="0", lon="0"))
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    problem = bad.json()
    assert problem["request_id"] == bad.headers["x-request-id"] and problem["instance"] == "/osmand"
    assert problem["type"].endswith("/fix-rejected") and problem["errors"][0]["field"] == "null_island"


async def test_metrics_keep_the_route_label(client: httpx.AsyncClient, database: Database, fresh: Any) -> None:
    device = await fresh()
    before = (await client.get("/metrics")).text
    assert (await client.get("/osmand", params=_params(device))).status_code == 200
    assert (await client.post("/osmand", data=_params(device))).status_code == 200
    assert (await client.get("/osmand", params={"lat": "1", "lon": "1"})).status_code == 400
    requests = "sitrep_http_requests_total"
    latency = "sitrep_http_request_duration_seconds_count"

    async def counted() -> str | None:
        # The fast path counts locally and adds to the metrics within middleware.FOLD_S (0.5 s).
        after = (await client.get("/metrics")).text
        for method, status in (("GET", "200"), ("POST", "200"), ("GET", "400")):
            grew = _metric(after, requests, method=method, route="/osmand", status=status) - _metric(
                before, requests, method=method, route="/osmand", status=status
            )
            if grew < 1:
                return None
        grew = _metric(after, latency, method="GET", route="/osmand") - _metric(
            before, latency, method="GET", route="/osmand"
        )
        return after if grew >= 2 else None

    after = await eventually(counted, timeout=3.0)
    assert _metric(after, "sitrep_errors_total", type="fix-rejected") >= 1


async def test_bearer_header_wins_over_the_token_parameter(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    when = unique_time(25)
    r = await client.get(
        "/osmand",
        params=_params(device, when, token="dev_garbage"),
        headers={"Authorization": f"Bearer {device['token']}"},
    )
    assert r.status_code == 200, r.text
    stored = await db.fetchval(
        "SELECT count(*) FROM positions WHERE responder_id = $1 AND fix_time = $2",
        uuid.UUID(device["responder_id"]),
        when,
    )
    assert stored == 1
    # An access token that does not decode is refused by the middleware before the fast path.
    bad = await client.get("/osmand", params=_params(device), headers={"Authorization": "Bearer eyJnot.a.jwt"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == 'Bearer realm="sitrep"'


async def test_form_body_with_the_token_in_the_query_and_percent_encoded_fields(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    when = unique_time(35).replace(microsecond=0)
    fields = {k: v for k, v in _params(device, when).items() if k != "token"}
    fields["timestamp"] = when.isoformat()  # '+' and ':' arrive percent-encoded
    r = await client.post(f"/osmand?token={device['token']}", data=fields)
    assert r.status_code == 200, r.text
    # The same through the query string, repeated keys: the first value wins (as before).
    when2 = unique_time(36).replace(microsecond=0)
    query = httpx.QueryParams([*_params(device, when2, lat="41.5").items(), ("lat", "0"), ("note", "a b&c")])
    r = await client.get("/osmand", params=query)
    assert r.status_code == 200, r.text
    rows = await db.fetch(
        "SELECT fix_time, ST_Y(geom) AS lat, attributes FROM positions WHERE responder_id = $1 ORDER BY fix_time",
        uuid.UUID(device["responder_id"]),
    )
    assert {row["fix_time"] for row in rows} == {when, when2}
    by_time = {row["fix_time"]: row for row in rows}
    assert by_time[when2]["lat"] == pytest.approx(41.5)
    assert '"a b&c"' in by_time[when2]["attributes"]


async def test_malformed_json_body_is_a_400(client: httpx.AsyncClient, database: Database, fresh: Any) -> None:
    device = await fresh()
    r = await client.post(
        "/osmand",
        content=b'{"device_id": ',
        headers={"content-type": "application/json", "Authorization": f"Bearer {device['token']}"},
    )
    assert r.status_code == 400 and r.json()["type"].endswith("/fix-rejected")
    assert r.json()["errors"][0]["field"] == "body"


async def test_oversized_body_is_a_413_announced_or_streamed(
    client: httpx.AsyncClient, database: Database, fresh: Any
) -> None:
    device = await fresh()
    limit = 2 * 1024 * 1024  # SITREP_MAX_BODY_BYTES default
    r = await client.post("/osmand", params=_params(device), content=b"x" * (limit + 1))
    assert r.status_code == 413
    assert r.json()["type"].endswith("/payload-too-large") and r.json()["title"] == "Request body too large"
    assert r.headers["x-request-id"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"y" * (limit // 2)

    r = await client.post("/osmand", params=_params(device), content=chunks())
    assert r.status_code == 413 and r.json()["status"] == 413


async def test_other_methods_answer_as_before(client: httpx.AsyncClient, database: Database, fresh: Any) -> None:
    device = await fresh()
    for method in ("HEAD", "PUT", "DELETE", "PATCH"):
        r = await client.request(method, "/osmand", params=_params(device))
        assert r.status_code == 405, method
        assert {"GET", "POST"} <= {m.strip() for m in r.headers["allow"].split(",")}
    options = await client.options("/osmand")
    assert options.status_code == 204 and "x-request-id" in options.headers
    # A trailing slash reaches the same route (through Litestar).
    assert (await client.get("/osmand/", params=_params(device))).status_code == 200
    # An invalid Host header is still Litestar's 400, before anything is parsed or stored.
    bad_host = await client.get("/osmand", params=_params(device), headers={"host": "bad host!"})
    assert bad_host.status_code == 400


async def test_osmand_is_still_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert {"get", "post"} <= set(paths["/osmand"])


# -- a private server: the ingest queue always full, and a per-address limit of a few requests ------
LIMIT = 4


@pytest.fixture(scope="module")
def full_queue_server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Queue limit 0 (every fix refused with 503) and a tiny rate limit, on its own Redis (the rate
    limiter's counts are shared through Redis)."""
    tmp: Path = tmp_path_factory.mktemp("osmand-full")
    redis = start_redis(tmp / "redis")
    env = {
        **database.env,
        "SITREP_REDIS_URL": redis.url,
        "SITREP_INGEST_QUEUE_LIMIT": "0",
        "SITREP_RATE_LIMIT_PER_MIN": str(LIMIT),
    }
    srv = start_server(env, tmp)
    try:
        yield srv
    finally:
        srv.stop()
        redis.stop()


async def test_full_queue_is_a_503_with_retry_after_then_the_rate_limit_a_429(
    full_queue_server: ServerProcess, database: Database, db: Any
) -> None:
    device = database.devices[0]
    when = unique_time(40)
    times = [when.replace(microsecond=i) for i in range(LIMIT)]
    async with httpx.AsyncClient(base_url=full_queue_server.url, timeout=30) as c:
        codes = []
        for t in times:
            r = await c.get("/osmand", params=_params(device, t))
            codes.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1" and r.json()["type"].endswith("/unavailable")
                assert r.json()["request_id"] == r.headers["x-request-id"]
        # The /ready probe in start_server does not count; a minute window may roll over mid-test.
        assert codes.count(503) >= LIMIT - 1, codes
        limited = [await c.get("/osmand", params=_params(device)) for _ in range(2)]
        assert 429 in {r.status_code for r in limited}
        r = next(r for r in limited if r.status_code == 429)
        assert r.json()["type"].endswith("/rate-limited") and int(r.headers["retry-after"]) >= 1
    stored = await db.fetchval(
        "SELECT count(*) FROM positions WHERE responder_id = $1 AND fix_time = ANY($2::timestamptz[])",
        uuid.UUID(device["responder_id"]),
        times,
    )
    assert stored == 0
