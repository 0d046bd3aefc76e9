"""Takes the nearest server of any kind: the origin (or another server) wins when it is nearer."""
# exercise: 00-nearest
# rejected: not a PoP
rows = matrix[matrix["source"] == user]
return rows.loc[rows["measured_ms"].idxmin(), "target"]
