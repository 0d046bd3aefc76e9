"""Forgets to leave out the failed PoP."""

# exercise: 02-anycast
# rejected: the failed PoP itself
return min(edge.pops, key=lambda pop: world.configured_rtt(user, pop))
