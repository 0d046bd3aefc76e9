"""Falls back with env.origin.fetch(path): a GET without the body."""
# exercise: 02-router
# rejected: the method the origin received
# instead of: break  # that origin is down: fall back to the PoPs' origin
return await env.origin.fetch(request.path)
