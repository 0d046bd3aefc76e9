"""Looks at the position once and gives up at once: a replica a few milliseconds behind
sends every read to the primary."""
# exercise: 07-wait
# rejected: it did not wait
return (await env.db.position())["position"] >= bookmark
