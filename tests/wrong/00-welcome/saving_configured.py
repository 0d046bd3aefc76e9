"""Computes the saving from configured_ms instead of the measured RTTs."""
# exercise: 00-saving
# rejected: configured_ms
rtt = matrix.set_index(["source", "target"])["configured_ms"]
return rtt[user, "origin"] - rtt[user, nearest_pop(matrix, user, pops)]
