"""Takes abs(): a PoP farther than the origin then looks like a saving."""
# exercise: 00-saving
# rejected: origin is nearer
rtt = matrix.set_index(["source", "target"])["measured_ms"]
return abs(rtt[user, "origin"] - rtt[user, nearest_pop(matrix, user, pops)])
