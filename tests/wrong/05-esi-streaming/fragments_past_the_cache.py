"""Asks the origin for every fragment on every view: the fragments' Cache-Control is
never used."""
# exercise: 05-assemble
# rejected: not fetched through the cache
# instead of: response = await env.origin.fetch(src)
response = await env.origin.fetch(src, cache=False)
