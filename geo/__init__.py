"""sitrep's pure geospatial core: H3 indexing, geodesy, geometry validation, fences, dispatch.

Nothing here does I/O: no database, no Redis, no clocks (time is always passed in), and nothing
imports ``server`` or ``feeds``.
"""
