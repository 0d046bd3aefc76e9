"""Ranks the PoPs by configured_ms, what the world was told, instead of what was measured."""
# exercise: 00-nearest
# rejected: lowest configured_ms
rows = matrix[(matrix["source"] == user) & matrix["target"].isin(pops)]
return rows.loc[rows["configured_ms"].idxmin(), "target"]
