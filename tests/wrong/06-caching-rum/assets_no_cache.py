"""Gives the assets no rule and calls everything no-cache: nothing is served from the PoP
without asking the origin first."""
# exercise: 06-policy
# rejected: the PoP should keep them
# instead of: {"match": "/static/*", "headers": {"Cache-Control": "public, max-age=31536000, immutable"}},
{"match": "/static/*", "headers": {"Cache-Control": "no-cache"}},
