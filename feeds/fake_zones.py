"""Stand-in NWS zone shapes for the fake feed server: plausible, distinct places derived from the code.

Real zone shapes are not in the samples. A zone ``SSZnnn`` gets a small square at a position hashed
from its code (CRC-32), inside a box where such a zone really lies:

* marine zones (their prefix names the water, not a state): offshore of the coast the prefix names
  (``PKZ`` Alaska, ``PZZ`` Pacific coast, ``PHZ`` Hawaii, ``AMZ``/``ANZ`` Atlantic, ``GMZ`` Gulf of
  Mexico, ``LMZ``/``LHZ``/``LSZ``/``LEZ``/``LOZ``/``LCZ`` the Great Lakes, ``SLZ`` the St. Lawrence…);
* land zones: inside the middle of their state's (or territory's) bounding box;
* anything else: a box in the open Pacific, far from every demo city.

The boxes are approximate (a few tenths of a degree); they only need to spread alerts over the map
the way real zones do, instead of stacking every zone on one city.
"""

from __future__ import annotations

import zlib

Box = tuple[float, float, float, float]
"""lon_min, lat_min, lon_max, lat_max"""

MARINE: dict[str, Box] = {
    "PKZ": (-165.0, 54.5, -137.0, 58.0),  # Gulf of Alaska and the Aleutians' south side
    "PZZ": (-128.0, 33.0, -125.0, 48.0),  # off Washington, Oregon and California
    "PHZ": (-161.0, 18.0, -154.0, 23.0),  # around the Hawaiian islands
    "PMZ": (144.0, 12.5, 146.5, 16.5),  # Marianas
    "PSZ": (-171.5, -15.0, -168.5, -13.5),  # American Samoa
    "AMZ": (-79.5, 26.0, -76.5, 33.0),  # off the Carolinas, Georgia and east Florida
    "ANZ": (-72.5, 37.5, -67.0, 40.7),  # off New England to Virginia
    "GMZ": (-95.0, 25.0, -84.5, 28.3),  # Gulf of Mexico
    "LMZ": (-87.3, 42.3, -86.7, 45.0),  # Lake Michigan
    "LHZ": (-82.8, 43.8, -82.2, 45.3),  # Lake Huron
    "LSZ": (-90.0, 47.1, -85.5, 47.6),  # Lake Superior
    "LEZ": (-82.0, 41.9, -79.8, 42.3),  # Lake Erie
    "LOZ": (-79.5, 43.4, -76.5, 43.7),  # Lake Ontario
    "LCZ": (-82.8, 42.35, -82.5, 42.55),  # Lake St. Clair
    "SLZ": (-75.8, 44.6, -75.0, 45.0),  # St. Lawrence River
}
STATES: dict[str, Box] = {
    "AL": (-88.5, 30.2, -84.9, 35.0), "AK": (-165.0, 55.0, -141.0, 70.0), "AZ": (-114.8, 31.3, -109.0, 37.0),
    "AR": (-94.6, 33.0, -89.6, 36.5), "CA": (-124.4, 32.5, -114.1, 42.0), "CO": (-109.1, 37.0, -102.0, 41.0),
    "CT": (-73.7, 41.0, -71.8, 42.1), "DE": (-75.8, 38.5, -75.0, 39.8), "DC": (-77.1, 38.8, -76.9, 39.0),
    "FL": (-87.6, 24.5, -80.0, 31.0), "GA": (-85.6, 30.4, -80.8, 35.0), "HI": (-160.2, 18.9, -154.8, 22.2),
    "ID": (-117.2, 42.0, -111.0, 49.0), "IL": (-91.5, 37.0, -87.5, 42.5), "IN": (-88.1, 37.8, -84.8, 41.8),
    "IA": (-96.6, 40.4, -90.1, 43.5), "KS": (-102.1, 37.0, -94.6, 40.0), "KY": (-89.6, 36.5, -81.9, 39.1),
    "LA": (-94.0, 29.0, -89.0, 33.0), "ME": (-71.1, 43.1, -66.9, 47.5), "MD": (-79.5, 37.9, -75.0, 39.7),
    "MA": (-73.5, 41.2, -69.9, 42.9), "MI": (-90.4, 41.7, -82.4, 48.3), "MN": (-97.2, 43.5, -89.5, 49.4),
    "MS": (-91.7, 30.2, -88.1, 35.0), "MO": (-95.8, 36.0, -89.1, 40.6), "MT": (-116.1, 44.4, -104.0, 49.0),
    "NE": (-104.1, 40.0, -95.3, 43.0), "NV": (-120.0, 35.0, -114.0, 42.0), "NH": (-72.6, 42.7, -70.6, 45.3),
    "NJ": (-75.6, 38.9, -73.9, 41.4), "NM": (-109.1, 31.3, -103.0, 37.0), "NY": (-79.8, 40.5, -71.9, 45.0),
    "NC": (-84.3, 33.8, -75.5, 36.6), "ND": (-104.1, 45.9, -96.6, 49.0), "OH": (-84.8, 38.4, -80.5, 42.0),
    "OK": (-103.0, 33.6, -94.4, 37.0), "OR": (-124.6, 42.0, -116.5, 46.3), "PA": (-80.5, 39.7, -74.7, 42.3),
    "RI": (-71.9, 41.1, -71.1, 42.0), "SC": (-83.4, 32.0, -78.5, 35.2), "SD": (-104.1, 42.5, -96.4, 45.9),
    "TN": (-90.3, 35.0, -81.6, 36.7), "TX": (-106.6, 25.8, -93.5, 36.5), "UT": (-114.1, 37.0, -109.0, 42.0),
    "VT": (-73.4, 42.7, -71.5, 45.0), "VA": (-83.7, 36.5, -75.2, 39.5), "WA": (-124.8, 45.5, -116.9, 49.0),
    "WV": (-82.6, 37.2, -77.7, 40.6), "WI": (-92.9, 42.5, -86.8, 47.1), "WY": (-111.1, 41.0, -104.1, 45.0),
    "AS": (-170.9, -14.4, -169.4, -14.1), "GU": (144.6, 13.2, 145.0, 13.7), "MP": (145.1, 14.1, 145.9, 18.8),
    "PR": (-67.3, 17.9, -65.6, 18.5), "VI": (-65.1, 17.7, -64.6, 18.4),
}  # fmt: skip
ELSEWHERE: Box = (-150.0, 25.0, -130.0, 35.0)
"""Open Pacific, for codes that name neither a marine area nor a state."""
LAND_HALF_DEG = 0.2
MARINE_HALF_DEG = 0.12
LAND_INSET = 0.2
"""Land squares keep to the middle of the state's box (this fraction off each side), away from neighbours."""


