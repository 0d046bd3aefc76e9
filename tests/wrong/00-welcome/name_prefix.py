"""Tells a PoP by its name ("pop-...") instead of by the list `pops`."""
# exercise: 00-nearest
# rejected: not in `pops`
rows = matrix[(matrix["source"] == user) & matrix["target"].str.startswith("pop-")]
return rows.loc[rows["measured_ms"].idxmin(), "target"]
