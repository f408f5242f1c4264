"""Domain errors and the one table that maps them to HTTP statuses.

Services and repositories raise these; only :mod:`server.problems` turns them into RFC 9457
problem details. The tree::

    SitrepError
     ├── NotFound                 404
     ├── Conflict                 409
     │    └── IllegalTransition   409
     ├── InvalidInput             422  (per-field ``errors``)
     │    └── InvalidGeometry     422
     ├── Unauthorized             401
     ├── Forbidden                403
     ├── TooManyRequests          429  (``retry_after_s``)
     └── Unavailable              503  (``retry_after_s``)
"""

from __future__ import annotations

from typing import Any


class SitrepError(Exception):
    status = 500
    title = "Internal error"
    type_slug = "internal"

    def __init__(
        self,
        detail: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
        retry_after_s: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.retry_after_s = retry_after_s
        self.extra = extra or {}


class NotFound(SitrepError):
    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(SitrepError):
    status, title, type_slug = 409, "Conflict", "conflict"


class IllegalTransition(Conflict):
    title, type_slug = "Illegal state transition", "illegal-transition"


class InvalidInput(SitrepError):
    status, title, type_slug = 422, "Invalid input", "invalid-input"


class InvalidGeometry(InvalidInput):
    title, type_slug = "Invalid geometry", "invalid-geometry"


class Unauthorized(SitrepError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class Forbidden(SitrepError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class TooManyRequests(SitrepError):
    status, title, type_slug = 429, "Too many requests", "rate-limited"


class Unavailable(SitrepError):
    status, title, type_slug = 503, "Service unavailable", "unavailable"


def field_error(field: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message}
