from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from feeds.relative_dates import resolve_placeholder, rewrite_relative_dates
from feeds.times import parse_iso
from tests.feeds.support import sample_bytes

NOW = datetime(2024, 5, 21, 19, 42, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now -1032 seconds", "2024-05-21T19:25:01+00:00"),
        ("now +245 minutes", "2024-05-21T23:47:13+00:00"),
        ("now:hour +2 hours", "2024-05-21T21:00:00+00:00"),
        ("today 16:00:-5 -24 hours", "2024-05-20T21:00:00+00:00"),
        ("now -27252 seconds / P7DT13H", "2024-05-21T12:08:01+00:00/P7DT13H"),
        ("now +0 seconds", "2024-05-21T19:42:13+00:00"),
        ("now +1 day", "2024-05-22T19:42:13+00:00"),
        ("yesterday", None),
        ("now soon", None),
    ],
)
def test_placeholder_grammar(text: str, expected: str | None) -> None:
    assert resolve_placeholder(text, NOW) == expected


def test_whole_capture_rewrites_every_placeholder() -> None:
    data = sample_bytes("nws/weathergov_templated_alerts_active_area_IA_cedar_rapids_tornado_flood.json")
    out = rewrite_relative_dates(data, NOW)
    assert b'"date:' not in out
    doc = json.loads(out)
    sent = parse_iso(doc["features"][0]["properties"]["sent"])
    assert sent is not None and abs((sent - NOW).total_seconds()) < 3 * 86400


def test_seven_digit_fractions_and_offsets_parse() -> None:
    assert parse_iso("1901-12-13T20:45:52.2073437Z") == datetime(1901, 12, 13, 20, 45, 52, 207343, tzinfo=UTC)
    assert parse_iso("2012-05-02T23:21:04-00:00") == datetime(2012, 5, 2, 23, 21, 4, tzinfo=UTC)
    assert parse_iso("2014-06-17T09:39:15+09:30") == datetime(2014, 6, 17, 0, 9, 15, tzinfo=UTC)
