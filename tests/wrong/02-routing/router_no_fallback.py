"""No fallback: when the nearest origin is down, the user gets a 502."""
# exercise: 02-router
# rejected: its nearest origin is down
# instead of: try:
# instead of: return await env.fetch(nearest)
# instead of: except FetchError:
# instead of: break  # that origin is down: fall back to the PoPs' origin
return await env.fetch(nearest)
