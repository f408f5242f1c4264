"""Hazard and weather feed ingesters (NWS, USGS, GDACS, NASA FIRMS, CAP/Atom).

Parsers are pure (``bytes -> ParseResult``); :mod:`feeds.http` fetches politely and
:mod:`feeds.scheduler` runs the feeds and writes through an injected :class:`feeds.scheduler.FeedSink`.
Importing this package has no side effects.
"""
