"""A cursor that decodes but does not hold a (time, id) pair is a 422 on the field, never a 500."""

from __future__ import annotations

import httpx
import pytest

from server.deps import encode_cursor


@pytest.mark.parametrize("path", ["/v1/hazards", "/v1/alerts", "/v1/me/notifications"])
async def test_a_cursor_of_the_wrong_content_is_422(client: httpx.AsyncClient, coord_headers: dict, path: str) -> None:
    for cursor in (encode_cursor("yesterday", "not-a-uuid"), "%%%", encode_cursor("only-one")):
        r = await client.get(path, params={"cursor": cursor}, headers=coord_headers)
        assert r.status_code == 422, (path, cursor, r.text)
        assert [e["field"] for e in r.json()["errors"]] == ["cursor"]
