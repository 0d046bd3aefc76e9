"""Off by one: a replica exactly at the bookmark has the write, but `>` says it does not."""
# exercise: 07-wait
# rejected: equal to the position is caught up
# instead of: if (await env.db.position())["position"] >= bookmark:
if (await env.db.position())["position"] > bookmark:
