"""``sitrep fake-feeds``: a local server speaking every feed's format, with switchable failures.

It generates current payloads itself (see :mod:`feeds.fake_payloads`), so it works in any
clone; when a samples directory is given it can also replay recorded files, with the
weather.gov placeholder times rewritten relative to now (:mod:`feeds.relative_dates`).

Paths (as the real services use them)::

    GET /alerts/active[?…]                      NWS alerts (application/geo+json)
    GET /alerts/active/zone/{zone}              NWS alerts for a zone
    GET /zones/{forecast|county|fire}/{id}      NWS zone shape (generated)
    GET /earthquakes/feed/v1.0/summary/{name}.geojson[p]   USGS (".geojsonp": eqfeed_callback)
    GET /xml/rss.xml, /xml/rss_24h.xml, /xml/rss_7d.xml    GDACS RSS (UTF-8 BOM)
    GET /api/area/csv/{key}/{source}/{bbox}/{days}         FIRMS area API (VIIRS_* or MODIS_*)
    GET /data/active_fire/modis-c6.1/csv/MODIS_C6_1_Global_24h.csv   FIRMS MODIS text file
    GET /cap/index.atom, /cap/{id}.xml          CAP Atom index (MeteoAlarm-style) and alerts
    GET /samples/{path}                         a recorded sample (when samples_dir is set)
    GET /_control                               modes, hit counts, last request headers
    POST /_control  {"feed": "nws", "mode": "ok"|"500"|"429"|"timeout"|"truncated"}
                    {"feed": "nws", "action": "update"|"cancel"|"reset"}
                    {"feed": "nws", "replay": "nws/<sample file>"|null}
                    optional "retry_after" (s, for 429), "delay_s" (for timeout), "max_age" (s)

Caching headers: NWS ``Cache-Control: public, max-age=N, s-maxage=3600``, ``Expires``,
``Last-Modified``, no ETag, 304 on ``If-Modified-Since``; USGS ``max-age=60`` with ETag and
Last-Modified (an assumption: no USGS headers were recorded); CAP/MeteoAlarm ``max-age=0,
private, must-revalidate`` and no validators; GDACS and FIRMS none.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

from feeds.fake_payloads import DEFAULT_CITY, FEEDS, Scenario, dumps
from feeds.relative_dates import rewrite_relative_dates

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODES = ("ok", "500", "429", "timeout", "truncated")
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/alerts/active(/zone/(?P<zone>[A-Z0-9]+))?$"), "nws"),
    (re.compile(r"^/zones/(?P<ztype>forecast|county|fire)/(?P<zid>[A-Z0-9]+)$"), "nws_zone"),
    (re.compile(r"^/earthquakes/feed/v1\.0/summary/(?P<name>[a-z0-9_.]+)\.geojson(?P<jsonp>p)?$"), "usgs"),
    (re.compile(r"^/xml/rss(_24h|_7d)?\.xml$"), "gdacs"),
    (re.compile(r"^/api/area/csv/(?P<key>[^/]+)/(?P<source>[A-Za-z0-9_]+)/(?P<bbox>[^/]+)/(?P<days>\d+)$"), "firms"),
    (re.compile(r"^/data/active_fire/modis-c6\.1/csv/MODIS_C6_1_Global_24h\.csv$"), "firms_modis"),
    (re.compile(r"^/cap/index\.atom$"), "cap"),
    (re.compile(r"^/cap/(?P<ident>[A-Za-z0-9_.\-]+)\.xml$"), "cap_alert"),
]


def _http_date(t: datetime) -> str:
    return format_datetime(t.astimezone(UTC), usegmt=True)


class FakeFeedApp:
    """The ASGI application behind ``sitrep fake-feeds`` (plain ASGI, served by uvicorn)."""

    def __init__(
        self,
        samples_dir: Path | None = None,
        *,
        city: tuple[float, float] = DEFAULT_CITY,
        nws_max_age_s: int = 30,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.samples_dir = samples_dir if samples_dir is not None and samples_dir.is_dir() else None
        self.clock = clock or (lambda: datetime.now(UTC))
        self.scenario = Scenario(city, self.clock())
        self.modes: dict[str, str] = dict.fromkeys(FEEDS, "ok")
        self.replay: dict[str, str | None] = dict.fromkeys(FEEDS)
        self.options: dict[str, dict[str, float]] = {f: {} for f in FEEDS}
        self.options["nws"]["max_age"] = float(nws_max_age_s)
        self.hits: dict[str, int] = dict.fromkeys(FEEDS, 0)
        self.last_headers: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if path == "/_control":
            await self._control(method, receive, send)
            return
        if path.startswith("/samples/"):
            await self._sample(path.removeprefix("/samples/"), send)
            return
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed", "text/plain")
            return
        for pattern, route in _ROUTES:
            m = pattern.match(path)
            if m:
                await self._feed(route, m.groupdict(), scope, headers, send)
                return
        await _respond(send, 404, b"not found", "text/plain")

    # ------------------------------------------------------------------ control
    async def _control(self, method: str, receive: Receive, send: Send) -> None:
        if method == "GET":
            await _respond(send, 200, json.dumps(self.status()).encode(), "application/json")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            cmd = json.loads(body or b"{}")
            self.control(cmd)
        except (ValueError, KeyError, TypeError) as exc:
            await _respond(send, 400, json.dumps({"error": str(exc)}).encode(), "application/json")
            return
        await _respond(send, 200, json.dumps(self.status()).encode(), "application/json")

    def control(self, cmd: dict[str, Any]) -> None:
        """Apply one control command (also callable directly from tests)."""
        feed = cmd["feed"]
        if feed not in FEEDS:
            raise KeyError(f"unknown feed {feed!r}; one of {FEEDS}")
        if "mode" in cmd:
            if cmd["mode"] not in MODES:
                raise ValueError(f"mode must be one of {MODES}")
            self.modes[feed] = cmd["mode"]
        for key in ("retry_after", "delay_s", "max_age"):
            if key in cmd:
                self.options[feed][key] = float(cmd[key])
        if "action" in cmd:
            self.scenario.advance(feed, cmd["action"], self.clock())
        if "replay" in cmd:
            name = cmd["replay"]
            if name is not None and (self.samples_dir is None or not (self.samples_dir / name).is_file()):
                raise ValueError(f"no sample {name!r}")
            self.replay[feed] = name

    def status(self) -> dict[str, Any]:
        return {
            "modes": self.modes,
            "replay": self.replay,
            "hits": self.hits,
            "last_headers": self.last_headers,
            "revisions": {f: s.revision for f, s in self.scenario.feeds.items()},
            "samples": str(self.samples_dir) if self.samples_dir else None,
        }

    # ------------------------------------------------------------------ feeds
    def _read_sample(self, name: str) -> bytes | None:
        if self.samples_dir is None:
            return None
        base = self.samples_dir.resolve()
        path = (base / name).resolve()
        if base not in path.parents or not path.is_file():
            return None
        data = path.read_bytes()
        return rewrite_relative_dates(data, self.clock()) if b'"date:' in data else data

    async def _sample(self, name: str, send: Send) -> None:
        data = self._read_sample(name)
        if data is None:
            await _respond(send, 404, b"no such sample", "text/plain")
            return
        ctype = "application/json" if name.endswith((".json", ".geojson")) else "application/xml"
        await _respond(send, 200, data, "text/csv" if name.endswith(".csv") else ctype)

    def _base_url(self, scope: Scope, headers: dict[str, str]) -> str:
        host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("127.0.0.1", 80)))
        return f"http://{host}"

    def _payload(self, route: str, params: dict[str, Any], base: str, now: datetime) -> tuple[bytes, str] | None:
        feed = route.split("_")[0]
        sample = self.replay.get(feed)
        if sample and route in ("nws", "usgs", "gdacs", "firms", "firms_modis", "cap"):
            data = self._read_sample(sample)
            if data is not None:
                ctype = {"nws": "application/geo+json", "usgs": "application/json", "gdacs": "application/rss+xml",
                         "cap": "application/atom+xml"}.get(feed, "text/csv")  # fmt: skip
                return data, ctype
        sc = self.scenario
        if route == "nws":
            return dumps(sc.nws_alerts(now, base)), "application/geo+json"
        if route == "nws_zone":
            return dumps(sc.nws_zone(params["zid"], base)), "application/geo+json"
        if route == "usgs":
            body = dumps(sc.usgs_summary(now, base + f"/earthquakes/feed/v1.0/summary/{params['name']}.geojson"))
            if params.get("jsonp"):
                return b"eqfeed_callback(" + body + b");", "application/javascript"
            return body, "application/json"
        if route == "gdacs":
            return sc.gdacs_rss(now), "application/rss+xml"
        if route == "firms":
            return sc.firms_csv(now, viirs=not params["source"].upper().startswith("MODIS")), "text/csv"
        if route == "firms_modis":
            recorded = self._read_sample("firms/firms_MODIS_C6_1_Global_24h_2023-08-01.csv")
            return (recorded or sc.firms_csv(now, viirs=False)), "text/csv"
        if route == "cap":
            return sc.cap_index(now, base), "application/atom+xml; charset=utf-8"
        if route == "cap_alert":
            alert = sc.cap_alert(params["ident"], now)
            return (alert, "application/cap+xml") if alert is not None else None
        return None

    def _caching(self, feed: str, body: bytes, now: datetime) -> dict[str, str]:
        changed = self.scenario.anchor(feed, now)
        if feed == "nws":
            max_age = int(self.options["nws"].get("max_age", 30))
            return {
                "Cache-Control": f"public, max-age={max_age}, s-maxage=3600",
                "Expires": _http_date(now + timedelta(seconds=max_age)),
                "Last-Modified": _http_date(changed),
                "Vary": "Accept,Feature-Flags,Accept-Language",
            }
        if feed == "usgs":
            return {
                "Cache-Control": f"public, max-age={int(self.options['usgs'].get('max_age', 60))}",
                "Last-Modified": _http_date(changed),
                "ETag": '"' + hashlib.sha1(body).hexdigest()[:16] + '"',
            }
        if feed == "cap":
            return {"Cache-Control": "max-age=0, private, must-revalidate"}
        return {}

    def _not_modified(self, feed: str, headers: dict[str, str], caching: dict[str, str]) -> bool:
        etag = caching.get("ETag")
        if etag and headers.get("if-none-match") == etag:
            return True
        since, last = headers.get("if-modified-since"), caching.get("Last-Modified")
        if since and last and feed == "nws" and not self.replay.get(feed):
            try:
                return parsedate_to_datetime(last) <= parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
        return False

    async def _feed(
        self, route: str, params: dict[str, Any], scope: Scope, headers: dict[str, str], send: Send
    ) -> None:
        feed = route.split("_")[0]
        self.hits[feed] += 1
        self.last_headers[feed] = {k: v for k, v in headers.items() if k not in ("host", "connection")}
        mode = self.modes[feed] if route not in ("nws_zone", "cap_alert") else "ok"
        opts = self.options[feed]
        if mode == "500":
            await _respond(send, 500, b'{"title": "Internal Server Error"}', "application/problem+json")
            return
        if mode == "429":
            retry = str(int(opts.get("retry_after", 2)))
            await _respond(send, 429, b"rate limited", "text/plain", {"Retry-After": retry})
            return
        if mode == "timeout":
            await asyncio.sleep(opts.get("delay_s", 30.0))
        now = self.clock()
        payload = self._payload(route, params, self._base_url(scope, headers), now)
        if payload is None:
            await _respond(send, 404, b"not found", "text/plain")
            return
        body, ctype = payload
        caching = self._caching(feed, body, now) if route not in ("nws_zone", "cap_alert") else {}
        if self._not_modified(feed, headers, caching):
            await _respond(send, 304, b"", None, caching)
            return
        if mode == "truncated":
            await _truncated(send, body, ctype, caching)
            return
        await _respond(send, 200, body if scope["method"] == "GET" else b"", ctype, caching)


async def _respond(
    send: Send, status: int, body: bytes, ctype: str | None, extra: dict[str, str] | None = None
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if ctype:
        headers.append((b"content-type", ctype.encode()))
    for k, v in (extra or {}).items():
        headers.append((k.lower().encode(), v.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _truncated(send: Send, body: bytes, ctype: str, extra: dict[str, str]) -> None:
    """Announce the full length, send half, and drop the connection (a cut-off download)."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", ctype.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    try:
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": False})
    except RuntimeError:
        pass  # the server refuses to finish a short body and closes the connection: that is the point


