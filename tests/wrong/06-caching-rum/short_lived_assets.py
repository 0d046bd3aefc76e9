"""Keeps assets for an hour: browsers ask again for files that never change."""
# exercise: 06-policy
# rejected: at least 30 days
# instead of: {"match": "/static/*", "headers": {"Cache-Control": "public, max-age=31536000, immutable"}},
{"match": "/static/*", "headers": {"Cache-Control": "public, max-age=3600"}},
