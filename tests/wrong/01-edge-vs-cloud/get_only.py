"""Answers GET only: a POST or PUT is refused."""
# exercise: 01-whoami
# rejected: POST
if request.method != "GET":
    return Response.text("method not allowed", 405)
return Response.json(
    {
        "pop": env.pop,
        "city": request.geo.city,
        "country": request.geo.country,
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
        "body_bytes": 0,
    }
)