def create_fake_feed_app(
    samples_dir: Path | None = None,
    *,
    city: tuple[float, float] = DEFAULT_CITY,
    nws_max_age_s: int = 30,
    clock: Callable[[], datetime] | None = None,
) -> FakeFeedApp:
    """Build the fake feed ASGI app. ``samples_dir`` (e.g. ``../shared/samples``) enables replay."""
    return FakeFeedApp(samples_dir, city=city, nws_max_age_s=nws_max_age_s, clock=clock)


def default_samples_dir() -> Path | None:
    """``<repo>/../shared/samples`` when it exists (a developer checkout), else None."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "samples"
    return candidate if candidate.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    """``sitrep fake-feeds [--host 127.0.0.1] [--port 8089] [--samples DIR] [--city LON,LAT]``."""
    parser = argparse.ArgumentParser(prog="sitrep fake-feeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--samples", type=Path, default=None, help="recorded samples to replay (optional)")
    parser.add_argument("--city", default=",".join(map(str, DEFAULT_CITY)), help="lon,lat of the generated scenario")
    parser.add_argument("--nws-max-age", type=int, default=30)
    args = parser.parse_args(argv)
    lon, lat = (float(v) for v in args.city.split(","))
    import uvicorn

    app = create_fake_feed_app(args.samples or default_samples_dir(), city=(lon, lat), nws_max_age_s=args.nws_max_age)
    print(f"fake feeds on http://{args.host}:{args.port}  (samples: {app.samples_dir or 'none, generated only'})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
