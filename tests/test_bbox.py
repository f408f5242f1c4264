"""One bbox rule for every HTTP endpoint that filters by area."""

from __future__ import annotations

import httpx
import pytest

ENDPOINTS = ("/v1/hazards", "/v1/incidents", "/v1/responders")
BAD = ("1,2,3", "a,b,c,d", "-91,41,-92,42", "-91,42,-90,41", "-181,41,-90,42", "-91,41,-90,91", "nan,1,2,3")


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_bad_bbox_is_422_naming_the_field(client: httpx.AsyncClient, coord_headers: dict, path: str) -> None:
    for bbox in BAD:
        r = await client.get(path, params={"bbox": bbox}, headers=coord_headers)
        assert r.status_code == 422, (path, bbox, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == ["bbox"], (path, bbox)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_good_bbox_filters(client: httpx.AsyncClient, coord_headers: dict, path: str) -> None:
    r = await client.get(path, params={"bbox": "-92,41.5,-91.3,42.3"}, headers=coord_headers)
    assert r.status_code == 200, r.text
