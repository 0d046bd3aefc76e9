"""Answers GET only: a POST or PUT is refused."""
# exercise: 01-whoami
# rejected: POST
# instead of: body = await request.read()
# instead of: preferences = []  # (q, tag) for each language in Accept-Language
# instead of: for part in request.headers.get("Accept-Language", "").split(","):
# instead of: tag, _, q = part.strip().partition(";q=")
# instead of: if tag:
# instead of: preferences.append((float(q or 1), tag))
if request.method != "GET":
    return Response.text("method not allowed", 405)
# instead of: "body_bytes": len(body),
# instead of: "lang": max(preferences)[1] if preferences else None,
"body_bytes": 0,
