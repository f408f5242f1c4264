"""Current payloads in each source's real format, generated for the fake feed server.

A :class:`Scenario` holds the generated world around a city: a few NWS polygon alerts and a
county alert, USGS quakes (one at the antimeridian), GDACS events, FIRMS hotspot clusters and
CAP alerts. :meth:`Scenario.advance` moves one feed on (``update`` publishes a new version,
``cancel`` cancels/deletes the first item, ``reset`` starts over) so tests can watch
updates and cancels flow through.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from feeds.fake_zones import zone_square

FEEDS = ("nws", "usgs", "gdacs", "firms", "cap")
DEFAULT_CITY = (-91.67, 41.978)  # Cedar Rapids, Iowa (Linn County, FIPS 19113)
LOCAL_ZONES = ("IAZ052", "IAZ053")
"""The zones of the generated Flood Watch, drawn near the city (the real ones are Linn and Jones counties)."""


def _square(lon: float, lat: float, half_deg: float) -> list[list[float]]:
    d = half_deg
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
    return [[round(x, 4), round(y, 4)] for x, y in ring]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).replace(microsecond=0).isoformat()


def _rfc822(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


@dataclass
class FeedScenario:
    revision: int = 0
    cancelled: bool = False
    changed_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    history: list[str] = field(default_factory=list)


class Scenario:
    """The generated state of every fake feed."""

    def __init__(self, city: tuple[float, float] = DEFAULT_CITY, now: datetime | None = None) -> None:
        self.city = city
        start = (now or datetime.now(UTC)).replace(microsecond=0)
        self.feeds = {name: FeedScenario(changed_at=start) for name in FEEDS}

    def advance(self, feed: str, action: str, now: datetime | None = None) -> FeedScenario:
        """``update`` | ``cancel`` | ``reset`` one feed's first item."""
        sc = self.feeds[feed]
        when = (now or datetime.now(UTC)).replace(microsecond=0)
        if when <= sc.changed_at:
            when = sc.changed_at + timedelta(seconds=1)
        if action == "update":
            sc.history.append(self._first_id(feed))
            sc.revision += 1
            sc.cancelled = False
        elif action == "cancel":
            sc.history.append(self._first_id(feed))
            sc.cancelled = True
        elif action == "reset":
            self.feeds[feed] = FeedScenario(changed_at=when)
            return self.feeds[feed]
        else:
            raise ValueError(f"unknown action {action!r}")
        sc.changed_at = when
        return sc

    def anchor(self, feed: str, now: datetime) -> datetime:
        """The time generated items are placed around: the last change, rolled forward hourly
        so that a long-running demo never runs out of active hazards."""
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return max(self.feeds[feed].changed_at, hour)

    def _first_id(self, feed: str) -> str:
        sc = self.feeds[feed]
        if feed == "nws":
            return self.nws_id(sc.revision, sc.cancelled)
        if feed == "cap":
            return self.cap_id(0, sc.revision, sc.cancelled)
        return f"{feed}-{sc.revision}"

    # ------------------------------------------------------------------ NWS
    @staticmethod
    def nws_id(revision: int, cancelled: bool = False) -> str:
        suffix = f"{revision}{'c' if cancelled else ''}"
        return f"urn:oid:2.49.0.1.840.0.sitrep.fake.tor.{suffix}.001.1"

    def nws_alerts(self, now: datetime, base_url: str) -> dict[str, Any]:
        sc = self.feeds["nws"]
        lon, lat = self.city
        sent = self.anchor("nws", now)  # the tornado warning moves with the scenario
        # The others change hourly; every generated alert ends more than an hour after its anchor, so
        # none is ever expired whatever the minute (tests and a long-running demo rely on that).
        now = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        refs = [{"@id": f"{base_url}/alerts/{h}", "identifier": h, "sender": "w-nws.webmaster@noaa.gov",
                 "sent": _iso(sent - timedelta(minutes=10))} for h in sc.history[-1:]]  # fmt: skip
        shift = 0.05 * sc.revision
        tor_type = "Cancel" if sc.cancelled else ("Update" if sc.revision else "Alert")
        alerts = [
            self._nws_feature(base_url, self.nws_id(sc.revision, sc.cancelled), "Tornado Warning", "Extreme",
                              tor_type, refs, _square(lon + 0.08 + shift, lat + 0.05, 0.06), sent, sent + timedelta(minutes=90),
                              {"SAME": ["019113"], "UGC": ["IAC113"]}),
            self._nws_feature(base_url, "urn:oid:2.49.0.1.840.0.sitrep.fake.svr.001.1", "Severe Thunderstorm Warning",
                              "Severe", "Alert", [], _square(lon - 0.15, lat - 0.1, 0.1), now - timedelta(minutes=20),
                              now + timedelta(minutes=100), {"SAME": ["019113"], "UGC": ["IAC113"]}),
            self._nws_feature(base_url, "urn:oid:2.49.0.1.840.0.sitrep.fake.ffa.001.1", "Flood Watch", "Moderate",
                              "Alert", [], None, now - timedelta(hours=2), now + timedelta(hours=12),
                              {"SAME": ["019113", "019105"], "UGC": list(LOCAL_ZONES)}),
        ]  # fmt: skip
        return {
            "@context": ["https://geojson.org/geojson-ld/geojson-context.jsonld", {"@version": "1.1"}],
            "type": "FeatureCollection",
            "features": alerts,
            "title": "Current watches, warnings, and advisories (sitrep fake-feeds)",
            "updated": _iso(now),
        }

    @staticmethod
    def _nws_feature(base_url: str, ident: str, event: str, severity: str, msg_type: str,
                     refs: list[dict[str, str]], ring: list[list[float]] | None, sent: datetime, ends: datetime,
                     geocode: dict[str, list[str]]) -> dict[str, Any]:  # fmt: skip
        zones = [f"{base_url}/zones/{'county' if u[2] == 'C' else 'forecast'}/{u}" for u in geocode["UGC"]]
        return {
            "id": f"{base_url}/alerts/{ident}",
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]} if ring else None,
            "properties": {
                "@id": f"{base_url}/alerts/{ident}", "@type": "wx:Alert", "id": ident,
                "areaDesc": "Linn, IA", "geocode": geocode, "affectedZones": zones, "references": refs,
                "sent": _iso(sent), "effective": _iso(sent), "onset": _iso(sent), "expires": _iso(ends),
                "ends": _iso(ends), "status": "Actual", "messageType": msg_type, "category": "Met",
                "severity": severity, "certainty": "Observed", "urgency": "Immediate", "event": event,
                "sender": "w-nws.webmaster@noaa.gov", "senderName": "NWS Fake Office",
                "headline": f"{event} issued by sitrep fake-feeds", "description": f"A generated {event}.",
                "instruction": "This is generated test data.", "response": "Shelter",
                "parameters": {"VTEC": ["/O.NEW.KFAK.TO.W.0001.000000T0000Z-000000T0000Z/"]},
            },
        }  # fmt: skip

    def nws_zone(self, zone_id: str, base_url: str) -> dict[str, Any]:
        """A plausible ``/zones/forecast/<id>`` response: the zones of the scenario's own alerts
        (:data:`LOCAL_ZONES`) are squares near the city; any other zone a square at a place derived
        from its code (:func:`feeds.fake_zones.zone_square`: offshore for marine zones, inside its
        state for land zones)."""
        lon, lat = self.city
        if zone_id in LOCAL_ZONES:
            offset = (sum(map(ord, zone_id)) % 7 - 3) * 0.3
            ring = _square(lon + offset, lat, 0.25)
        else:
            ring = zone_square(zone_id)
        return {
            "id": f"{base_url}/zones/forecast/{zone_id}",
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"id": zone_id, "type": "public", "name": f"Fake zone {zone_id}"},
        }

    # ------------------------------------------------------------------ USGS
    def usgs_summary(self, now: datetime, url: str) -> dict[str, Any]:
        sc = self.feeds["usgs"]
        lon, lat = self.city
        generated = now.replace(second=0, microsecond=0)
        now = self.anchor("usgs", now)
        changed_ms = int(now.timestamp() * 1000)
        quakes = [
            ("fk00000001", 3.1 + 0.4 * sc.revision, lon + 0.2, lat + 0.1, 8.2, now - timedelta(minutes=12), changed_ms),
            ("fk00000002", 1.4, lon - 0.3, lat + 0.2, -0.8, now - timedelta(minutes=30), changed_ms - 60000),
            ("fk00000003", 5.2, -179.95, 51.5, 33.0, now - timedelta(minutes=45), changed_ms - 120000),
        ]
        features = []
        for n, (qid, mag, qlon, qlat, depth, when, updated) in enumerate(quakes):
            status = "deleted" if n == 0 and sc.cancelled else ("reviewed" if n else "AUTOMATIC")
            features.append({
                "type": "Feature",
                "properties": {
                    "mag": round(mag, 2), "place": f"{n * 7 + 3} km of sitrep fake city", "time": int(when.timestamp() * 1000),
                    "updated": updated, "tz": -300, "url": f"https://earthquake.usgs.gov/earthquakes/eventpage/{qid}",
                    "detail": None, "felt": None, "cdi": None, "mmi": None, "alert": None, "status": status,
                    "tsunami": 0, "sig": int(mag * 50), "net": "fk", "code": qid[2:], "ids": f",{qid},",
                    "sources": ",fk,", "types": ",origin,phase-data,", "nst": 12, "dmin": 0.1, "rms": 0.2, "gap": 80,
                    "magType": "ml", "type": "earthquake", "title": f"M {mag:.1f} - fake quake {n + 1}",
                },
                "geometry": {"type": "Point", "coordinates": [qlon, qlat, depth]},
                "id": qid,
            })  # fmt: skip
        return {
            "type": "FeatureCollection",
            "metadata": {
                "generated": int(generated.timestamp() * 1000),
                "url": url,
                "title": "USGS All Earthquakes, Past Hour (sitrep fake-feeds)",
                "status": 200,
                "api": "1.10.3",
                "count": len(features),
            },
            "features": features,
            "bbox": [-179.95, 41.0, -0.8, lon + 0.2, 51.5, 33.0],
        }

    # ------------------------------------------------------------------ GDACS
    def gdacs_rss(self, now: datetime) -> bytes:
        sc = self.feeds["gdacs"]
        lon, lat = self.city
        now = self.anchor("gdacs", now)
        items = [
            ("EQ", 1400001, 1 + sc.revision, "Orange", lon + 1.0, lat - 0.5, not sc.cancelled, "Earthquake M 6.1"),
            ("TC", 1000900, 3, "Green", 150.2, 14.8, True, "Tropical Storm FAKE-26"),
            ("FL", 1102001, 1, "Red", 90.4, 23.7, True, "Flood in Bangladesh"),
        ]
        parts = []
        for etype, eid, episode, level, ilon, ilat, current, name in items:
            d = 4.0
            parts.append(f"""    <item>
      <title>{level} alert for {escape(name)}</title>
      <description>{escape(name)} (generated by sitrep fake-feeds)</description>
      <link>http://www.gdacs.org/report.aspx?eventtype={etype}&amp;eventid={eid}</link>
      <pubDate>{_rfc822(now)}</pubDate>
      <gdacs:iscurrent>{str(current).lower()}</gdacs:iscurrent>
      <gdacs:fromdate>{_rfc822(now - timedelta(hours=6))}</gdacs:fromdate>
      <gdacs:todate>{_rfc822(now)}</gdacs:todate>
      <guid isPermaLink="false">{etype}{eid}</guid>
      <geo:Point><geo:lat>{ilat}</geo:lat><geo:long>{ilon}</geo:long></geo:Point>
      <!--gdacs:bbox format = lonmin lonmax latmin latmax-->
      <gdacs:bbox>{ilon - d} {ilon + d} {ilat - d} {ilat + d}</gdacs:bbox>
      <georss:point>{ilat} {ilon}</georss:point>
      <gdacs:eventtype>{etype}</gdacs:eventtype>
      <gdacs:alertlevel>{level}</gdacs:alertlevel>
      <gdacs:episodealertlevel>{level}</gdacs:episodealertlevel>
      <gdacs:eventname>{escape(name)}</gdacs:eventname>
      <gdacs:eventid>{eid}</gdacs:eventid>
      <gdacs:episodeid>{episode}</gdacs:episodeid>
      <gdacs:severity unit="M" value="6.1">{escape(name)}</gdacs:severity>
      <gdacs:country>Fakeland</gdacs:country>
    </item>""")
        body = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:geo="http://www.w3.org/2003/01/geo/wgs84_pos#" xmlns:gdacs="http://www.gdacs.org" xmlns:georss="http://www.georss.org/georss" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>GDACS RSS information (sitrep fake-feeds)</title>
    <link>http://www.gdacs.org/</link>
    <description>Generated alerts</description>
    <!--Records number {len(items)}-->
    <pubDate>{_rfc822(now)}</pubDate>
{chr(10).join(parts)}
  </channel>
