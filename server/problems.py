"""RFC 9457 problem details: the one place errors become HTTP responses."""

from __future__ import annotations

import logging
import math
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import Scope, Send

from .errors import SitrepError
from .observability import ERRORS, request_id_var

log = logging.getLogger("sitrep.errors")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://sitrep.dev/problems/"

_encoder = msgspec.json.Encoder()

_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-input", "Invalid input"),
    429: ("rate-limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def problem_body(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id_var.get(),
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def _headers_for(exc: SitrepError) -> dict[str, str]:
    headers = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="sitrep"'
    return headers


def sitrep_error_body(exc: SitrepError, path: str | None) -> dict[str, Any]:
    return problem_body(exc.status, exc.type_slug, exc.title, exc.detail, path, exc.errors, **exc.extra)


def handle_sitrep_error(request: Request[Any, Any, Any], exc: SitrepError) -> Response[Any]:
    ERRORS.labels(exc.type_slug).inc()
    return Response(
        sitrep_error_body(exc, request.url.path),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=_headers_for(exc),
    )


def _validation_errors(extra: Any) -> list[dict[str, Any]]:
    errors = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                field = item.get("key") or item.get("source") or "body"
                errors.append(
                    {
                        "field": str(field),
                        "message": str(item.get("message", "invalid")),
                        "source": item.get("source", "body"),
                    }
                )
    return errors


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail or ""
    errors: list[dict[str, Any]] | None = None
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        malformed = "decode" in detail.lower() or "malformed" in detail.lower() or "json" in detail.lower()
        if malformed and not errors:
            status = 400
        else:
            status = 422
            detail = detail or "The request does not match the expected shape"
            if not errors:
                errors = [{"field": "body", "message": detail}]
    slug, title = _HTTP_TITLES.get(status, ("http-error", "HTTP error"))
    ERRORS.labels(slug).inc()
    headers = dict(exc.headers or {})
    return Response(
        problem_body(status, slug, title, detail, request.url.path, errors),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", extra={"path": request.url.path})
    ERRORS.labels("internal").inc()
    return Response(
        problem_body(
            500,
            "internal",
            "Internal error",
            "An unexpected error occurred; it was logged.",
            request.url.path,
        ),
        status_code=500,
        media_type=PROBLEM_JSON,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SitrepError: handle_sitrep_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}


async def problem_asgi_response(exc: SitrepError, scope: Scope, send: Send) -> None:
    """Answer from middleware, before routing reached a handler."""
    ERRORS.labels(exc.type_slug).inc()
    body = _encoder.encode(sitrep_error_body(exc, scope.get("path")))
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in _headers_for(exc).items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
