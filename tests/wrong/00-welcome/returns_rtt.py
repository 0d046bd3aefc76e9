"""Returns the lowest RTT itself instead of the name of the PoP that has it."""
# exercise: 00-nearest
# rejected: a number
rows = matrix[(matrix["source"] == user) & matrix["target"].isin(pops)]
return rows["measured_ms"].min()
