"""Routes the shell only: the notes go to the network untouched, and offline they fail."""
# exercise: 10-routes
# rejected: no route matches /notes
ROUTES = [
    {"match": "/app/", "strategy": "CacheFirst"},
]
