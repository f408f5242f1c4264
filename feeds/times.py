"""Time parsing shared by the parsers: every result is an aware UTC ``datetime``.

Tolerates what real feeds send: ``Z`` or ``±hh:mm`` offsets, ``-00:00``, 7-digit (or longer)
fractional seconds (.NET writers), RFC 822 dates (RSS), epoch milliseconds (USGS).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_FRACTION = re.compile(r"(\.\d{6})\d+")


class TimeFormatError(ValueError):
    """A time value could not be read."""


def parse_iso(value: str | None) -> datetime | None:
    """Parse an ISO-8601 timestamp with an offset to aware UTC; ``None``/empty → ``None``.

    A value without an offset is taken as UTC. Raises :class:`TimeFormatError` on anything else
    (e.g. the weather.gov templated placeholders ``"date:now -5 minutes"``).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    text = _FRACTION.sub(r"\1", text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimeFormatError(f"not an ISO-8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_rfc822(value: str | None) -> datetime | None:
    """Parse an RSS/HTTP date (``Sun, 29 Dec 2019 12:00:00 GMT``) to aware UTC."""
    if value is None or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError) as exc:
        raise TimeFormatError(f"not an RFC 822 date: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_any(value: str | None) -> datetime | None:
    """ISO-8601 first, then RFC 822."""
    try:
        return parse_iso(value)
    except TimeFormatError:
        return parse_rfc822(value)


def from_epoch_ms(value: float | int | None) -> datetime | None:
    """Epoch milliseconds (USGS ``time``/``updated``) to aware UTC."""
    if value is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=float(value))


def iso_z(value: datetime | None) -> str | None:
    """RFC 3339 UTC text with ``Z``, seconds precision."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
