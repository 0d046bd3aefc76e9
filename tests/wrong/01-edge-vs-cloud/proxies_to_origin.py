"""Proxies to the origin instead of answering at the edge."""
# exercise: 01-whoami
# rejected: origin
# instead of: body = await request.read()
# instead of: preferences = []  # (q, tag) for each language in Accept-Language
# instead of: for part in request.headers.get("Accept-Language", "").split(","):
# instead of: tag, _, q = part.strip().partition(";q=")
# instead of: if tag:
# instead of: preferences.append((float(q or 1), tag))
# instead of: return Response.json(
# instead of: {
# instead of: "pop": env.pop,
# instead of: "city": request.geo.city,
# instead of: "country": request.geo.country,
# instead of: "method": request.method,
# instead of: "path": request.path,
# instead of: "query": dict(request.query),
# instead of: "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
# instead of: "body_bytes": len(body),
# instead of: "lang": max(preferences)[1] if preferences else None,
# instead of: }
# instead of: )
return await env.origin.fetch(request)
