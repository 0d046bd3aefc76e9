"""Answers a bad token with 403 Forbidden: 403 means the server knows who you are."""
# exercise: 03-gateway
# rejected: 401 means
# instead of: return Response.json({"error": why}, status, headers)
return Response.json({"error": why}, 403 if status == 401 else status, headers)
