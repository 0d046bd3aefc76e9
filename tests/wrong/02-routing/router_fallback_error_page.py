"""Falls back to an error page instead of the other origin."""
# exercise: 02-router
# rejected: its nearest origin is down
# instead of: break  # that origin is down: fall back to the PoPs' origin
return Response.text("the API is down", 503)
