"""How often a search matches, estimated before the list query runs, to pick its plan.

PostgreSQL keeps, per tsvector column, the share of rows holding each common lexeme
(``pg_stats.most_common_elems`` / ``most_common_elem_freqs``, refreshed by ANALYZE). A newest-first
list of ``k`` matches is cheapest as a backward walk of the ``created_at`` index when matches are
frequent (about ``k / fraction`` rows read) and as a GIN bitmap scan + top-N sort when they are rare
(every match read once). The planner cannot tell the two apart for a parameterised query (its generic
plan assumes 0.5 % for any ``@@``), and a phrase is estimated like the AND of its words; so
:func:`match_fraction` estimates the fraction here from those statistics, and
:mod:`.search` builds the SQL for the cheaper plan. A wrong guess only costs time: both plans give
the same rows.

Per worker: the lexeme frequencies are cached for ``STATS_TTL_S``, the parsed query text of each
search string in a small bounded map (one round trip the first time a string is searched).
"""

from __future__ import annotations

import bisect
import re
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

STATS_TTL_S = 300.0
MAX_QUERIES = 2048
DEFAULT_FRACTION = 0.005
"""PostgreSQL's own default share for a lexeme it has no statistics for (``DEFAULT_TS_MATCH_SEL``)."""
PHRASE_FACTOR = 0.1
"""Share of the rows holding all of a phrase's words that hold them next to each other (a guess)."""

STATS_SQL = """
SELECT s.most_common_elems::text::text[] AS elems, s.most_common_elem_freqs AS freqs,
       (SELECT c.histogram_bounds::text::timestamptz[] FROM pg_stats c WHERE c.schemaname = current_schema()
        AND c.tablename = 'incidents' AND c.attname = 'created_at') AS bounds,
       (SELECT reltuples FROM pg_class WHERE oid = 'incidents'::regclass) AS total
FROM (SELECT 1) AS one LEFT JOIN pg_stats s
  ON s.schemaname = current_schema() AND s.tablename = 'incidents' AND s.attname = 'search'
"""
TSQUERY_SQL = "SELECT websearch_to_tsquery('english', $1)::text"

_TOKEN = re.compile(r"\s*(?:'((?:[^']|'')*)'(?::[*A-Da-d]+)?|(<->|<\d+>|[!&|()]))")


WINDOW_MATCHES = 2.5
"""A rare search first reads the newest incidents expected to hold this many times the matches needed."""


@dataclass(frozen=True)
class Hint:
    """What the statistics say about one search string."""

    fraction: float
    """Estimated share of incidents it matches."""
    estimator: Estimator

    def since(self, need: int, before: datetime | None) -> datetime | None:
        """A created_at after which ``need`` matches are expected with margin (before ``before``), or None."""
        if self.fraction <= 0:
            return None
        return self.estimator.newest_since(WINDOW_MATCHES * need / self.fraction, before)


