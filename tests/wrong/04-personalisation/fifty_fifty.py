"""A hard-coded 50/50 between the first two cohorts, whatever the config says."""
# exercise: 04-personalise
# rejected: the weights are ignored
# instead of: cohort = list(weights)[-1]
cohort = list(weights)[digest[0] % 2]
point = float("inf")
