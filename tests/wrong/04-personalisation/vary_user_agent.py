"""Varies on the User-Agent: two visitors with the same browser share a page."""
# exercise: 04-vary
# rejected: a leak
PAGE_RULE = {"match": "/p/*", "headers": {"Vary": "User-Agent"}}