</rss>
"""
        return b"\xef\xbb\xbf" + body.encode()

    # ------------------------------------------------------------------ FIRMS
    def firms_csv(self, now: datetime, viirs: bool = True) -> bytes:
        sc = self.feeds["firms"]
        lon, lat = self.city
        now = self.anchor("firms", now)
        clusters = [(lon + 0.3, lat - 0.2, 12 + 3 * sc.revision), (lon - 0.5, lat + 0.4, 6)]
        if sc.cancelled:
            clusters = clusters[1:]
        rows = []
        day = now.astimezone(UTC).date().isoformat()
        for ci, (clon, clat, count) in enumerate(clusters):
            for k in range(count):
                angle = k * 2.4
                r = 0.004 * math.sqrt(k)
                plat, plon = clat + r * math.sin(angle), clon + r * math.cos(angle)
                acq = "41" if k == 0 else f"{(ci * 3 + k) % 24:02d}{k % 60:02d}"
                if viirs:
                    conf = ("h", "n", "nominal", "l")[k % 4]
                    rows.append(
                        f"{plat:.5f},{plon:.5f},330.{k},0.39,0.36,{day},{acq},N,VIIRS,{conf},2.0NRT,290.1,{4 + k}.5,D"
                    )
                else:
                    rows.append(
                        f"{plat:.5f},{plon:.5f},320.{k},1.0,1.0,{day},{acq.zfill(4)},T,{40 + k * 5 % 60},6.1NRT,295.0,{5 + k}.2,D"
                    )
        header = (
            "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_ti5,frp,daynight"
            if viirs
            else "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight"
        )
        return ("\n".join([header, *rows]) + "\n").encode()

    # ------------------------------------------------------------------ CAP
    @staticmethod
    def cap_id(n: int, revision: int, cancelled: bool) -> str:
        return f"sitrep-fake-{n}-r{revision}{'c' if cancelled else ''}"

    def cap_alert_ids(self) -> list[str]:
        sc = self.feeds["cap"]
        return [self.cap_id(0, sc.revision, sc.cancelled), self.cap_id(1, 0, False)]

    def cap_alert(self, ident: str, now: datetime) -> bytes | None:
        """CAP 1.2 XML for one of the current ids; None when unknown."""
        sc = self.feeds["cap"]
        lon, lat = self.city
        if ident not in self.cap_alert_ids():
            return None
        now = self.anchor("cap", now)
        first = ident == self.cap_alert_ids()[0]
        sent = now if first else now - timedelta(minutes=30)
        msg_type = "Cancel" if first and sc.cancelled else ("Update" if first and sc.revision else "Alert")
        refs = ""
        if first and sc.history:
            prev = sc.history[-1]
            refs = f"\n  <references>fake@sitrep.example,{prev},{_iso(sent - timedelta(minutes=5))}</references>"
        if first:
            d = 0.1 + 0.02 * sc.revision
            ring = [(lat - d, lon - d), (lat - d, lon + d), (lat + d, lon + d), (lat + d, lon - d), (lat - d, lon - d)]
            shape = "<polygon>" + " ".join(f"{a:.4f},{b:.4f}" for a, b in ring) + "</polygon>"
            event, severity = "Chemical plume", "Severe"
        else:
            shape = f"<circle>{lat + 0.3:.4f},{lon - 0.3:.4f} 5.0</circle>"
            event, severity = "Gas leak", "Moderate"
        expires = _iso(now + timedelta(hours=3))
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{ident}</identifier>
  <sender>fake@sitrep.example</sender>
  <sent>{_iso(sent)}</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}
  <info>
    <language>en-US</language>
    <category>Safety</category>
    <event>{event}</event>
    <responseType>Shelter</responseType>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Observed</certainty>
    <expires>{expires}</expires>
    <senderName>sitrep fake-feeds</senderName>
    <headline>{event} near the fake city</headline>
    <description>Generated by sitrep fake-feeds.</description>
    <area>
      <areaDesc>Fake area {ident}</areaDesc>
      {shape}
      <geocode><valueName>EMMA_ID</valueName><value>FK001</value></geocode>
    </area>
  </info>
</alert>
""".encode()

    def cap_index(self, now: datetime, base_url: str) -> bytes:
        """A MeteoAlarm-style Atom index: ``cap:`` summary fields, geocodes, links to full CAP."""
        entries = []
        now = self.anchor("cap", now)
        for ident in self.cap_alert_ids():
            link = f"{base_url}/cap/{ident}.xml"
            entries.append(f"""  <entry>
    <id>{link}</id>
    <title>Alert {ident}</title>
    <updated>{_iso(self.feeds["cap"].changed_at)}</updated>
    <link href="{link}" type="application/cap+xml"/>
    <cap:identifier>{ident}</cap:identifier>
    <cap:event>Generated alert</cap:event>
    <cap:message_type>Alert</cap:message_type>
    <cap:status>Actual</cap:status>
    <cap:severity>Moderate</cap:severity>
    <cap:expires>{_iso(now + timedelta(hours=3))}</cap:expires>
    <cap:geocode><valueName>EMMA_ID</valueName><value>FK001</value></cap:geocode>
  </entry>""")
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2">
  <id>tag:sitrep.example,2026:fake</id>
  <title>sitrep fake CAP index</title>
  <updated>{_iso(self.feeds["cap"].changed_at)}</updated>
{chr(10).join(entries)}
</feed>
""".encode()


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
