"""Ignores the query string (reads the path only)."""
# exercise: 01-whoami
# rejected: field 'query'
body = await request.read()
return Response.json(
    {
        "pop": env.pop,
        "city": request.geo.city,
        "country": request.geo.country,
        "method": request.method,
        "path": request.path,
        "query": {},
        "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
        "body_bytes": len(body),
    }
)
