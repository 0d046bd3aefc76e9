"""Names each object after the PoP too: one counter and one limiter per PoP, not one."""
# exercise: 08-actor
# rejected: disagree between PoPs
# instead of: return await env.actors.get(classes[kind], name).fetch(request)
return await env.actors.get(classes[kind], f"{env.pop}:{name}").fetch(request)