class Estimator:
    """Per-worker estimates of the share of incidents a search string matches."""

    def __init__(self) -> None:
        self._freqs: dict[str, float] = {}
        self._floor = DEFAULT_FRACTION
        self._loaded_at = -STATS_TTL_S
        self._parsed: dict[str, str] = {}
        self._bounds: list[datetime] = []
        self.total = 0.0
        """Incidents in the table at the last ANALYZE (0: unknown)."""

    async def hint(self, conn: asyncpg.Connection, q: str) -> Hint:
        return Hint(await self.fraction(conn, q), self)

    async def fraction(self, conn: asyncpg.Connection, q: str) -> float:
        now = time.monotonic()
        if now - self._loaded_at >= STATS_TTL_S:
            self._loaded_at = now
            row = await conn.fetchrow(STATS_SQL)
            self._load(row["elems"], row["freqs"])
            self._bounds = sorted(row["bounds"] or [])
            self.total = max(0.0, float(row["total"] or 0.0))
        text = self._parsed.get(q)
        if text is None:
            text = await conn.fetchval(TSQUERY_SQL, q) or ""
            if len(self._parsed) >= MAX_QUERIES:
                self._parsed.clear()
            self._parsed[q] = text
        return estimate(text, self._freqs, self._floor)

    def newest_since(self, rows: float, before: datetime | None) -> datetime | None:
        """A time after which about ``rows`` incidents were created (before ``before``, if given), from the
        ``created_at`` histogram; None when that is most of the table or there are no statistics."""
        bounds, total = self._bounds, self.total
        if len(bounds) < 2 or total <= 0 or rows >= 0.5 * total:
            return None
        top = 1.0 if before is None else _cdf(bounds, before)
        share = top - rows / total
        if share <= 0:
            return None
        return _inverse_cdf(bounds, share)

    def _load(self, elems: list[str] | None, freqs: list[float] | None) -> None:
        if not elems or not freqs or len(freqs) < len(elems) + 2:
            self._freqs, self._floor = {}, DEFAULT_FRACTION
            return
        # after one frequency per lexeme come the minimum and the maximum frequency
        self._freqs = dict(zip(elems, freqs, strict=False))
        self._floor = min(DEFAULT_FRACTION, float(freqs[len(elems)]) / 2)


def _cdf(bounds: list[datetime], at: datetime) -> float:
    """Share of rows created before ``at`` (equal-count histogram, linear within a bucket)."""
    i = bisect.bisect_right(bounds, at)
    if i == 0:
        return 0.0
    if i >= len(bounds):
        return 1.0
    lo, hi = bounds[i - 1], bounds[i]
    inside = (at - lo) / (hi - lo) if hi > lo else 0.0
    return (i - 1 + inside) / (len(bounds) - 1)


def _inverse_cdf(bounds: list[datetime], share: float) -> datetime:
    pos = share * (len(bounds) - 1)
    i = min(int(pos), len(bounds) - 2)
    lo, hi = bounds[i], bounds[i + 1]
    return lo + (hi - lo) * (pos - i)


def estimate(tsquery: str, freqs: dict[str, float], floor: float = DEFAULT_FRACTION) -> float:
    """Share of rows matching ``tsquery`` (text form), words taken as independent.

    ``&`` multiplies, ``|`` adds as independent events, ``!`` complements, a phrase (``<->``,
    ``<N>``) multiplies and then keeps ``PHRASE_FACTOR``. An empty or unparsable query counts 0.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(tsquery):
        m = _TOKEN.match(tsquery, pos)
        if m is None:
            if tsquery[pos:].strip():
                return 0.0
            break
        tokens.append(("lex", m.group(1).replace("''", "'")) if m.group(1) is not None else ("op", m.group(2)))
        pos = m.end()
    at = 0

    def peek() -> str | None:
        return tokens[at][1] if at < len(tokens) and tokens[at][0] == "op" else None

    def unary() -> float:
        nonlocal at
        if at >= len(tokens):
            raise ValueError("truncated")
        kind, value = tokens[at]
        at += 1
        if kind == "lex":
            return freqs.get(value, floor)
        if value == "!":
            return 1.0 - unary()
        if value == "(":
            inner = disjunction()
            if peek() != ")":
                raise ValueError("unbalanced")
            at += 1
            return inner
        raise ValueError(f"unexpected {value}")

    def phrase() -> float:
        nonlocal at
        value = unary()
        while (op := peek()) is not None and op.startswith("<"):
            at += 1
            value *= unary() * PHRASE_FACTOR
        return value

    def conjunction() -> float:
        nonlocal at
        value = phrase()
        while peek() == "&":
            at += 1
            value *= phrase()
        return value

    def disjunction() -> float:
        nonlocal at
        value = conjunction()
        while peek() == "|":
            at += 1
            other = conjunction()
            value = value + other - value * other
        return value

    if not tokens:
        return 0.0
    try:
        share = disjunction()
    except ValueError:
        return 0.0
    return min(1.0, max(0.0, share))