def region_of(zone_id: str) -> tuple[Box, bool]:
    """The box a zone's square is placed in, and whether the zone is marine."""
    prefix = zone_id[:3].upper()
    if prefix in MARINE:
        return MARINE[prefix], True
    state = STATES.get(prefix[:2])
    if state is not None:
        w, h = state[2] - state[0], state[3] - state[1]
        inset = (
            state[0] + LAND_INSET * w,
            state[1] + LAND_INSET * h,
            state[2] - LAND_INSET * w,
            state[3] - LAND_INSET * h,
        )
        return inset, False
    return ELSEWHERE, False


def zone_square(zone_id: str) -> list[list[float]]:
    """The closed GeoJSON ring of the stand-in shape of ``zone_id`` (deterministic)."""
    (lon0, lat0, lon1, lat1), marine = region_of(zone_id)
    half = min(MARINE_HALF_DEG if marine else LAND_HALF_DEG, (lon1 - lon0) / 2, (lat1 - lat0) / 2)
    h = zlib.crc32(zone_id.upper().encode())
    u, v = (h & 0xFFFF) / 0xFFFF, (h >> 16) / 0xFFFF
    lon = lon0 + half + u * (lon1 - lon0 - 2 * half)
    lat = lat0 + half + v * (lat1 - lat0 - 2 * half)
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half]]
    ring.append(ring[0])
    return [[round(x, 4), round(y, 4)] for x, y in ring]
