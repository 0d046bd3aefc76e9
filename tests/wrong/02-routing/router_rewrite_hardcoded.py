"""Rewrites the one old page of the example, /old/pricing."""
# exercise: 02-router
# rejected: rewrite: GET /old/
# instead of: if under(path, rule["from"]):
if path == "/old/pricing":
