"""The bus change of a hazard row: what ``msgspec.to_builtins`` gave, without copying the geometry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec

from server.hazards.repository import hazard_change


def _row(status: str = "active") -> dict[str, object]:
    return {
        "id": uuid.uuid4(), "source": "firms", "external_id": "f1", "version": "2", "kind": "wildfire",
        "severity": "minor", "title": "Fire", "description": "",
        "geometry": {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]},
        "h3_res": 7, "valid_from": datetime(2023, 8, 1, 12, 0, 0, 250, tzinfo=UTC),
        "valid_until": datetime(2023, 8, 2, tzinfo=UTC), "status": status,
        "ended_at": datetime(2023, 8, 2, tzinfo=timezone(timedelta(hours=2))) if status == "ended" else None,
        "is_public": True, "created_at": datetime(2023, 8, 1, tzinfo=UTC), "updated_at": datetime(2023, 8, 1, tzinfo=UTC),
        "min_lon": 0.0, "min_lat": 0.0, "max_lon": 1.0, "max_lat": 1.0,
    }  # fmt: skip


def test_change_data_equals_to_builtins_and_shares_the_decoded_geometry() -> None:
    row = _row()
    change = hazard_change(row)
    expected = msgspec.to_builtins({k: v for k, v in row.items() if not k.startswith(("min_", "max_"))})
    assert change.data == expected and change.data["valid_from"] == "2023-08-01T12:00:00.000250Z"
    assert change.data["geometry"] is row["geometry"]  # passed on, not copied coordinate by coordinate
    assert change.key == str(row["id"]) and change.bbox == (0.0, 0.0, 1.0, 1.0) and change.public
    assert "deleted" not in change.data


def test_ended_or_deleted_hazards_are_marked_deleted() -> None:
    ended = hazard_change(_row("ended"))
    assert ended.data["deleted"] is True and ended.data["ended_at"] == "2023-08-02T00:00:00+02:00"
    assert hazard_change(_row(), deleted=True).data["deleted"] is True
