"""GPX and NMEA track readers for `sitrep simulate --replay` (pure parsing, no I/O beyond reading).

NMEA: ``$GPRMC``/``$GNRMC`` and ``GGA`` sentences with a valid checksum; ``#`` comment lines and
CRLF endings are fine. Fixes that go back in time, carry an implausible date (GPS week-rollover
receivers report 1999/2000-era dates) or jump absurdly far are skipped, not trusted.
GPX: ``trkpt``/``rtept`` with ``time``; tracks whose times are missing or nonsense get a synthetic
5-second spacing.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

from lxml import etree

MIN_YEAR = 2005
MAX_JUMP_M = 50_000.0


@dataclass(slots=True)
class Point:
    t: float
    """Unix seconds."""
    lon: float
    lat: float
    speed_mps: float | None = None
    heading_deg: float | None = None


@dataclass
class Track:
    name: str
    points: list[Point] = field(default_factory=list)
    skipped: int = 0


def _rough_m(a: Point, b: Point) -> float:
    dy = (b.lat - a.lat) * 111_320.0
    dx = (b.lon - a.lon) * 111_320.0 * math.cos(math.radians((a.lat + b.lat) / 2))
    return math.hypot(dx, dy)


def _accept(track: Track, p: Point) -> None:
    if not (-180 <= p.lon <= 180 and -90 <= p.lat <= 90) or (p.lon == 0 and p.lat == 0):
        track.skipped += 1
        return
    if track.points:
        last = track.points[-1]
        if p.t <= last.t or _rough_m(last, p) > MAX_JUMP_M:
            track.skipped += 1
            return
    track.points.append(p)


def nmea_checksum_ok(line: str) -> bool:
    if not line.startswith("$") or "*" not in line:
        return False
    body, _, check = line[1:].partition("*")
    try:
        return reduce(lambda acc, ch: acc ^ ord(ch), body, 0) == int(check[:2], 16)
    except ValueError:
        return False


def _coord(value: str, hemi: str, degree_digits: int) -> float:
    degrees = float(value[:degree_digits]) + float(value[degree_digits:]) / 60.0
    return -degrees if hemi in ("S", "W") else degrees


def parse_nmea(text: str, name: str = "nmea") -> Track:
    track = Track(name)
    day: tuple[int, int, int] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not nmea_checksum_ok(line):
            if line.startswith("$"):
                track.skipped += 1
            continue
        parts = line[1:].split("*")[0].split(",")
        kind = parts[0][-3:]
        try:
            if kind == "RMC" and len(parts) >= 10:
                if parts[2] != "A" or not parts[3] or not parts[9]:
                    continue
                dd, mm, yy = int(parts[9][:2]), int(parts[9][2:4]), int(parts[9][4:6])
                year = 2000 + yy if yy < 80 else 1900 + yy
                day = (year, mm, dd)
                if year < MIN_YEAR:
                    track.skipped += 1
                    continue
                when = _time(day, parts[1])
                speed = float(parts[7]) / 1.943844 if parts[7] else None
                heading = float(parts[8]) if parts[8] else None
                _accept(
                    track,
                    Point(when, _coord(parts[5], parts[6], 3), _coord(parts[3], parts[4], 2), speed, heading),
                )
            elif kind == "GGA" and len(parts) >= 7 and day is not None:
                if parts[6] in ("", "0") or not parts[2]:
                    continue
                if day[0] < MIN_YEAR:
                    continue
                when = _time(day, parts[1])
                if track.points and abs(track.points[-1].t - when) < 1e-6:
                    continue  # the RMC of the same epoch already gave this fix
                _accept(track, Point(when, _coord(parts[4], parts[5], 3), _coord(parts[2], parts[3], 2)))
        except (ValueError, IndexError):
            track.skipped += 1
    return track


def _time(day: tuple[int, int, int], hhmmss: str) -> float:
    hh, mi, ss = int(hhmmss[:2]), int(hhmmss[2:4]), float(hhmmss[4:])
    base = datetime(day[0], day[1], day[2], hh, mi, tzinfo=UTC)
    return base.timestamp() + ss


def _iso(text: str) -> datetime:
    """ISO 8601 with any number of fraction digits (Python takes at most 6)."""
    value = text.strip().replace("Z", "+00:00")
    match = re.match(r"^(.*?\.\d{1,6})\d*(.*)$", value)
    if match:
        value = match.group(1) + match.group(2)
    dt = datetime.fromisoformat(value)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def parse_gpx(data: bytes, name: str = "gpx") -> Track:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(data, parser)
    raw: list[tuple[float | None, float, float]] = []
    for el in root.iter():
        tag = etree.QName(el).localname if isinstance(el.tag, str) else ""
        if tag not in ("trkpt", "rtept"):
            continue
        try:
            lat, lon = float(el.get("lat")), float(el.get("lon"))
        except (TypeError, ValueError):
            continue
        when = None
        for child in el:
            if isinstance(child.tag, str) and etree.QName(child).localname == "time" and child.text:
                try:
                    dt = _iso(child.text)
                    when = dt.timestamp() if dt.year >= MIN_YEAR else None
                except ValueError:
                    when = None
        raw.append((when, lon, lat))
    track = Track(name)
    times = [t for t, _, _ in raw]
    usable = all(t is not None for t in times) and all(b > a for a, b in itertools.pairwise(times))  # type: ignore[operator]
    for i, (t, lon, lat) in enumerate(raw):
        _accept(track, Point(t if usable and t is not None else i * 5.0, lon, lat))
    return track


def load_tracks(directory: Path) -> list[Track]:
    tracks = []
    if not directory.is_dir():
        return tracks
    for path in sorted(directory.iterdir()):
        if path.suffix == ".gpx":
            track = parse_gpx(path.read_bytes(), path.stem)
        elif path.name.endswith(".nmea.log") or path.suffix == ".nmea":
            track = parse_nmea(path.read_text(encoding="utf-8", errors="replace"), path.stem)
        else:
            continue
        if len(track.points) >= 2:
            tracks.append(track)
    return tracks
