"""CacheFirst for the notes too: fast everywhere, and stale online forever."""
# exercise: 10-routes
# rejected: stale notes
ROUTES = [
    {"match": "/app/", "strategy": "CacheFirst"},
    {"match": "/notes", "strategy": "CacheFirst"},
]
