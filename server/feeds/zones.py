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
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import shapely
import shapely.errors
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from feeds.boundaries import load_us_atlas_counties, same_to_fips, ugc_to_fips
from feeds.http import FeedFetcher, FetchError
from feeds.shapes import to_geojson

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


def _fips_of(code: str) -> str | None:
    return ugc_to_fips(code) or same_to_fips(code) or (code if len(code) == 5 and code.isdigit() else None)


def _is_zone(code: str) -> bool:
    return len(code) == 6 and code[2] == "Z"


def union_shapes(shapes: list[BaseGeometry], *, coverage: bool) -> BaseGeometry:
    """Union of polygonal shapes. ``coverage``: they are edge-matched and do not overlap (counties
    of one us-atlas file), so the much faster coverage union applies; checked, else a full union."""
    if len(shapes) == 1:
        return shapes[0]
    if coverage:
        try:
            merged = shapely.coverage_union_all(shapes)
        except shapely.errors.GEOSException:  # overlapping inputs: not a coverage after all
            merged = None
        if merged is not None and merged.is_valid and not merged.is_empty:
            return merged
    return shapely.union_all(shapes)


class DbZoneResolver:
    """A :class:`feeds.nws.ZoneResolver` over the ``boundaries`` table (+ the NWS zone endpoint).

    Shapes are kept in memory as shapely geometries once read (the first lookup loads every stored
    boundary in one query, as WKB); the unions of code sets are kept too (bounded), since alerts
    repeat the same zone sets poll after poll. Zones not stored yet are fetched concurrently
    (:meth:`prefetch`, at most ``fetch_concurrency`` at once) and stored in one statement.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        fetcher: FeedFetcher | None,
        zone_base_url: str | None,
        *,
        fetch_concurrency: int = 8,
        max_unions: int = 4096,
    ) -> None:
        self._pool = pool
        self._fetcher = fetcher
        self._base = zone_base_url.rstrip("/") if zone_base_url else None
        self._shapes: dict[tuple[str, str], BaseGeometry] = {}
        self._unions: OrderedDict[frozenset[str], tuple[dict[str, Any] | None, tuple[str, ...]]] = OrderedDict()
        self._missing: set[str] = set()
        self._loaded = False
        self._lock = asyncio.Lock()
        self._fetch_slots = asyncio.Semaphore(fetch_concurrency)
        self._max_unions = max_unions

    async def _load(self) -> None:
        if self._loaded:
            return
        async with self._lock:
            if self._loaded:
                return
            async with self._pool.acquire() as conn:
                rows = await conn.fetch("SELECT kind, code, ST_AsBinary(geom) AS g FROM boundaries")
            geoms = shapely.from_wkb([bytes(r["g"]) for r in rows]) if rows else []
            for r, g in zip(rows, geoms, strict=True):
                if g is not None and not g.is_empty:
                    self._shapes[(r["kind"], r["code"])] = g
            self._loaded = True

    def _known(self, code: str) -> tuple[str, BaseGeometry] | None:
        """``(kind, shape)`` of a code already in memory (counties by FIPS, zones by UGC)."""
        code = code.strip().upper()
        fips = _fips_of(code)
        if fips is not None:
            shape = self._shapes.get(("county", fips))
            return ("county", shape) if shape is not None else None
        shape = self._shapes.get(("zone", code)) if _is_zone(code) else None
        return ("zone", shape) if shape is not None else None

    async def geometry_for(self, ugc_or_same: str) -> dict[str, Any] | None:
        await self._load()
        code = ugc_or_same.strip().upper()
        known = self._known(code)
        if known is None and _is_zone(code) and code not in self._missing:
            await self.prefetch([code])
            known = self._known(code)
        return to_geojson(known[1]) if known is not None else None

    async def area_for(self, codes: Sequence[str]) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
        """Union of the codes' shapes as GeoJSON (None when none is known) and the codes without one."""
        await self._load()
        key = frozenset(c.strip().upper() for c in codes)
        hit = self._unions.get(key)
        if hit is not None:
            self._unions.move_to_end(key)
            return hit
        await self.prefetch(sorted(key))
        found = [(c, self._known(c)) for c in sorted(key)]
        shapes = [k[1] for _, k in found if k is not None]
        missing = tuple(c for c, k in found if k is None)
        merged = None
        if shapes:
            coverage = all(k[0] == "county" for _, k in found if k is not None)
            merged = to_geojson(await asyncio.to_thread(union_shapes, shapes, coverage=coverage))
        out = (merged, missing)
        if not any(_is_zone(c) and c not in self._missing for c in missing):  # a failed fetch may work later
            self._unions[key] = out
            while len(self._unions) > self._max_unions:
                self._unions.popitem(last=False)
        return out

    async def prefetch(self, codes: Sequence[str]) -> None:
        """Fetch the zones among ``codes`` that are neither stored nor known to be missing; store them."""
        await self._load()
        todo = sorted({c.strip().upper() for c in codes if _is_zone(c.strip().upper())})
        todo = [c for c in todo if ("zone", c) not in self._shapes and c not in self._missing]
        if not todo:
            return
        if self._fetcher is None or self._base is None:
            self._missing.update(todo)
            return
        fetched = await asyncio.gather(*(self._fetch_zone(c) for c in todo))
        found = [f for f in fetched if f is not None]
        if found:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO boundaries (kind, code, name, geom) "
                    "SELECT 'zone', c, n, ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON(g), 4326)), 3)) "
                    "FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, n, g) "
                    "ON CONFLICT (kind, code) DO UPDATE SET geom = excluded.geom, fetched_at = now()",
                    [f[0] for f in found], [f[1] for f in found], [msgspec.json.encode(f[2]).decode() for f in found],
                )  # fmt: skip
        for code, _name, geom in found:
            shape = shapely.make_valid(shapely.geometry.shape(geom))
            self._shapes[("zone", code)] = shape
        self._missing.update(c for c, f in zip(todo, fetched, strict=True) if f is None)

    async def _fetch_zone(self, code: str) -> tuple[str, str, dict[str, Any]] | None:
        assert self._fetcher is not None
        async with self._fetch_slots:
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
                return code, str((doc.get("properties") or {}).get("name") or zone_type), geom
        return None
