"""Cache-Control: private stops the leak by not caching the page at all."""
# exercise: 04-vary
# rejected: not cached
PAGE_RULE = {"match": "/p/*", "headers": {"Cache-Control": "private"}}
