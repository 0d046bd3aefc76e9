"""Takes the first language in Accept-Language, ignoring the q weights."""
# exercise: 01-whoami
# rejected: field 'lang'
body = await request.read()
first = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip()
return Response.json(
    {
        "pop": env.pop,
        "city": request.geo.city,
        "country": request.geo.country,
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
        "body_bytes": len(body),
        "lang": first or None,
    }
)
