"""Cache-Control: no-store: safe, and nobody keeps the page, the PoP neither."""
# exercise: 04-vary
# rejected: not cached
PAGE_RULE = {"match": "/p/*", "headers": {"Cache-Control": "no-store"}}
