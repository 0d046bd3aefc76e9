"""Asks the world for the nearest PoP (anycast) instead of the table it was given."""
# exercise: 00-saving
# rejected: makes up users
rtt = matrix.set_index(["source", "target"])["measured_ms"]
pop = world.anycast_pop(world.spec.nodes[user].region)
return rtt[user, "origin"] - rtt[user, pop]
