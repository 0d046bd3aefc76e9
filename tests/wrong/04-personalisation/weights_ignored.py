"""Splits visitors evenly over the cohorts: the weights are ignored."""
# exercise: 04-personalise
# rejected: the weights are ignored
# instead of: cohort = list(weights)[-1]
cohort = list(weights)[int.from_bytes(digest[:8], "big") % len(weights)]
point = float("inf")
