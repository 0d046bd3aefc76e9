"""The cities of the textbook's world and the round-trip times between them.

The numbers are data, kept apart from the code so a reader can check them.

Source: WonderNetwork's global ping statistics (https://wondernetwork.com/pings),
median round-trip times between servers in the named cities, rounded to the ms.
Ashburn, Virginia stands for the us-east cloud region (AWS us-east-1); its RTTs
to other regions agree within a few ms with the inter-region latency tables the
cloud providers publish. Real RTTs drift by a few ms from week to week and differ
between networks: treat them as typical values, not constants of nature.

Only a sparse backbone is listed, as on the real Internet: traffic between two
cities without a direct entry takes the shortest path through the others (for
example Singapore to Ashburn goes through Tokyo: 70 + 150 = 220 ms, while the
measured median is about 215-230 ms).
"""

from __future__ import annotations

# name: (city, ISO country code, latitude, longitude)
CITIES: dict[str, tuple[str, str, float, float]] = {
    "virginia": ("Ashburn", "US", 39.04, -77.49),
    "newyork": ("New York", "US", 40.71, -74.01),
    "london": ("London", "GB", 51.51, -0.13),
    "frankfurt": ("Frankfurt", "DE", 50.11, 8.68),
    "berlin": ("Berlin", "DE", 52.52, 13.40),
    "tokyo": ("Tokyo", "JP", 35.68, 139.69),
    "singapore": ("Singapore", "SG", 1.35, 103.82),
    "saopaulo": ("São Paulo", "BR", -23.55, -46.63),
    "vienna": ("Vienna", "AT", 48.21, 16.37),
    "zurich": ("Zurich", "CH", 47.37, 8.54),
    "factory": ("Stuttgart", "DE", 48.78, 9.18),
}

# Backbone round-trip times in ms between pairs of cities (see the source above).
BACKBONE_RTT_MS: list[tuple[str, str, float]] = [
    ("virginia", "newyork", 7),
    ("newyork", "london", 72),
    ("virginia", "london", 76),
    ("virginia", "frankfurt", 88),
    ("london", "frankfurt", 15),
    ("frankfurt", "berlin", 9),
    ("frankfurt", "vienna", 14),
    ("frankfurt", "zurich", 7),
    ("virginia", "saopaulo", 115),
    ("virginia", "tokyo", 150),
    ("tokyo", "singapore", 70),
    ("singapore", "frankfurt", 160),
]
