"""Reports the whole URL (with its query string) as the path."""
# exercise: 01-whoami
# rejected: field 'path'
body = await request.read()
return Response.json(
    {
        "pop": env.pop,
        "city": request.geo.city,
        "country": request.geo.country,
        "method": request.method,
        "path": str(request.url.relative()),
        "query": dict(request.query),
        "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
        "body_bytes": len(body),
    }
)
