"""Subtracts the wrong way round: the PoP's RTT minus the origin's."""
# exercise: 00-saving
# rejected: reversed
rtt = matrix.set_index(["source", "target"])["measured_ms"]
return rtt[user, nearest_pop(matrix, user, pops)] - rtt[user, "origin"]
