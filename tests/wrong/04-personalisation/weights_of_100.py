"""Assumes the weights are percentages that add up to 100."""
# exercise: 04-personalise
# rejected: the weights are ignored
# instead of: point = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights.values())
point = int.from_bytes(digest[:8], "big") / 2**64 * 100
