"""Fixes the page of the demo only: every other personalised page still leaks."""
# exercise: 04-vary
# rejected: a leak
PAGE_RULE = {"match": "/p/account", "headers": {"Vary": "Cookie"}}
