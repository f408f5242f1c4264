"""Feed management: validation, the audited writes, and telling the leader (NOTIFY after commit)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec

from feeds.config import FEED_KINDS, SOURCE_MIN_INTERVAL_S

from .. import audit
from ..errors import Conflict, InvalidInput, NotFound, Unavailable
from ..runtime import Runtime
from ..security import Principal
from . import repository as repo
from .structs import Feed, FeedCreate, FeedHealthOut, FeedUpdate

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_INTERVAL_S = 300.0
MAX_INTERVAL_S = 86400.0
NUMERIC_OPTIONS = {"min_confidence": (0, 100), "h3_res": (4, 9), "ttl_s": (60, 30 * 86400),
                   "stale_after_s": (30, 30 * 86400), "follow_limit": (0, 500)}  # fmt: skip
TEXT_OPTIONS = {"accept"}


def _check_url(errors: list[dict[str, str]], url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        errors.append({"field": "url", "message": "an absolute http(s) URL"})


def _check_interval(errors: list[dict[str, str]], kind: str, interval_s: float) -> None:
    floor = SOURCE_MIN_INTERVAL_S.get(kind, 1.0)
    if not floor <= interval_s <= MAX_INTERVAL_S:
        errors.append({"field": "interval_s", "message": f"must be {floor:g}..{MAX_INTERVAL_S:g} s for {kind}"})


def _check_area(errors: list[dict[str, str]], area: list[float] | None) -> None:
    if area is None:
        return
    ok = len(area) == 4 and -180 <= area[0] < area[2] <= 180 and -90 <= area[1] < area[3] <= 90
    if not ok:
        errors.append({"field": "area", "message": "[west, south, east, north] with west < east, south < north"})


def _check_options(errors: list[dict[str, str]], options: dict[str, Any]) -> None:
    for key, value in options.items():
        if key in NUMERIC_OPTIONS:
            lo, hi = NUMERIC_OPTIONS[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                errors.append({"field": f"options.{key}", "message": f"a number {lo}..{hi}"})
        elif key in TEXT_OPTIONS:
            if not isinstance(value, str) or len(value) > 500:
                errors.append({"field": f"options.{key}", "message": "a string"})
        else:
            allowed = sorted([*NUMERIC_OPTIONS, *TEXT_OPTIONS])
            errors.append({"field": f"options.{key}", "message": f"unknown option; allowed: {allowed}"})


def to_feed(row: asyncpg.Record | dict[str, Any], now: datetime | None = None) -> Feed:
    health = dict(row["health"] or {})
    out = msgspec.convert(health, FeedHealthOut, strict=False) if health else FeedHealthOut(status="pending")
    enabled = bool(row["enabled"]) and bool(row["url"])
    if not enabled:
        out.status = "disabled"
    elif not health:
        out.status = "pending"
    elif out.status == "ok" and out.last_success_at is not None:
        stale_s = max(3 * float(row["interval_s"]), 600.0, float((row["options"] or {}).get("stale_after_s") or 0))
        if (now or datetime.now(UTC)) - out.last_success_at > timedelta(seconds=stale_s):
            out.status = "stale"
    opts = dict(row["options"] or {})
    return Feed(
        name=row["name"], kind=row["kind"], url=row["url"], enabled=enabled, interval_s=float(row["interval_s"]),
        area=list(row["area"]) if row["area"] else None, builtin=bool(opts.pop("builtin", False)),
        options={k: v for k, v in opts.items() if k != "managed"}, health=out, updated_at=row["updated_at"],
    )  # fmt: skip


async def create_feed(runtime: Runtime, principal: Principal, data: FeedCreate) -> Feed:
    errors: list[dict[str, str]] = []
    if not NAME_RE.match(data.name):
        errors.append({"field": "name", "message": "1-63 of a-z, 0-9, '-', '_' (starting with a letter or digit)"})
    if data.kind not in FEED_KINDS:
        errors.append({"field": "kind", "message": f"one of {list(FEED_KINDS)}"})
    _check_url(errors, data.url)
    interval_s = DEFAULT_INTERVAL_S if data.interval_s is None else data.interval_s
    _check_interval(errors, data.kind, interval_s)
    _check_area(errors, data.area)
    _check_options(errors, data.options)
    if errors:
        raise InvalidInput("invalid feed", errors=errors)
    fields = {**msgspec.structs.asdict(data), "interval_s": interval_s}
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await repo.insert_feed(conn, fields)
        if row is None:
            raise Conflict(f"a feed named {data.name!r} exists")
        await audit.record(conn, principal, "feed.create", "feed", data.name, {"kind": data.kind, "url": data.url})
        await repo.notify_leader(conn, "reload", data.name)
    return to_feed(row)


async def update_feed(runtime: Runtime, principal: Principal, name: str, data: FeedUpdate) -> Feed:
    changes: dict[str, Any] = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
    if data.area is None:
        changes["area"] = None
    elif data.area is msgspec.UNSET:
        changes.pop("area", None)
    async with runtime.pool.acquire() as conn, conn.transaction():
        current = await repo.get_feed(conn, name, for_update=True)
        if current is None:
            raise NotFound(f"no feed {name!r}")
        errors: list[dict[str, str]] = []
        if "url" in changes:
            _check_url(errors, changes["url"])
        if "interval_s" in changes:
            _check_interval(errors, current["kind"], changes["interval_s"])
        if "area" in changes:
            _check_area(errors, changes["area"])
        if "options" in changes:
            _check_options(errors, changes["options"])
        if errors:
            raise InvalidInput("invalid feed", errors=errors)
        old_opts = dict(current["options"] or {})
        new_opts = dict(changes.get("options", {k: v for k, v in old_opts.items() if k not in ("builtin", "managed")}))
        if old_opts.get("builtin"):
            new_opts["builtin"] = True  # an edited built-in no longer follows the settings
        changes["options"] = new_opts
        row = await repo.update_feed(conn, name, changes)
        assert row is not None
        edited = sorted(k for k, v in msgspec.structs.asdict(data).items() if v is not None and v is not msgspec.UNSET)
        await audit.record(
            conn, principal, "feed.update", "feed", name, {"fields": edited + (["area"] if data.area is None else [])}
        )
        await repo.notify_leader(conn, "reload", name)
    return to_feed(row)


async def poll_feed(runtime: Runtime, principal: Principal, name: str) -> Feed:
    if not runtime.settings.feeds.feeds_enabled:
        raise Unavailable("feed ingesters are off on this server (SITREP_FEEDS_ENABLED=false)")
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await repo.get_feed(conn, name)
        if row is None:
            raise NotFound(f"no feed {name!r}")
        if not (row["enabled"] and row["url"]):
            raise Conflict(f"feed {name!r} is disabled; enable it first")
        await audit.record(conn, principal, "feed.poll", "feed", name)
        await repo.notify_leader(conn, "poll", name)
    return to_feed(row)
