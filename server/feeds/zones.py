"""Shapes for NWS items without a polygon: the ``boundaries`` table and a DB-backed ZoneResolver.

* **Counties** (SAME ``0SSCCC``, UGC ``SSCnnn``, FIPS ``SSCCC``) come from the us-atlas county
  TopoJSON (npm ``us-atlas``, ``counties-10m.json``), loaded once into ``boundaries`` (kind
  ``county``, code = 5-digit FIPS) by :func:`ensure_counties`. The file is looked for in
  ``web/node_modules/us-atlas`` (``web/`` depends on it), then in ``<state dir>/us-atlas``; when
  neither has it, ``npm pack us-atlas`` fetches it there once (logged). Without npm or network
  the feeds still run: county-only alerts are then recorded as item errors.
* **Forecast and fire zones** (UGC ``SSZnnn``) are fetched once from the NWS zone endpoint
  (``{base}/zones/forecast/XXZnnn``, then ``/zones/fire/``) and cached in ``boundaries`` (kind
  ``zone``). A zone that cannot be fetched is remembered for this process's life and reported
  as missing (the item error names it).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from feeds.boundaries import load_us_atlas_counties, same_to_fips, ugc_to_fips
from feeds.http import FeedFetcher, FetchError

log = logging.getLogger("sitrep.feeds.zones")

REPO = Path(__file__).resolve().parents[2]
US_ATLAS_VERSION = "3.0.1"
COUNTIES_FILE = "counties-10m.json"


def find_counties_file(state_dir: Path | None) -> Path | None:
    """``counties-10m.json`` from ``web/node_modules`` or the state dir, if present."""
    candidates = [REPO / "web" / "node_modules" / "us-atlas" / COUNTIES_FILE]
    if state_dir is not None:
        candidates.append(state_dir / "us-atlas" / "package" / COUNTIES_FILE)
    return next((p for p in candidates if p.is_file()), None)


def fetch_us_atlas(state_dir: Path) -> Path | None:
    """``npm pack us-atlas`` into ``<state_dir>/us-atlas`` (blocking; call in a thread). None if it fails."""
    npm = shutil.which("npm")
    if npm is None:
        log.warning(
            "us-atlas county boundaries missing and npm is not installed: county-only NWS alerts stay unresolved"
        )
        return None
    target = state_dir / "us-atlas"
    target.mkdir(parents=True, exist_ok=True)
    log.warning("fetching county boundaries: npm pack us-atlas@%s into %s", US_ATLAS_VERSION, target)
    try:
        done = subprocess.run(
            [npm, "pack", f"us-atlas@{US_ATLAS_VERSION}", "--silent"],
            cwd=target, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        tgz = target / done.stdout.strip().splitlines()[-1]
        with tarfile.open(tgz) as tar:
            member = tar.getmember(f"package/{COUNTIES_FILE}")
            tar.extractall(target, members=[member], filter="data")
    except (OSError, subprocess.SubprocessError, KeyError, IndexError, tarfile.TarError) as exc:
        log.warning("could not fetch us-atlas (%s): county-only NWS alerts stay unresolved", exc)
        return None
    path = target / "package" / COUNTIES_FILE
    return path if path.is_file() else None


async def load_counties(conn: asyncpg.Connection, path: Path) -> int:
    """Load every county of a us-atlas file into ``boundaries`` (replacing what was there)."""
    features = await asyncio.to_thread(load_us_atlas_counties, path)
    codes = list(features)
    await conn.execute(
        "INSERT INTO boundaries (kind, code, name, geom) "
        "SELECT 'county', c, n, ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON(g), 4326)), 3)) "
        "FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, n, g) "
        "ON CONFLICT (kind, code) DO UPDATE SET name = excluded.name, geom = excluded.geom, fetched_at = now()",
        codes,
        [str(features[c]["properties"].get("name", "")) for c in codes],
        [msgspec.json.encode(features[c]["geometry"]).decode() for c in codes],
    )
    return len(codes)


async def ensure_counties(pool: asyncpg.Pool, state_dir: Path | None, *, allow_fetch: bool = True) -> int:
    """Make sure ``boundaries`` holds the counties; returns how many there are (0: unavailable)."""
    async with pool.acquire() as conn:
        have = int(await conn.fetchval("SELECT count(*) FROM boundaries WHERE kind = 'county'"))
        if have:
            return have
        path = find_counties_file(state_dir)
        if path is None and allow_fetch and state_dir is not None:
            path = await asyncio.to_thread(fetch_us_atlas, state_dir)
        if path is None:
            return 0
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sitrep.boundaries.counties'))")
            if await conn.fetchval("SELECT count(*) FROM boundaries WHERE kind = 'county'"):
                return int(await conn.fetchval("SELECT count(*) FROM boundaries WHERE kind = 'county'"))
            count = await load_counties(conn, path)
        log.info("loaded %d county boundaries from %s", count, path)
        return count


def _geometry(doc: Any) -> dict[str, Any] | None:
    geom = doc.get("geometry") if isinstance(doc, dict) else None
    if isinstance(geom, dict) and geom.get("type") in ("Polygon", "MultiPolygon"):
        return geom
    return None


class DbZoneResolver:
    """A :class:`feeds.nws.ZoneResolver` over the ``boundaries`` table (+ the NWS zone endpoint).

    Shapes are kept in memory once read; the first lookup loads every stored boundary in one query.
    """

    def __init__(self, pool: asyncpg.Pool, fetcher: FeedFetcher | None, zone_base_url: str | None) -> None:
        self._pool = pool
        self._fetcher = fetcher
        self._base = zone_base_url.rstrip("/") if zone_base_url else None
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._missing: set[str] = set()
        self._loaded = False
        self._lock = asyncio.Lock()

    async def _load(self) -> None:
        async with self._lock:
            if self._loaded:
                return
            async with self._pool.acquire() as conn:
                rows = await conn.fetch("SELECT kind, code, ST_AsGeoJSON(geom, 6)::text AS g FROM boundaries")
            for r in rows:
                self._cache[(r["kind"], r["code"])] = msgspec.json.decode(r["g"])
            self._loaded = True

    async def geometry_for(self, ugc_or_same: str) -> dict[str, Any] | None:
        await self._load()
        code = ugc_or_same.strip().upper()
        fips = ugc_to_fips(code) or same_to_fips(code) or (code if len(code) == 5 and code.isdigit() else None)
        if fips is not None:
            return self._cache.get(("county", fips))
        if len(code) == 6 and code[2] == "Z":
            cached = self._cache.get(("zone", code))
            if cached is None and code not in self._missing:
                cached = await self._fetch_zone(code)
            return cached
        return None

    async def _fetch_zone(self, code: str) -> dict[str, Any] | None:
        if self._fetcher is None or self._base is None:
            self._missing.add(code)
            return None
        for zone_type in ("forecast", "fire"):
            url = f"{self._base}/zones/{zone_type}/{code}"
            try:
                doc = msgspec.json.decode(await self._fetcher.get(url, "application/geo+json"))
                geom = _geometry(doc)
            except (FetchError, msgspec.DecodeError) as exc:
                log.debug("zone %s: %s", url, exc)
                continue
            if geom is None:
                continue
            async with self._pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO boundaries (kind, code, name, geom) "
                    "VALUES ('zone', $1, $2, ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON($3), 4326)), 3))) "
                    "ON CONFLICT (kind, code) DO UPDATE SET geom = excluded.geom, fetched_at = now()",
                    code, str((doc.get("properties") or {}).get("name") or zone_type), msgspec.json.encode(geom).decode(),
                )  # fmt: skip
            self._cache[("zone", code)] = geom
            return geom
        self._missing.add(code)
        return None
