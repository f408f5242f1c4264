"""HTTP surface of the incidents area: incidents, timeline, messages, assignments,
recommendations, exports, reports and sync. Handlers parse, call a service, return."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import Parameter

from ..deps import decode_cursor, encode_cursor
from ..errors import InvalidInput, NotFound
from ..permissions import requires
from . import assignments, export, recommend, reports, service, sync
from .idempotency import mutate, read
from .search import RELEVANCE_WINDOW, IncidentQuery, list_incidents
from .states import ASSIGNMENT_ACTIONS
from .structs import (
    Assignment,
    AssignmentAction,
    AssignmentCreate,
    Incident,
    IncidentCreate,
    IncidentPage,
    IncidentUpdate,
    Message,
    MessageCreate,
    MessagePage,
    Recommendations,
    SyncResult,
    TimelinePage,
)

CSV = "text/csv; charset=utf-8"
GEOJSON = "application/geo+json"


def _after(cursor: str | None) -> int:
    raw = decode_cursor(cursor, 1)
    try:
        return int(raw[0]) if raw else 0
    except ValueError as exc:
        raise InvalidInput("invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}]) from exc


def _limit(limit: int, maximum: int = 1000) -> int:
    if not 1 <= limit <= maximum:
        raise InvalidInput(
            f"limit must be 1..{maximum}", errors=[{"field": "limit", "message": f"must be 1..{maximum}"}]
        )
    return limit


def _query(
    q: str | None,
    status: str | None,
    priority: str | None,
    type_: str | None,
    team_id: uuid.UUID | None,
    bbox: str | None,
    from_: datetime | None,
    to: datetime | None,
    inside_hazard: uuid.UUID | None,
    in_active_hazard: bool | None,
    limit: int,
    cursor: str | None,
    sort: str = "recent",
) -> IncidentQuery:
    return IncidentQuery(
        q, status, priority, type_, team_id, bbox, from_, to, inside_hazard, in_active_hazard, limit, cursor, sort
    )


SORT = Parameter(
    default="recent",
    description=(
        "recent (default): newest first, also with q (a search filters the list; items carry their rank). "
        f"relevance (needs q): by rank among the most recent {RELEVANCE_WINDOW} matches; the cursor keeps "
        "that window, so paging walks the same set."
    ),
)


async def _export(request: Request[Any, Any, Any], query: IncidentQuery, fmt: str) -> Any:
    page = await read(request, lambda w: list_incidents(w, query, max_limit=10_000))
    if fmt == "geojson":
        return Response(export.to_geojson(page), media_type=GEOJSON)
    if fmt == "csv":
        return Response(
            export.to_csv(page), media_type=CSV, headers={"Content-Disposition": 'attachment; filename="incidents.csv"'}
        )
    if fmt != "json":
        raise InvalidInput("unknown format", errors=[{"field": "format", "message": "json, geojson or csv"}])
    return page


async def _status(result: Any, status: int = 200) -> tuple[Any, int]:
    return await result, status


async def _created(result: Any) -> tuple[Any, int]:
    value, created = await result
    return value, 201 if created else 200


class IncidentController(Controller):
    path = "/v1/incidents"
    tags = ["incidents"]

    @post("/", guards=[requires("incidents:write")], status_code=201)
    async def create_incident(self, request: Request[Any, Any, Any], data: IncidentCreate) -> Response[Incident]:
        return await mutate(request, lambda w: _created(service.create(w, data)))

    @get("/", guards=[requires("incidents:read")])
    async def list_incidents(
        self,
        request: Request[Any, Any, Any],
        q: str | None = None,
        status: str | None = None,
        priority: str | None = None,
        type_: str | None = Parameter(query="type", default=None),
        team_id: uuid.UUID | None = None,
        bbox: str | None = None,
        from_: datetime | None = Parameter(query="from", default=None),
        to: datetime | None = None,
        inside_hazard: uuid.UUID | None = None,
        in_active_hazard: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
        format: str = "json",
        sort: str = SORT,
    ) -> IncidentPage:
        query = _query(
            q, status, priority, type_, team_id, bbox, from_, to, inside_hazard, in_active_hazard, limit, cursor, sort
        )
        return await _export(request, query, format)  # type: ignore[no-any-return]

    @get("/{incident_id:uuid}", guards=[requires("incidents:read")])
    async def get_incident(self, request: Request[Any, Any, Any], incident_id: uuid.UUID) -> Incident:
        return await read(request, lambda w: service.get(w, incident_id))  # type: ignore[no-any-return]

    @patch("/{incident_id:uuid}", guards=[requires("incidents:update")])
    async def update_incident(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, data: IncidentUpdate
    ) -> Response[Incident]:
        return await mutate(request, lambda w: _status(service.update(w, incident_id, data)))

    @get("/{incident_id:uuid}/timeline", guards=[requires("incidents:read")])
    async def timeline(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, limit: int = 200, cursor: str | None = None
    ) -> TimelinePage:
        after, n = _after(cursor), _limit(limit)
        items = await read(request, lambda w: service.list_timeline(w, incident_id, after=after, limit=n + 1))
        return TimelinePage(items=items[:n], next_cursor=encode_cursor(items[n - 1].id) if len(items) > n else None)

    @get("/{incident_id:uuid}/messages", guards=[requires("incidents:read")])
    async def list_messages(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, limit: int = 200, cursor: str | None = None
    ) -> MessagePage:
        after, n = _after(cursor), _limit(limit)
        items = await read(request, lambda w: service.list_messages(w, incident_id, after=after, limit=n + 1))
        return MessagePage(items=items[:n], next_cursor=encode_cursor(items[n - 1].id) if len(items) > n else None)

    @post("/{incident_id:uuid}/messages", guards=[requires("incidents:update")], status_code=201)
    async def post_message(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, data: MessageCreate
    ) -> Response[Message]:
        return await mutate(request, lambda w: _created(service.post_message(w, incident_id, data)))

    @get("/{incident_id:uuid}/assignments", guards=[requires("incidents:read")])
    async def list_assignments(self, request: Request[Any, Any, Any], incident_id: uuid.UUID) -> list[Assignment]:
        return await read(request, lambda w: assignments.list_for_incident(w, incident_id))  # type: ignore[no-any-return]

    @post("/{incident_id:uuid}/assignments", guards=[requires("incidents:write")], status_code=201)
    async def assign(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, data: AssignmentCreate
    ) -> Response[Assignment]:
        return await mutate(request, lambda w: _status(assignments.create(w, incident_id, data), 201))

    @get("/{incident_id:uuid}/recommendations", guards=[requires("incidents:write")])
    async def recommendations(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, limit: int = 10, include_flagged: bool = False
    ) -> Recommendations:
        return await read(  # type: ignore[no-any-return]
            request, lambda w: recommend.recommend(w, incident_id, limit=limit, include_flagged=include_flagged)
        )

    @get("/{incident_id:uuid}/after-action", guards=[requires("reports:read")])
    async def after_action(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, format: str = "json"
    ) -> reports.AfterAction:
        record = await read(request, lambda w: reports.after_action(w, incident_id))
        if format == "csv":
            return Response(export.timeline_csv(record.timeline), media_type=CSV)  # type: ignore[return-value]
        if format != "json":
            raise InvalidInput("unknown format", errors=[{"field": "format", "message": "json or csv"}])
        return record  # type: ignore[no-any-return]


@get("/v1/incidents.geojson", guards=[requires("incidents:read")], tags=["incidents"], media_type=GEOJSON)
async def incidents_geojson(
    request: Request[Any, Any, Any],
    q: str | None = None,
    status: str | None = None,
    priority: str | None = None,
    type_: str | None = Parameter(query="type", default=None),
    bbox: str | None = None,
    from_: datetime | None = Parameter(query="from", default=None),
    to: datetime | None = None,
    in_active_hazard: bool | None = None,
    limit: int = 1000,
    cursor: str | None = None,
    sort: str = SORT,
) -> Any:
    query = _query(q, status, priority, type_, None, bbox, from_, to, None, in_active_hazard, limit, cursor, sort)
    return await _export(request, query, "geojson")


@get("/v1/incidents.csv", guards=[requires("incidents:read")], tags=["incidents"], media_type=CSV)
async def incidents_csv(
    request: Request[Any, Any, Any],
    q: str | None = None,
    status: str | None = None,
    priority: str | None = None,
    type_: str | None = Parameter(query="type", default=None),
    bbox: str | None = None,
    from_: datetime | None = Parameter(query="from", default=None),
    to: datetime | None = None,
    in_active_hazard: bool | None = None,
    limit: int = 1000,
    cursor: str | None = None,
    sort: str = SORT,
) -> Any:
    query = _query(q, status, priority, type_, None, bbox, from_, to, None, in_active_hazard, limit, cursor, sort)
    return await _export(request, query, "csv")


class AssignmentController(Controller):
    path = "/v1/assignments"
    tags = ["incidents"]

    @get("/{assignment_id:uuid}", guards=[requires("incidents:read")])
    async def get_assignment(self, request: Request[Any, Any, Any], assignment_id: uuid.UUID) -> Assignment:
        return await read(request, lambda w: assignments.get(w, assignment_id))  # type: ignore[no-any-return]

    @post("/{assignment_id:uuid}/{action:str}", guards=[requires("assignments:respond")], status_code=200)
    async def act(
        self,
        request: Request[Any, Any, Any],
        assignment_id: uuid.UUID,
        action: str,
        data: AssignmentAction | None = None,
    ) -> Response[Assignment]:
        if action not in ASSIGNMENT_ACTIONS:
            raise NotFound(f"no action {action!r}; one of {', '.join(ASSIGNMENT_ACTIONS)}")
        note = data.note if data else ""
        return await mutate(request, lambda w: _status(assignments.act(w, assignment_id, action, note=note)))


class ReportController(Controller):
    path = "/v1/reports"
    tags = ["reports"]

    @get("/summary", guards=[requires("reports:read")])
    async def summary(
        self,
        request: Request[Any, Any, Any],
        from_: datetime | None = Parameter(query="from", default=None),
        to: datetime | None = None,
    ) -> reports.Summary:
        return await read(request, lambda w: reports.summary(w, from_, to))  # type: ignore[no-any-return]

    @get("/hexbins", guards=[requires("reports:read")])
    async def hexbins(
        self,
        request: Request[Any, Any, Any],
        res: int = 7,
        from_: datetime | None = Parameter(query="from", default=None),
        to: datetime | None = None,
    ) -> reports.HexBins:
        return await read(request, lambda w: reports.hexbins(w, res, from_, to))  # type: ignore[no-any-return]


@get("/v1/sync", guards=[requires("incidents:read")], tags=["incidents"])
async def sync_changes(request: Request[Any, Any, Any], since: str | None = None, limit: int = 500) -> SyncResult:
    return await read(request, lambda w: sync.changes_since(w, since, limit))  # type: ignore[no-any-return]


incident_handlers: list[Any] = [
    IncidentController,
    AssignmentController,
    ReportController,
    incidents_geojson,
    incidents_csv,
    sync_changes,
]
