from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from shapely.geometry import shape

from feeds import firms
from feeds.model import FeedFormatError
from tests.feeds.support import sample_bytes

MODIS = "firms/firms_MODIS_C6_1_Global_24h_2023-08-01.csv"
VIIRS_HEADER = "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_ti5,frp,daynight"


def test_modis_file_36555_rows_clusters_into_fire_areas() -> None:
    # The < 5 s budget is measured by bench/feeds.py, not asserted here.
    data = sample_bytes(MODIS)
    assert data.count(b"\n") == 36556
    result = firms.parse(data, now=datetime(2023, 8, 2, 12, tzinfo=UTC))
    assert result.errors == []
    detections = sum(i.raw["detections"] for i in result.items)
    assert 0 < detections <= 36555
    assert len(result.items) < detections  # neighbouring hotspots were merged
    assert len({i.external_id for i in result.items}) == len(result.items)
    biggest = max(result.items, key=lambda i: i.raw["detections"])
    assert biggest.raw["cells"] > 1 and shape(biggest.geometry).is_valid
    assert all(i.raw["instrument"] == "MODIS" for i in result.items)


def test_confidence_threshold_filters_rows() -> None:
    data = sample_bytes(MODIS)
    low = firms.parse(data, {"min_confidence": 0})
    high = firms.parse(data, {"min_confidence": 80})
    assert sum(i.raw["detections"] for i in low.items) == 36555
    assert sum(i.raw["detections"] for i in high.items) < sum(i.raw["detections"] for i in low.items)


def _viirs(rows: list[str]) -> bytes:
    return ("\n".join([VIIRS_HEADER, *rows]) + "\n").encode()


def test_viirs_letters_unpadded_times_and_stable_ids() -> None:
    rows = [
        "40.00000,-100.00000,330.1,0.39,0.36,2026-01-02,41,N,VIIRS,h,2.0NRT,290.1,10.5,N",
        "40.00300,-100.00200,331.1,0.39,0.36,2026-01-02,142,N,VIIRS,nominal,2.0NRT,290.1,4.5,N",
        "40.00100,-100.00400,332.1,0.39,0.36,2026-01-02,0930,N,VIIRS,l,2.0NRT,290.1,3.5,D",
        "45.00000,-90.00000,332.1,0.39,0.36,2026-01-02,0930,N,VIIRS,n,2.0NRT,290.1,3.5,D",
        "bad,row",
        "41.0,-100.0,1,1,1,2026-01-02,0930,N,VIIRS,maybe,2.0NRT,1,1,D",
    ]
    now = datetime(2026, 1, 2, 12, tzinfo=UTC)
    result = firms.parse(_viirs(rows), now=now)
    assert len(result.items) == 2
    near = next(i for i in result.items if i.raw["detections"] == 2)  # the `l` row is below the threshold
    assert near.valid_from == datetime(2026, 1, 2, 0, 41, tzinfo=UTC)
    assert near.raw["last_detection"] == "2026-01-02T01:42:00+00:00"
    assert near.raw["instrument"] == "VIIRS"
    assert len(result.errors) == 2 and {e.external_id for e in result.errors} == {"row 6", "row 7"}
    shuffled = rows[:4]
    random.Random(3).shuffle(shuffled)
    again = firms.parse(_viirs(shuffled), now=now)
    assert {i.external_id for i in again.items} == {i.external_id for i in result.items}


def test_acquisition_time_and_confidence_helpers() -> None:
    assert firms.acquisition_time("2023-08-01", "5") == datetime(2023, 8, 1, 0, 5, tzinfo=UTC)
    assert firms.confidence_score("H") == 90 and firms.confidence_score("101") is None
    with pytest.raises(FeedFormatError):
        firms.parse(b"a,b,c\n1,2,3\n")
