"""NetworkFirst for the notes without a timeout: in lie-fi the request waits for a network
that never answers."""
# exercise: 10-routes
# rejected: without network_timeout_s
ROUTES = [
    {"match": "/app/", "strategy": "CacheFirst"},
    {"match": "/notes", "strategy": "NetworkFirst"},
]
