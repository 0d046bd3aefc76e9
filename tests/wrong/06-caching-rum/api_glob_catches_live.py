"""Caches the API for a few seconds with one glob: it also catches the live /api/time."""
# exercise: 06-policy
# rejected: also matches /api/time
# instead of: {"match": "/p/*", "headers": {"Cache-Control": "private, max-age=0"}},
{"match": "/p/*", "headers": {"Cache-Control": "private, max-age=0"}},
{"match": "/api/*", "headers": {"Cache-Control": "public, max-age=5"}},
