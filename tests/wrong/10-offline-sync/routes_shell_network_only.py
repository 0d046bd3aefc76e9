"""The shell from the network only: offline there is no page at all."""
# exercise: 10-routes
# rejected: NetworkOnly on /app/ never falls back
ROUTES = [
    {"match": "/app/", "strategy": "NetworkOnly"},
    {"match": "/notes", "strategy": "NetworkFirst", "network_timeout_s": 1},
]
