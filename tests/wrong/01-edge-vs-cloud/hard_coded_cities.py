"""Hard-codes the cities of the PoPs the prose names instead of reading request.geo."""
# exercise: 01-whoami
# rejected: user-vienna
cities = {"pop-tokyo": ("Tokyo", "JP"), "pop-frankfurt": ("Berlin", "DE")}
city, country = cities.get(env.pop, ("London", "GB"))
body = await request.read()
return Response.json(
    {
        "pop": env.pop,
        "city": city,
        "country": country,
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
        "body_bytes": len(body),
    }
)
