"""Incident exports: GeoJSON FeatureCollection and CSV (same filters and paging as the list)."""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec

from .structs import Incident, IncidentPage, TimelineEntry

CSV_FIELDS = (
    "id",
    "type",
    "priority",
    "status",
    "title",
    "address",
    "reporter",
    "lon",
    "lat",
    "team_id",
    "created_at",
    "acknowledged_at",
    "dispatched_at",
    "en_route_at",
    "on_scene_at",
    "resolved_at",
    "closed_at",
    "cancelled_at",
    "description",
)


def feature(incident: Incident) -> dict[str, Any]:
    props = msgspec.to_builtins(incident)
    geometry = props.pop("location")
    return {"type": "Feature", "id": str(incident.id), "geometry": geometry, "properties": props}


def to_geojson(page: IncidentPage) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [feature(i) for i in page.items],
        "next_cursor": page.next_cursor,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    # keep spreadsheet programs from executing cell content (CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(page: IncidentPage) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for incident in page.items:
        values = msgspec.to_builtins(incident)
        writer.writerow([_cell(values.get(f)) for f in CSV_FIELDS])
    return out.getvalue()


def timeline_csv(entries: list[TimelineEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("id", "created_at", "kind", "actor", "detail"))
    for e in entries:
        detail = {k: v for k, v in e.body.items() if k != "actor"}
        writer.writerow(
            [e.id, e.created_at.isoformat(), e.kind, _cell(e.actor or ""), _cell(msgspec.json.encode(detail).decode())]
        )
    return out.getvalue()
