"""Shared helpers for the geo tests: sample locations and a GPX reader."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
EARLIEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"\.(\d+)")


@dataclass
class Track:
    name: str
    points: list[tuple[datetime, float, float]]  # (fix_time, lon, lat), in file order
    skipped_untimed: int
    skipped_bogus: int


def parse_time(text: str) -> datetime | None:
    """ISO 8601 with ``Z``; fractions longer than microseconds are truncated. None if unparsable."""
    s = text.strip().replace("Z", "+00:00")
    s = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), s, count=1)
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_gpx(path: Path) -> Track:
    """Track points with usable times. Points without ``<time>`` and points timed before 1995 (the
    Mojstrovka file carries a bogus 1901 timestamp with 7-digit fractions on every point) are skipped
    and counted, since they cannot be placed in fix-time order."""
    root = ET.parse(path).getroot()
    points: list[tuple[datetime, float, float]] = []
    untimed = bogus = 0
    for pt in root.iter():
        if not pt.tag.endswith(("}trkpt", "}rtept")) and pt.tag not in ("trkpt", "rtept"):
            continue
        time_el = next((c for c in pt if c.tag.endswith("time")), None)
        t = parse_time(time_el.text or "") if time_el is not None else None
        if t is None:
            untimed += 1
            continue
        if t < EARLIEST_PLAUSIBLE:
            bogus += 1
            continue
        points.append((t, float(pt.attrib["lon"]), float(pt.attrib["lat"])))
    return Track(path.name, points, untimed, bogus)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples folder not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def gpx_tracks(samples_dir: Path) -> list[Track]:
    files = sorted((samples_dir / "gps").glob("*.gpx"))
    if not files:
        pytest.skip(f"no GPX files under {samples_dir / 'gps'}")
    return [read_gpx(f) for f in files]
