"""The search-frequency estimate that picks a list plan (pure parts: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.incidents.search_stats import PHRASE_FACTOR, Estimator, Hint, estimate

FREQS = {"fire": 0.5, "smoke": 0.2, "power": 0.1, "line": 0.2}


@pytest.mark.parametrize(
    ("tsquery", "expected"),
    [
        ("'fire'", 0.5),
        ("'fire' & 'smoke'", 0.1),
        ("'fire' | 'smoke'", 0.6),
        ("'fire' & !'smoke'", 0.4),
        ("'power' <-> 'line'", 0.02 * PHRASE_FACTOR),
        ("'power' <2> 'line' & 'fire'", 0.01 * PHRASE_FACTOR),
        ("( 'fire' | 'smoke' ) & 'power'", 0.06),
        ("'zebra'", 0.001),
        ("", 0.0),
        ("'fire' &", 0.0),  # unparsable: nothing
    ],
)
def test_estimate_combines_lexeme_shares(tsquery: str, expected: float) -> None:
    assert estimate(tsquery, FREQS, floor=0.001) == pytest.approx(expected)


def test_window_start_comes_from_the_created_at_histogram() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    est = Estimator()
    est._bounds = [start + timedelta(days=d) for d in range(0, 101, 10)]  # 10 equal buckets over 100 days
    est.total = 100_000.0
    # 10,000 newest rows ~ the last 10 days
    assert est.newest_since(10_000, None) == start + timedelta(days=90)
    # before a cursor at day 50: the 10 days before it
    assert est.newest_since(10_000, start + timedelta(days=50)) == start + timedelta(days=40)
    # most of the table: no window
    assert est.newest_since(60_000, None) is None
    hint = Hint(0.01, est)
    assert hint.since(40, None) == est.newest_since(40 * 2.5 / 0.01, None)
    assert Hint(0.0, est).since(40, None) is None
