"""The weather.gov "templated" timestamps, rewritten relative to now.

The weather.gov team recorded their test captures from the live API and replaced each time
with a placeholder that their api-proxy turns back into ISO-8601 when serving. The grammar
(worked out from the captures and their proxy's documentation):

``date:<anchor>[ <modifier>][ / <ISO-8601 duration>]``

* anchor ``now``: the current instant; ``now:hour``/``now:minutes`` truncate the result to the
  hour/minute (after the adjustment).
* anchor ``today`` with modifier ``HH:MM:<utc offset hours> <adjustment>``: today's wall-clock
  ``HH:MM`` at that offset (``16:00:-5`` is 21:00 UTC), then the adjustment.
* adjustment ``±N <unit>`` with unit seconds/minutes/hours/days (singular, plural or first letter).
* an optional ``/ P7DT13H`` suffix (a ``validTimes`` interval) is kept after the rewritten start.

Anything that does not follow the grammar is left untouched.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_PLACEHOLDER = re.compile(rb'"date:([^"]*)"')
_ADJUST = re.compile(r"^([+-]?\d+)\s+([A-Za-z]+)$")
_TODAY = re.compile(r"^(\d{2}):(\d{2}):([-+]?\d{1,2})\s*(.*)$")
_UNITS = (("d", "days"), ("h", "hours"), ("m", "minutes"), ("s", "seconds"))


def _adjustment(text: str) -> timedelta | None:
    text = text.strip()
    if not text:
        return timedelta(0)
    m = _ADJUST.match(text)
    if not m:
        return None
    amount, unit = int(m.group(1)), m.group(2).lower()
    for prefix, name in _UNITS:
        if unit.startswith(prefix):
            return timedelta(**{name: amount})
    return None


def resolve_placeholder(body: str, now: datetime) -> str | None:
    """``body`` is the text after ``date:``; returns the ISO-8601 value or None if not understood."""
    body, _, duration = body.partition(" / ")
    anchor, _, modifier = body.strip().partition(" ")
    when: datetime
    if anchor.startswith("now"):
        adj = _adjustment(modifier)
        if adj is None:
            return None
        when = now + adj
        if anchor == "now:hour":
            when = when.replace(minute=0, second=0, microsecond=0)
        elif anchor == "now:minutes":
            when = when.replace(second=0, microsecond=0)
        elif anchor != "now":
            return None
    elif anchor == "today":
        m = _TODAY.match(modifier.strip())
        if not m:
            return None
        adj = _adjustment(m.group(4))
        if adj is None:
            return None
        base = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        when = base + timedelta(hours=int(m.group(1)) - int(m.group(3)), minutes=int(m.group(2))) + adj
    else:
        return None
    text = when.astimezone(UTC).replace(microsecond=0).isoformat()
    return f"{text}/{duration.strip()}" if duration else text


def rewrite_relative_dates(data: bytes, now: datetime | None = None) -> bytes:
    """Replace every JSON string ``"date:…"`` in ``data`` by the ISO-8601 time it stands for."""
    current = now or datetime.now(UTC)

    def sub(m: re.Match[bytes]) -> bytes:
        value = resolve_placeholder(m.group(1).decode("utf-8", "replace"), current)
        return m.group(0) if value is None else b'"' + value.encode() + b'"'

    return _PLACEHOLDER.sub(sub, data)
