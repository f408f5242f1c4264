"""Locust load test for sitrep: a REST mix user and an ingest user.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 200 -r 20 -t 1m

Reads demo devices (with their tokens) from ``.sitrep/demo-devices.json`` (written by
``sitrep seed-demo``; override with SITREP_DEVICES_FILE). Uses the public API only.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

DEVICES_FILE = Path(os.environ.get("SITREP_DEVICES_FILE", ".sitrep/demo-devices.json"))
PASSWORD = os.environ.get("SITREP_DEMO_PASSWORD", "sitrep-demo")
DEVICES = json.loads(DEVICES_FILE.read_text()) if DEVICES_FILE.exists() else []


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RestUser(FastHttpUser):
    """A coordinator's console: lists, details, searches."""

    weight = 1
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        r = self.client.post("/v1/auth/token", json={"username": "coord", "password": PASSWORD})
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    @task(5)
    def responders(self) -> None:
        self.client.get("/v1/responders?limit=100", headers=self.headers, name="/v1/responders")

    @task(3)
    def incidents(self) -> None:
        self.client.get("/v1/incidents?limit=50", headers=self.headers, name="/v1/incidents")

    @task(2)
    def hazards(self) -> None:
        self.client.get("/v1/hazards?limit=50", headers=self.headers, name="/v1/hazards")

    @task(1)
    def me(self) -> None:
        self.client.get("/v1/me", headers=self.headers)


class IngestUser(FastHttpUser):
    """A responder phone: JSON batches of fixes, or OsmAnd/Traccar single fixes."""

    weight = 4
    wait_time = between(1, 2)

    def on_start(self) -> None:
        if not DEVICES:
            raise RuntimeError(f"no demo devices in {DEVICES_FILE}; run `sitrep seed-demo`")
        self.device = random.choice(DEVICES)
        self.lon = float(self.device["lon"])
        self.lat = float(self.device["lat"])

    def _move(self) -> None:
        self.lon += random.uniform(-0.0005, 0.0005)
        self.lat += random.uniform(-0.0004, 0.0004)

    @task(3)
    def batch(self) -> None:
        now = time.time()
        fixes = []
        for k in range(5):
            self._move()
            fixes.append({"fix_time": _iso(now - 5 + k), "lon": self.lon, "lat": self.lat, "accuracy_m": 6.0})
        self.client.post(
            "/v1/positions",
            json=fixes,
            headers={"Authorization": f"Bearer {self.device['token']}"},
            name="/v1/positions",
        )

    @task(2)
    def osmand(self) -> None:
        self._move()
        self.client.get(
            f"/osmand?id={self.device['unique_id']}&token={self.device['token']}&timestamp={int(time.time())}"
            f"&lat={self.lat:.6f}&lon={self.lon:.6f}&speed=3.1&bearing=90&accuracy=5&batt=80",
            name="/osmand",
        )
