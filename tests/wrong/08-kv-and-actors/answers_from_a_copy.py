"""When the actor cannot be reached, answers from the last count this PoP saw (and adds
one for a POST): "available", but a second, stale count across the cut."""
# exercise: 08-actor
# rejected: stale or split
# instead of: return await env.actors.get(classes[kind], name).fetch(request)
import json

try:
    answer = await env.actors.get(classes[kind], name).fetch(request)
    body = await answer.read()
    if answer.status == 200 and kind == "count":
        await env.state.put("seen:" + name, json.loads(body))
    return Response(body, answer.status, {"Content-Type": "application/json"})
except ActorError:
    seen = await env.state.get("seen:" + name) or {"count": 0}
    if kind == "count" and request.method == "POST":
        seen["count"] += 1
    return Response.json(seen)
