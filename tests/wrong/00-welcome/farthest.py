"""Takes the maximum: the farthest PoP."""
# exercise: 00-nearest
# rejected: highest measured_ms
rows = matrix[(matrix["source"] == user) & matrix["target"].isin(pops)]
return rows.loc[rows["measured_ms"].idxmax(), "target"]
