"""Asks the primary's position: the primary always has every write, so the answer is
always True, however far behind this PoP's replica is."""
# exercise: 07-wait
# rejected: whose did you ask
# instead of: if (await env.db.position())["position"] >= bookmark:
if (await env.db.position(on="primary"))["position"] >= bookmark:
